"""The guest OS workloads run once per test session under a configuration of
`kite compare` (kite/runs.py), for the tests that hold a VMM mode to the bare
machine: each (workload, configuration) runs at most once however many test
modules ask for it (the bare runs above all).

    run = workload_run("spawnstorm", "bare")    # kite.runs.RunOutcome
"""

from __future__ import annotations

from functools import cache

from kite.runs import Kernels, plan, read_workloads, run
from vmm.machine.costs import DEFAULT_COST_MODEL

WORKLOADS = {workload.name: workload for workload in read_workloads()}
SLICE = "slice=1000000"          # kite compare's default tick


@cache
def workload_run(name: str, config: str):
    """The outcome of workload `name` under `config` (kite compare's defaults)."""
    return run(plan(WORKLOADS[name], config, Kernels(), DEFAULT_COST_MODEL, SLICE))

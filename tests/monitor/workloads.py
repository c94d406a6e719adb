"""The guest OS workloads run once per test session under a configuration of
`kite compare` (kite/runs.py), for the tests that hold a VMM mode to the bare
machine: each (workload, configuration) runs at most once however many test
modules ask for it (the bare runs above all).

    run = workload_run("spawnstorm", "bare")    # kite.runs.RunOutcome
    phase(run, "boot")                          # that phase's kite compare record
"""

from __future__ import annotations

from functools import cache

from kite.runs import Kernels, figures, plan, read_workloads, run
from vmm.machine.costs import DEFAULT_COST_MODEL

WORKLOADS = {workload.name: workload for workload in read_workloads()}
SLICE = "slice=1000000"          # kite compare's default tick


@cache
def workload_run(name: str, config: str):
    """The outcome of workload `name` under `config` (kite compare's defaults)."""
    return run(plan(WORKLOADS[name], config, Kernels(), DEFAULT_COST_MODEL, SLICE))


def phase(outcome, name: str = "workload") -> dict:
    """The kite compare record (kite.runs.figures) of `outcome`'s phase `name`."""
    return next(record for record in figures(outcome) if record["phase"] == name)


def assert_runs_as_on_bare(outcome, bare) -> None:
    """`outcome` ran to its end as `bare`, the bare machine's run of the same
    workload, did: no stop message, the same console output, exit code and disk."""
    assert outcome.ran.message == "", outcome.ran.message
    assert outcome.ran.output == bare.ran.output and outcome.ran.exit_code == bare.ran.exit_code
    assert outcome.ran.disk_digest == bare.ran.disk_digest

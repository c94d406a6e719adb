"""Typed stats for tests that feed synthetic runs to kite compare: every
figure 0 (or empty) unless given."""

from __future__ import annotations

from dataclasses import fields, replace

from vmm.launch import RunStats
from vmm.machine.phases import split
from vmm.machine.stats import MachineStats
from vmm.monitor.vm import VmStats


def machine_stats(**figures) -> MachineStats:
    """A machine's figures: the given ones, the others 0; reason halt, exit code 0."""
    base = {field.name: 0 for field in fields(MachineStats) if field.name != "phases"}
    return MachineStats(**{**base, "exceptions": {}, "interrupts": {}, "io": {}, "reason": "halt",
                           **figures})


def vm_stats(**figures) -> VmStats:
    """A VM's figures: the given ones, the others 0; a shadow VM that is done."""
    base = {field.name: 0 for field in fields(VmStats) if field.name != "phases"}
    return VmStats(**{**base, "paging": "shadow", "state": "done", "message": "", "exits": {}, "counters": {},
                      "io": {}, **figures})


def with_phases(stats):
    """`stats` with the phases of a run without marks: boot empty, the workload all of it."""
    return replace(stats, phases=split([], stats))


def run_stats(vms: dict[str, dict] | None = None, **machine_figures) -> RunStats:
    """A run's figures, with phases (as a run without marks): the machine's,
    and {name: VM figures} for a VMM run."""
    return RunStats(with_phases(machine_stats(**machine_figures)),
                    None if vms is None else {name: with_phases(vm_stats(**vm)) for name, vm in vms.items()})

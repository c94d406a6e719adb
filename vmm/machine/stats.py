"""The figures of one run of a Kite32 machine, as one type.

The bare machine and the machine simulator both report a MachineStats; the
VMM adds a VmStats per VM (vmm/monitor/vm.py).  `as_dict()` is what `kite run
--stats` prints and `--stats-json` writes (docs/vmm.md "Figures"): the field
names are the JSON keys.  Each has its phases (boot, workload) as stats of
the same type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from asm.isa import EXCEPTION_NAMES, IRQ_NAMES


@dataclass(frozen=True)
class MachineStats:
    """One run's counts (vmm/machine/counters.py defines each), exceptions and
    interrupts by name, device register accesses, modelled cycles
    (vmm/machine/costs.py) and how the run ended."""
    instructions: int
    ticks_idle: int
    tlb_hits: int
    tlb_misses: int
    page_walks: int
    walk_refs: int
    exceptions: dict[str, int]
    interrupts: dict[str, int]
    ticks: int
    device_reads: int
    device_writes: int
    modeled_cycles: int
    reason: str
    exit_code: int | None
    io: dict[str, int] = field(default_factory=dict)     # the disk's: requests, bytes ({} without a disk)
    phases: dict[str, MachineStats] = field(default_factory=dict)   # "boot", "workload" (vmm/machine/phases.py)

    LATEST: ClassVar[frozenset[str]] = frozenset({"exit_code"})     # not a count: a phase keeps the later value

    def as_dict(self) -> dict:
        """The figures by name, JSON-ready; "phases" only when there are phases."""
        figures = asdict(self)
        if not self.phases:
            del figures["phases"]
        return figures


def disk_figures(disk) -> dict[str, int]:
    """MachineStats.io of a machine's disk (a devices.disk.Disk, or None)."""
    return {} if disk is None else {"requests": disk.requests, "bytes": disk.bytes_moved}


def exception_names(counts: dict[int, int]) -> dict[str, int]:
    """{exception code: count} as {name: count}, in code order."""
    return {EXCEPTION_NAMES.get(code, f"cause {code}"): count for code, count in sorted(counts.items())}


def interrupt_names(counts: dict[int, int]) -> dict[str, int]:
    """{irq: count} as {name: count}, in irq order."""
    return {IRQ_NAMES.get(irq, f"irq {irq}"): count for irq, count in sorted(counts.items())}

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
    # the virtualization extension's counts (counters.py VmCounters; 0 on a machine that never entered a
    # guest, and always under simulation: the simulated machine has no extension)
    vm_entries: int = 0
    vm_exits: int = 0
    nested_walk_refs: int = 0
    pwc_hits: int = 0
    nested_faults: int = 0
    phases: dict[str, MachineStats] = field(default_factory=dict)   # "boot", "workload" (vmm/machine/phases.py)

    LATEST: ClassVar[frozenset[str]] = frozenset({"exit_code"})     # not a count: a phase keeps the later value
    VIRTUALIZATION: ClassVar[tuple[str, ...]] = ("vm_entries", "vm_exits", "nested_walk_refs", "pwc_hits",
                                                 "nested_faults")

    def as_dict(self) -> dict:
        """The figures by name, JSON-ready; "phases" only when there are
        phases, the virtualization figures only for a run that entered a guest
        (so a run that never did reports exactly what it did before the extension)."""
        figures = asdict(self)
        if not self.phases:
            del figures["phases"]
        if not self.vm_entries:
            for table in [figures, *figures.get("phases", {}).values()]:
                for name in self.VIRTUALIZATION:
                    del table[name]
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

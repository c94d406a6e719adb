"""The phase marker: how a guest tells the measurement where its phases start
and end (gem5's m5 resetstats / dumpstats, as a device).

Registers (offsets from isa.MARKER_BASE, 32-bit):

    0x00 MARK   write: record marker `value` at the tick of the store:
                1 BOOT_DONE (the kernel is about to start init),
                2 ROI_BEGIN, 3 ROI_END (a region of interest); reads 0

A mark does nothing to the guest: it only calls `on_mark(marker)`, which the
machine, the simulator and the VMM each wire to a snapshot of their figures
at that instant (vmm/machine/phases.py turns the snapshots into phases).
Other values are ignored.
"""

from __future__ import annotations

from typing import Callable

from vmm.machine.devices import is_register_access

MARKER_MARK = 0x00
MARKER_REGISTERS = (MARKER_MARK,)

BOOT_DONE = 1
ROI_BEGIN = 2
ROI_END = 3
MARKERS = (BOOT_DONE, ROI_BEGIN, ROI_END)


class Marker:
    """Calls `on_mark(marker)` for every store of a known marker to MARK."""

    name = "marker"

    def __init__(self, on_mark: Callable[[int], None]):
        self._on_mark = on_mark

    def read(self, offset: int, width: int) -> int:
        """MARK is write-only: every read is 0."""
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        """A 32-bit store of BOOT_DONE, ROI_BEGIN or ROI_END to MARK records it."""
        if is_register_access(offset, width, MARKER_REGISTERS) and value in MARKERS:
            self._on_mark(value)

    def next_event(self) -> int | None:
        """Never needs time: None."""
        return None

    def advance(self, now: int) -> None:
        """Nothing happens with time alone."""

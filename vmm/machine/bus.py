"""The physical bus: which device answers an MMIO address.

Firecracker-style: the bus owns placement, a device sees only
(offset, width, value) and never learns its base address.  RAM is not on
this bus; the CPU goes to PhysicalMemory directly and asks `is_mmio` only
for addresses outside RAM.
"""

from __future__ import annotations

from typing import Protocol

from vmm.machine.errors import BusError


class Device(Protocol):
    """What the bus and the machine loop need from a device model."""

    name: str

    def read(self, offset: int, width: int) -> int: ...

    def write(self, offset: int, width: int, value: int) -> None: ...

    def next_event(self) -> int | None:
        """The absolute tick at which the device needs `advance`, or None."""

    def advance(self, now: int) -> None:
        """Bring the device up to tick `now` (raise IRQs, finish DMA)."""


class BusMapError(ValueError):
    """A device mapping the bus refuses; the message names the conflict."""


class OverlapError(BusMapError):
    """The new range overlaps a mapped one."""


class ZeroSizedRangeError(BusMapError):
    """The new range has no bytes."""


class Bus:
    """Device ranges on the physical address space, with access counters.

    `reads` and `writes` count device accesses (successful ones only)."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int, Device]] = []   # (base, end exclusive, device)
        self.devices: list[Device] = []
        self.reads = 0
        self.writes = 0

    def map(self, base: int, size: int, device: Device) -> None:
        """Place `device` at [base, base + size).  Raises ZeroSizedRangeError
        or OverlapError (naming both devices) and maps nothing then."""
        if size <= 0:
            raise ZeroSizedRangeError(f"bus: zero-sized range for {device.name} at {base:#010x}")
        end = base + size
        for other_base, other_end, other in self._ranges:
            if base < other_end and other_base < end:
                raise OverlapError(
                    f"bus: {device.name} [{base:#010x}, {end:#010x}) overlaps "
                    f"{other.name} [{other_base:#010x}, {other_end:#010x})")
        self._ranges.append((base, end, device))
        self._ranges.sort(key=lambda entry: entry[0])
        if device not in self.devices:
            self.devices.append(device)

    def _find(self, paddr: int) -> tuple[int, Device]:
        """(base, device) of the range holding `paddr`; raises BusError if none."""
        for base, end, device in self._ranges:
            if base <= paddr < end:
                return base, device
        raise BusError(paddr)

    def read(self, paddr: int, width: int) -> int:
        """The device's answer at `paddr`.  Raises BusError if nothing is mapped."""
        base, device = self._find(paddr)
        self.reads += 1
        return device.read(paddr - base, width)

    def write(self, paddr: int, width: int, value: int) -> None:
        """Hand the store to the device at `paddr`.  Raises BusError if nothing is mapped."""
        base, device = self._find(paddr)
        self.writes += 1
        device.write(paddr - base, width, value)

    def is_mmio(self, paddr: int) -> bool:
        """Whether some device answers at `paddr`."""
        return any(base <= paddr < end for base, end, _ in self._ranges)

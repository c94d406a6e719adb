"""A VM's emulated disk: the bare machine's disk model, behind MMIO exits,
with DMA the VMM checks frame by frame.

The guest programs the registers of docs/isa.md "Disk" exactly as on the bare
machine; each access is an MMIO exit that emulate.mmio hands to this VM's
`Disk` (vmm/machine/devices/disk.py), so the timing, the status bits and the
interrupt are the device model's own.  What differs is memory: the DMA
address the guest gives is guest-physical, and `GuestDma` (the model's
DmaMemory) translates it through this VM's guest-physical map.  A transfer
is allowed only if every byte lies in the VM's RAM (not past its end, not
wrapping past 2^32: so never another VM's frame or the VMM's) and the paging
mode allows a device at each frame (`dma_allowed`: in direct mode never a
page table).  Otherwise the command completes with ERROR and touches
nothing, as the bare disk does for a buffer outside RAM.  Data written into
guest memory is reported to the paging mode (`guest_written`), which keeps
the shadow tables coherent, and through machine memory to the translated-code
caches.
"""

from __future__ import annotations

from asm.isa import PAGE_MASK, PAGE_SIZE
from vmm.machine.errors import BusError
from vmm.monitor.physmap import GPA, MA, GuestPhysMap


class GuestDma:
    """The memory a VM's disk reaches: guest-physical, checked per frame."""

    def __init__(self, memory, physmap: GuestPhysMap, mode):
        self.memory, self.physmap, self.mode = memory, physmap, mode

    def _pieces(self, gpa: GPA, length: int) -> list[tuple[MA, int, int]] | None:
        """(machine address, offset in the transfer, length) per frame of
        [gpa, gpa + length), or None if any byte is outside the VM's RAM or
        at a frame the paging mode keeps from devices."""
        if gpa < 0 or length < 0 or gpa + length > self.physmap.size:
            return None
        pieces, done = [], 0
        while done < length:
            here = gpa + done
            step = min(length - done, PAGE_SIZE - (here & PAGE_MASK))
            ma = self.physmap.gpa_to_ma(GPA(here))
            if ma is None or not self.mode.dma_allowed(ma):
                return None
            pieces.append((ma, done, step))
            done += step
        return pieces

    def contains(self, gpa: int, length: int) -> bool:
        """Whether a transfer of `length` bytes at guest-physical `gpa` is allowed."""
        return self._pieces(GPA(gpa), length) is not None

    def read_bytes(self, gpa: int, length: int) -> bytes:
        """The guest's bytes (memory to disk).  BusError if not allowed."""
        pieces = self._pieces(GPA(gpa), length)
        if pieces is None:
            raise BusError(gpa)
        return b"".join(self.memory.read_bytes(ma, step) for ma, _, step in pieces)

    def write_bytes(self, gpa: int, data: bytes) -> None:
        """Write `data` into the guest (disk to memory), nothing unless all of
        it is allowed; the paging mode hears of every frame written."""
        pieces = self._pieces(GPA(gpa), len(data))
        if pieces is None:
            raise BusError(gpa)
        for ma, offset, step in pieces:
            self.memory.write_bytes(ma, data[offset:offset + step])
            self.mode.guest_written(ma, step)

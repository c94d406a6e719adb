"""Physical RAM, with decoded-code tracking and a write-watch.

RAM is one bytearray from physical address 0 to `size`; device pages are not
here (see bus.py).  The block translator registers every physical page it
translated code from in `code_pages`; any write to such a page, whether a CPU
store, a DMA transfer or the loader, calls every `code_write_listeners`
entry with the page number before returning, so stale translations are
dropped before the code can run again.

The write-watch is the machine's dirty logging (for live migration,
vmm/monitor/migration.py): `watch(pages)` write-protects pages, and the
first write to a watched page by anyone (a CPU store, the page walker's A/D
bits, DMA, the VMM) moves it from `watched` to `dirty`.  Like code pages,
watched pages are kept out of the CPU's fast write tables (mmu.py), so every
write to them takes the slow path that sees it; the owner of the watch must
empty those tables when it arms it (Machine.watch_writes).
"""

from __future__ import annotations

import struct
from typing import Callable

from asm.isa import MAX_RAM, PAGE_SHIFT, PAGE_SIZE
from vmm.machine.errors import BusError

# width -> (unpack_from, pack_into) of an unsigned little-endian value
ACCESSORS = {width: (struct.Struct(code).unpack_from, struct.Struct(code).pack_into)
             for width, code in ((1, "<B"), (2, "<H"), (4, "<I"))}


class PhysicalMemory:
    """`size` bytes of RAM (a multiple of the page size, at most isa.MAX_RAM)."""

    def __init__(self, size: int):
        if size <= 0 or size % PAGE_SIZE or size > MAX_RAM:
            raise ValueError(f"memory size {size:#x} must be a positive multiple of "
                             f"{PAGE_SIZE:#x} up to {MAX_RAM:#x}")
        self.size = size
        self.ram = bytearray(size)
        self.code_pages: set[int] = set()
        self.code_write_listeners: list[Callable[[int], None]] = []
        self.watched: set[int] = set()       # write-protected pages (module doc)
        self.dirty: set[int] = set()         # watched pages written since they were watched

    def contains(self, paddr: int, length: int) -> bool:
        """Whether [paddr, paddr + length) is all RAM."""
        return 0 <= paddr and paddr + length <= self.size

    def _check(self, paddr: int, length: int) -> None:
        """Raise BusError (at the first address outside RAM) unless all of it is RAM."""
        if not self.contains(paddr, length):
            raise BusError(paddr if not 0 <= paddr < self.size else self.size)

    def watch(self, pages) -> None:
        """Write-protect `pages` (module doc): each one's next write logs it in `dirty`."""
        self.watched.update(pages)

    def unwatch(self) -> set[int]:
        """End the watch: the pages written since they were watched (`dirty`, then emptied)."""
        dirty, self.dirty = self.dirty, set()
        self.watched.clear()
        return dirty

    def written(self, paddr: int, length: int) -> None:
        """Log every watched page in [paddr, paddr + length) as dirty and tell
        the listeners about every code page in it."""
        if not (self.code_pages or self.watched) or length <= 0:
            return
        for page in range(paddr >> PAGE_SHIFT, ((paddr + length - 1) >> PAGE_SHIFT) + 1):
            if page in self.watched:
                self.watched.discard(page)
                self.dirty.add(page)
            if page in self.code_pages:
                self.code_pages.discard(page)
                for listener in self.code_write_listeners:
                    listener(page)

    def read(self, paddr: int, width: int) -> int:
        """The little-endian value of `width` bytes at `paddr`.  BusError outside RAM."""
        if paddr < 0 or paddr + width > self.size:
            self._check(paddr, width)
        accessors = ACCESSORS.get(width)
        if accessors is None:
            return int.from_bytes(self.ram[paddr:paddr + width], "little")
        return accessors[0](self.ram, paddr)[0]

    def write(self, paddr: int, width: int, value: int) -> None:
        """Store the low `width` bytes of `value` at `paddr`.  BusError outside RAM."""
        if paddr < 0 or paddr + width > self.size:
            self._check(paddr, width)
        accessors = ACCESSORS.get(width)
        if accessors is None:
            self.ram[paddr:paddr + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")
        else:
            accessors[1](self.ram, paddr, value & ((1 << 8 * width) - 1))
        code, watched = self.code_pages, self.watched
        if code or watched:
            first, last = paddr >> PAGE_SHIFT, (paddr + width - 1) >> PAGE_SHIFT
            if width > PAGE_SIZE or first in code or last in code or first in watched or last in watched:
                self.written(paddr, width)

    def read_bytes(self, paddr: int, length: int) -> bytes:
        """A copy of [paddr, paddr + length).  BusError outside RAM."""
        self._check(paddr, length)
        return bytes(self.ram[paddr:paddr + length])

    def write_bytes(self, paddr: int, data: bytes) -> None:
        """Copy `data` to `paddr`.  BusError (and nothing written) outside RAM."""
        self._check(paddr, len(data))
        self.ram[paddr:paddr + len(data)] = data
        self.written(paddr, len(data))

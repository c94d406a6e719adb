"""The Kite32 MMU: two-level page walk, the TLB, and the CPU's fast lookup tables.

Architectural state (docs/internals.md "Architecture decisions"):

    ptb      bits [31:12] page-directory frame, bit 0 PTB_ENABLE
    va       [31:22] directory index | [21:12] table index | [11:0] offset
    PDE/PTE  frame[31:12] | D A U W P (bits 4..0), one format for both levels

The walk, the permission rule, the error code and the A/D bits a walk sets
are asm.arch's (walk, permission_error, accessed_entry), the same rules the
VMM's software walker applies.

The TLB (`tlb`: virtual page number -> entry) caches a translation with its
effective permissions: entry = arch.tlb_entry = frame | (PDE & PTE & (W|U))
| (PTE & D).  Permissions are checked against the cached entry; a write
that they allow through an entry with D clear walks again.  It
is filled by every successful walk and emptied only by `flush` (tlbflush,
ptb writes) and `invalidate` (tlbinv).  The walk again for D counts in
page_walks, not as a miss.

Below the TLB sit the CPU's fast tables, QEMU-style: `fast_read[user]` and
`fast_write[user]` map a virtual page number to (physical page base -
virtual page base) for RAM pages only, and only when the access is allowed
without a walk; `fast_write` also leaves out pages holding translated code
(their stores must go through the slow path to invalidate).  They are a
cache of the TLB: clearing them never changes behaviour, only speed.

Decisions where the spec is silent:
- A and D are written back only when they change (each write is a walk_ref).
- A faulting walk changes nothing (no A/D bits, no TLB fill).
- A permission fault found on a TLB entry does not walk again.
- A PDE or PTE outside RAM raises the bus error exception, badaddr = the
  virtual address being translated.
"""

from __future__ import annotations

import struct

from asm.arch import (Access, TableMiss, WalkFault, accessed_entry, page_fault_cause, permission_error,
                      tlb_entry, walk)
from asm.isa import EXC_BUS_ERROR, PAGE_MASK, PAGE_SHIFT, PTB_ENABLE, PTB_FRAME_MASK, PTE_D, PTE_FRAME_MASK
from vmm.machine.counters import Counters
from vmm.machine.memory import PhysicalMemory

READ, WRITE, FETCH = Access.READ, Access.WRITE, Access.FETCH
WORD = struct.Struct("<I").unpack_from


class Fault(Exception):
    """A translation that fails: the guest exception to raise.  `cause` is
    the full cause value (page faults carry their error code in [11:8])."""

    def __init__(self, cause: int, badaddr: int):
        super().__init__(cause, badaddr)
        self.cause = cause
        self.badaddr = badaddr


class MMU:
    """Translation for one CPU.  Counts misses, walks and walk references in `counters`."""

    def __init__(self, memory: PhysicalMemory, counters: Counters):
        self.memory = memory
        self.counters = counters
        self.enabled = False
        self.root = 0
        self.tlb: dict[int, int] = {}
        self.fast_read: tuple[dict[int, int], dict[int, int]] = ({}, {})    # [user]
        self.fast_write: tuple[dict[int, int], dict[int, int]] = ({}, {})   # [user]
        self._fast_writers: dict[int, set[tuple[bool, int]]] = {}     # ppn -> (user, vpn) in fast_write

    def set_ptb(self, ptb: int) -> None:
        """Load ptb: paging on iff PTB_ENABLE; flushes the whole TLB."""
        self.enabled = bool(ptb & PTB_ENABLE)
        self.root = ptb & PTB_FRAME_MASK
        self.flush()

    def flush(self) -> None:
        """Invalidate every TLB entry (and the fast tables)."""
        self.tlb.clear()
        self.clear_fast()

    def invalidate(self, va: int) -> None:
        """Invalidate the TLB entry of the page holding `va` (and its fast entries)."""
        vpn = va >> PAGE_SHIFT
        self.tlb.pop(vpn, None)
        for table in self.fast_read + self.fast_write:
            table.pop(vpn, None)

    def clear_fast(self) -> None:
        """Empty the fast tables; the TLB itself is kept."""
        for table in self.fast_read + self.fast_write:
            table.clear()
        self._fast_writers.clear()

    def forget_fast_write(self, ppn: int) -> None:
        """Physical page `ppn` just started holding code: drop the fast write
        entries that lead to it (and perhaps a few stale ones, which is harmless)."""
        for user, vpn in self._fast_writers.pop(ppn, ()):
            self.fast_write[user].pop(vpn, None)

    def translate(self, va: int, access: Access, user: bool) -> int:
        """The physical address for `access` at `va` in user or kernel mode;
        fills the fast tables for plain RAM.  Raises Fault (page fault, or
        bus error from a page table outside RAM)."""
        if not self.enabled:
            self._fill_fast(va, va, access, user)
            return va
        vpn = va >> PAGE_SHIFT
        entry = self.tlb.get(vpn)
        if entry is None:
            self.counters.tlb_misses += 1
            entry = self._walk(va, access, user)
        else:
            error = permission_error(entry, access, user)
            if error is not None:
                raise Fault(page_fault_cause(error), va)
            if access is WRITE and not entry & PTE_D:
                entry = self._walk(va, access, user)
        pa = (entry & PTE_FRAME_MASK) | (va & PAGE_MASK)
        self._fill_fast(va, pa, access, user)
        return pa

    def _fill_fast(self, va: int, pa: int, access: Access, user: bool) -> None:
        """Record the page in the fast table of `access` if it is plain RAM."""
        ppn = pa >> PAGE_SHIFT
        if not self.memory.contains(pa & ~PAGE_MASK, 1 << PAGE_SHIFT):
            return
        offset = (pa & ~PAGE_MASK) - (va & ~PAGE_MASK)
        if access is READ:
            self.fast_read[user][va >> PAGE_SHIFT] = offset
        elif access is WRITE and ppn not in self.memory.code_pages:
            self.fast_write[user][va >> PAGE_SHIFT] = offset
            self._fast_writers.setdefault(ppn, set()).add((user, va >> PAGE_SHIFT))

    def _walk(self, va: int, access: Access, user: bool) -> int:
        """Walk the two levels for `va` (asm.arch.walk), set A (and D on a
        write) in memory, fill the TLB; the new entry.  Raises Fault and
        changes nothing then."""
        self.counters.page_walks += 1
        found = walk(self.root, va, access, user, self._read_entry)
        if isinstance(found, TableMiss):
            raise Fault(EXC_BUS_ERROR, va)
        if isinstance(found, WalkFault):
            raise Fault(page_fault_cause(found.error), va)
        self._write_entry(found.pde_address, found.pde, accessed_entry(found.pde, access, leaf=False))
        pte = accessed_entry(found.pte, access, leaf=True)
        self._write_entry(found.pte_address, found.pte, pte)
        entry = tlb_entry(found.pde, pte)
        self.tlb[va >> PAGE_SHIFT] = entry
        return entry

    def _read_entry(self, paddr: int) -> int | None:
        """One page-table word, or None if it is not in RAM."""
        if paddr < 0 or paddr + 4 > self.memory.size:
            return None
        self.counters.walk_refs += 1
        return WORD(self.memory.ram, paddr)[0]

    def _write_entry(self, paddr: int, old: int, new: int) -> None:
        """Write back a page-table word if the walker changed its A/D bits."""
        if new != old:
            self.counters.walk_refs += 1
            self.memory.write(paddr, 4, new)

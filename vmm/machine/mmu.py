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
(their stores must go through the slow path to invalidate) and pages under
the write-watch (memory.py: the first store logs the page dirty).  They are a
cache of the TLB: clearing them never changes behaviour, only speed.

Guest mode (the virtualization extension, docs/isa.md "Virtualization
extension (optional)"): `enter_guest(nptb, ptb)` puts the MMU on the guest's
side, where every access is translated (enabled is True even with the
guest's paging off: gva = gpa, then the nested map) and a miss takes the
two-dimensional walk (_walk_2d): arch.walk of the guest's tables whose
every entry address, and the final frame, goes through the nested walk
(arch.nested_walk, under the nested root); 8 references for 2 x 2 levels,
every one in walk_refs, the nested ones also in vm.nested_walk_refs.  The
TLB caches the composed gva -> machine entry (arch.composed_entry).  The
page-walk cache (`pwc`, NPTB_PWC) keeps the nested translation of each guest
table page.  A nested miss or denial raises Fault(GUEST_EXIT |
VMEXIT_NESTED_FAULT, gva) with `nested_fault` = (gpa, access kind) for the
CPU's exit; a guest-table fault is the guest's page fault.

The TLB is tagged by side: the host's translations are kept aside while
the guest runs and come back at `exit_guest`, and the guest's are kept
across an exit and taken again by the next entry with the same nptb and
guest ptb (else they and the page-walk cache start empty).  `flush`
empties the current side's TLB and the page-walk cache; on the host side it
also drops the kept guest translations (host tlbflush and ptb writes reach
every translation, the INVEPT analogue: the host flushes after changing a
nested map).  The fast tables follow the current side (emptied at each switch).

Decisions where the spec is silent:
- A and D are written back only when they change (each write is a walk_ref).
- A faulting walk changes nothing (no A/D bits, no TLB fill).
- A permission fault found on a TLB entry does not walk again.
- A PDE or PTE outside RAM raises the bus error exception, badaddr = the
  virtual address being translated.
"""

from __future__ import annotations

import struct

from asm.arch import (READ, WRITE, Access, NestedMmio, TableMiss, WalkFault, accessed_entry,
                      composed_entry, nested_fault_access, nested_walk, page_fault_cause, permission_error,
                      tlb_entry, walk)
from asm.isa import (EXC_BUS_ERROR, NF_MISCONFIG, NPTB_PWC, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PF_PRESENT,
                     PTB_ENABLE, PTB_FRAME_MASK, PTE_D, PTE_FRAME_MASK, PTE_U, PTE_W, VMEXIT_NESTED_FAULT)
from vmm.machine.counters import Counters
from vmm.machine.memory import PhysicalMemory
from vmm.machine.translate import GUEST_EXIT

WORD = struct.Struct("<I").unpack_from


class Fault(Exception):
    """A translation that fails: the guest exception to raise.  `cause` is
    the full cause value (page faults carry their error code in [11:8])."""

    def __init__(self, cause: int, badaddr: int):
        # (no super().__init__: BaseException.__new__ has set args already; one is raised per fault)
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
        # guest mode (module doc)
        self.guest = False
        self.guest_paging = False
        self.nptb = 0                                  # the VMCS's nptb word while in guest mode
        self.pwc: dict[int, tuple[int, bool]] = {}     # guest table page -> (machine frame, nested W)
        self.nested_fault: tuple[int, int] | None = None   # (gpa, access kind) of the last nested fault
        self._host: tuple[bool, int, dict] | None = None   # the host's (enabled, root, tlb) while in guest mode
        self._kept: tuple[int, int, dict] | None = None    # the guest's (nptb, ptb, tlb) since the last exit

    def set_ptb(self, ptb: int) -> None:
        """Load ptb: paging on iff PTB_ENABLE; flushes the whole TLB.  In
        guest mode this is the guest's ptb: the guest's paging and root
        (every access is still translated, through the nested map)."""
        if self.guest:
            self.guest_paging = bool(ptb & PTB_ENABLE)
        else:
            self.enabled = bool(ptb & PTB_ENABLE)
        self.root = ptb & PTB_FRAME_MASK
        self.flush()

    def flush(self) -> None:
        """Invalidate every TLB entry of the current side (and the fast
        tables, the page-walk cache and, on the host side, the kept guest
        translations: module doc)."""
        self.tlb.clear()
        self.clear_fast()
        self.pwc.clear()
        if not self.guest:
            self._kept = None

    def enter_guest(self, nptb: int, ptb: int) -> None:
        """Switch to the guest side: nested root and page-walk cache from
        `nptb` (enabled, checked by the caller), the guest's ptb; the guest
        translations kept since the last exit if nptb and ptb are the same,
        else an empty TLB and page-walk cache."""
        kept = self._kept
        self._host, self._kept = (self.enabled, self.root, self.tlb), None
        self.guest, self.enabled, self.nptb = True, True, nptb
        self.guest_paging, self.root = bool(ptb & PTB_ENABLE), ptb & PTB_FRAME_MASK
        if kept is not None and kept[0] == nptb and kept[1] == ptb:
            self.tlb = kept[2]
        else:
            self.tlb = {}
            self.pwc.clear()
        self._walk = self._walk_2d
        self.clear_fast()

    def exit_guest(self, ptb: int) -> None:
        """Back to the host side, keeping the guest's translations (for the
        guest ptb `ptb` it leaves with)."""
        self._kept = (self.nptb, ptb, self.tlb)
        (self.enabled, self.root, self.tlb), self._host = self._host, None
        self.guest = self.guest_paging = False
        del self._walk
        self.clear_fast()

    def leave_guest(self) -> None:
        """Drop guest mode without keeping anything (CPU.reset): the host side, flushed."""
        if self.guest:
            self.exit_guest(0)
        self._kept = None
        self.flush()

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
        elif access is WRITE and ppn not in self.memory.code_pages and ppn not in self.memory.watched:
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

    # --- the two-dimensional walk (guest mode) ---------------------------------------------

    def _walk_2d(self, va: int, access: Access, user: bool) -> int:
        """The guest-mode walk of `va` (module doc): the guest's tables, every
        entry address through the nested map, then A/D in the guest's tables
        (through it too, needing nested W), then the final frame through the
        nested map, then the composed TLB entry.  A/D come before the final
        frame as on the bare machine, whose walk sets them before the access
        that may find no RAM there.  Raises Fault (the guest's page fault, or
        the nested-fault exit); a fault in the guest's walk or at its tables
        changes nothing."""
        self.counters.page_walks += 1
        if not self.guest_paging:
            frame, writable = self._nested(va, access, va, user, table=False)
            entry = composed_entry(PTE_W | PTE_U | PTE_D, frame, writable)
            self.tlb[va >> PAGE_SHIFT] = entry
            return entry
        seen: dict[int, tuple[int, bool]] = {}
        found = walk(self.root, va, access, user, lambda gpa: self._read_guest_entry(gpa, seen, va, user))
        if isinstance(found, WalkFault):
            raise Fault(page_fault_cause(found.error), va)
        writes = [(address, old, new) for address, old, new in (
            (found.pde_address, found.pde, accessed_entry(found.pde, access, leaf=False)),
            (found.pte_address, found.pte, accessed_entry(found.pte, access, leaf=True))) if new != old]
        for address, _, _ in writes:
            if not seen[address][1]:
                self._nested_fault(address, Access.WRITE, user, present=True, table=True, va=va)
        for address, _, new in writes:
            self.counters.walk_refs += 1
            self.memory.write(seen[address][0] | (address & PAGE_MASK), 4, new)
        frame, writable = self._nested(found.address | (va & PAGE_MASK), access, va, user, table=False)
        entry = composed_entry(tlb_entry(found.pde, accessed_entry(found.pte, access, leaf=True)),
                               frame, writable)
        self.tlb[va >> PAGE_SHIFT] = entry
        return entry

    def _read_guest_entry(self, gpa: int, seen: dict, va: int, user: bool) -> int:
        """One guest table word at guest-physical `gpa`, through the nested map."""
        frame, writable = self._nested(gpa, Access.READ, va, user, table=True)
        seen[gpa] = (frame, writable)
        self.counters.walk_refs += 1
        return WORD(self.memory.ram, frame | (gpa & PAGE_MASK))[0]

    def _nested(self, gpa: int, access: Access, va: int, user: bool, table: bool) -> tuple[int, bool]:
        """(machine frame, nested W) of guest-physical `gpa` for `access`
        (arch.nested_walk; a guest table page from the page-walk cache when
        it is on).  Raises the nested-fault Fault."""
        if table and self.nptb & NPTB_PWC:
            cached = self.pwc.get(gpa >> PAGE_SHIFT)
            if cached is not None:
                self.counters.vm.pwc_hits += 1
                return cached
        found = nested_walk(self.nptb & PTB_FRAME_MASK, gpa, access, self._read_nested)
        if isinstance(found, NestedMmio):
            self._nested_fault(gpa, access, user, present=False, table=table, va=va, mmio=True)
        if isinstance(found, TableMiss):
            self._nested_fault(gpa, access, user, present=False, table=table, va=va, misconfig=True)
        if isinstance(found, WalkFault):
            self._nested_fault(gpa, access, user, present=bool(found.error & PF_PRESENT), table=table, va=va)
        frame = found.address
        if not self.memory.contains(frame, PAGE_SIZE):
            self._nested_fault(gpa, access, user, present=True, table=table, va=va, misconfig=True)
        translation = (frame, bool(found.pde & found.pte & PTE_W))
        if table and self.nptb & NPTB_PWC:
            self.pwc[gpa >> PAGE_SHIFT] = translation
        return translation

    def _read_nested(self, maddr: int) -> int | None:
        """One nested table word, or None if it is not in RAM."""
        if maddr < 0 or maddr + 4 > self.memory.size:
            return None
        self.counters.walk_refs += 1
        self.counters.vm.nested_walk_refs += 1
        return WORD(self.memory.ram, maddr)[0]

    def _nested_fault(self, gpa: int, access: Access, user: bool, present: bool, table: bool, va: int,
                      mmio: bool = False, misconfig: bool = False) -> None:
        """Raise the nested-fault exit for `gpa` (the CPU reads nested_fault)."""
        kind = nested_fault_access(access, user, present, table, mmio) | (NF_MISCONFIG if misconfig else 0)
        self.nested_fault = (gpa & 0xFFFFFFFF, kind)
        raise Fault(GUEST_EXIT | VMEXIT_NESTED_FAULT, va)

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

"""Direct paging for paravirtual guests, Xen PV style.

In direct mode the MMU walks the guest's own page tables, and they hold
MACHINE frame numbers.  The guest never writes a page-table frame itself (no
writable mapping of one may exist): it asks the VMM (hypercalls mmu_update,
pin_table, unpin_table, set_base, docs/hypercalls.md) and every entry is
validated here before it reaches memory.

Type accounting, as Xen's page_info (type_info, count_info).  Every frame of
the VM has

    type        none | writable | l1 (page table) | l2 (page directory)
    type_count  uses that need the type: writable leaf mappings (writable),
                PDEs pointing at it (l1), pins and bases (l1, l2)
    ref_count   every reference: present entries of page tables that point at
                it (any W), pins and bases

A frame takes a new type only while its type_count is zero.  It becomes a
page table only by pin_table, which validates it entry by entry; a PDE or a
base may then reference it.  When a page table's type_count drops to zero it
is devalidated: the references its entries held are dropped and its type
becomes none.  So "validated" means exactly: type l1 or l2.

What validation guarantees (the invariants a test recounts):
  - no writable mapping of a page-table frame exists;
  - every present entry of a page table, and every base, reaches a RAM frame
    this VM owns: never another VM's, the VMM's, a free frame or MMIO;
  - a PDE points at an l1 table, a base at a pinned l2 table;
  - type_count and ref_count equal a recount from the tables, pins, bases and
    the VMM's own holds (hold_writable: the per-vCPU page).
A frame whose last writable mapping went away may still be writable through a
stale machine TLB entry: before such a frame becomes a page table the machine
TLB is flushed (counter forced_flushes).

The guest's U bit is written as given: both guest modes run in machine user
mode, so a guest entry without U is unreachable for the guest; user/kernel
isolation comes from the two roots (kernel base, user base) of set_base.

A checkpoint (vmm/monitor/checkpoint.py) saves the accounting in guest frame
numbers (saved_state) and never restores it as saved: revalidate rebuilds it
through pin_table and set_base, and the caller compares the result.

Counters (self.counters): updates_accepted, updates_rejected (mmu_update
elements, including unreadable batch elements), batches, pins, unpins,
base_switches, tlb_flushes (guest requests), invlpgs, forced_flushes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from asm.isa import (MMIO_BASE, PAGE_SHIFT, PAGE_SIZE, PTB_ENABLE, PTE_A, PTE_D, PTE_FRAME_MASK,
                     PTE_P, PTE_U, PTE_W)
from vmm.monitor.hypercall_abi import (E2BIG, EBUSY, EFAULT, EINVAL, EPERM, MMU_UPDATE_ELEMENT_SIZE,
                                       MMU_UPDATE_MAX, OK, PIN_L1, PIN_L2)
from vmm.monitor.physmap import OWNER_FREE, OWNER_VMM, GuestPhysMap, MachineFrames

TYPE_NONE = "none"
TYPE_WRITABLE = "writable"
TYPE_L1 = "l1"
TYPE_L2 = "l2"
LEVEL_TYPES = {PIN_L1: TYPE_L1, PIN_L2: TYPE_L2}

ENTRIES_PER_TABLE = PAGE_SIZE // 4
ENTRY_RESERVED = ~(PTE_FRAME_MASK | PTE_P | PTE_W | PTE_U | PTE_A | PTE_D) & 0xFFFFFFFF
MMIO_FIRST_MFN = MMIO_BASE >> PAGE_SHIFT
WORD_LIMIT = 1 << 32

COUNTER_KEYS = ("updates_accepted", "updates_rejected", "batches", "pins", "unpins", "base_switches",
                "tlb_flushes", "invlpgs", "forced_flushes")


class Rejected(Exception):
    """A request that failed validation; nothing was applied.  `error` is the
    negative return code the guest gets (-EINVAL, -EPERM, -EFAULT, -EBUSY)."""

    def __init__(self, reason: str, error: int = -EINVAL):
        super().__init__(reason)
        self.reason = reason
        self.error = error


class AccountingError(Exception):
    """A broken invariant of the type accounting: a VMM bug, never a guest error."""


@dataclass(slots=True)
class FrameInfo:
    """The accounting state of one frame of the VM."""
    type: str = TYPE_NONE
    type_count: int = 0
    ref_count: int = 0
    pinned: bool = False


@dataclass(frozen=True)
class BatchResult:
    """The outcome of a batch: `done` elements applied; `error` is OK or the
    negative code of the element at `failed_index` (None when all were done or
    the whole batch was refused before its first element)."""
    done: int
    error: int = OK
    failed_index: int | None = None
    reason: str = ""


def ptb_value(mfn: int) -> int:
    """The ptb register value that loads page directory `mfn` with paging on."""
    return (mfn << PAGE_SHIFT) | PTB_ENABLE


class DirectPaging:
    """Validated direct mapping for one VM (see the module docstring).

    `flush_tlb()` flushes the whole machine TLB; `invlpg_machine(va)` one page.
    The VM's frames are those of `physmap` when this is created."""

    def __init__(self, memory, frames: MachineFrames, physmap: GuestPhysMap, vm_id: int,
                 flush_tlb: Callable[[], None], invlpg_machine: Callable[[int], None]):
        self.memory = memory
        self.frames = frames
        self.physmap = physmap
        self.vm_id = vm_id
        self.flush_tlb = flush_tlb
        self.invlpg_machine = invlpg_machine
        self.kernel_base: int | None = None
        self.user_base: int | None = None
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
        self._info = {mfn: FrameInfo() for mfn in physmap.p2m}
        self._stale_writable: set[int] = set()
        self._held: list[int] = []            # frames the VMM itself holds writable (hold_writable)

    # --- queries -------------------------------------------------------------

    def frame_info(self, mfn: int) -> FrameInfo | None:
        """A copy of `mfn`'s accounting state, or None if it is not this VM's frame.
        The VMM must not write guest memory for the guest (emulated DMA, results)
        into a frame whose type is l1 or l2."""
        info = self._info.get(mfn)
        return None if info is None else replace(info)

    def _own_frame(self, mfn: int, what: str) -> FrameInfo:
        """The FrameInfo of `mfn`, which must be a RAM frame this VM owns; raises Rejected
        (naming `what`) for MMIO, frames beyond memory and frames of anyone else."""
        if mfn >= MMIO_FIRST_MFN:
            raise Rejected(f"{what} {mfn:#x} is an MMIO page", -EPERM)
        if mfn >= self.frames.count or (mfn << PAGE_SHIFT) >= self.memory.size:
            raise Rejected(f"{what} {mfn:#x} is beyond memory")
        owner = self.frames.owner(mfn)
        info = self._info.get(mfn)
        if owner != self.vm_id or info is None:
            holder = {OWNER_VMM: "the VMM", OWNER_FREE: "no one (free)"}.get(owner, f"VM {owner}")
            raise Rejected(f"{what} {mfn:#x} belongs to {holder}", -EPERM)
        return info

    def _read_table(self, mfn: int) -> tuple[int, ...]:
        """The ENTRIES_PER_TABLE words of frame `mfn`."""
        data = self.memory.read_bytes(mfn << PAGE_SHIFT, PAGE_SIZE)
        return struct.unpack(f"<{ENTRIES_PER_TABLE}I", data)

    # --- counts ---------------------------------------------------------------

    def _get_type(self, mfn: int, wanted: str) -> None:
        """One more use of `mfn` as `wanted`.  A frame with type_count zero takes the type
        (page-table types only through _validate); raises Rejected otherwise."""
        info = self._info[mfn]
        if info.type_count and info.type != wanted:
            raise Rejected(f"frame {mfn:#x} is in use as {_describe(info)}; it cannot be {wanted}")
        info.type = wanted
        info.type_count += 1

    def _put_type(self, mfn: int) -> None:
        """One use fewer.  At zero the type becomes none: a page table is devalidated (its
        entries' references dropped); a writable frame is remembered as maybe still
        writable through a stale TLB entry."""
        info = self._info[mfn]
        if info.type_count <= 0:
            raise AccountingError(f"put_type: frame {mfn:#x} has type_count {info.type_count}")
        info.type_count -= 1
        if info.type_count:
            return
        old, info.type = info.type, TYPE_NONE
        if old == TYPE_WRITABLE:
            self._stale_writable.add(mfn)
            return
        for entry in self._read_table(mfn):
            self._put_entry(old, entry)

    def _get_ref(self, mfn: int) -> None:
        self._info[mfn].ref_count += 1

    def _put_ref(self, mfn: int) -> None:
        info = self._info[mfn]
        if info.ref_count <= 0:
            raise AccountingError(f"put_ref: frame {mfn:#x} has ref_count {info.ref_count}")
        info.ref_count -= 1

    # --- entries -------------------------------------------------------------------

    def _get_entry(self, table_type: str, entry: int) -> None:
        """Take the references `entry` holds as an entry of a `table_type` table (none if it
        is not present).  Raises Rejected, having taken nothing, if it may not exist."""
        if not entry & PTE_P:
            return
        if entry & ENTRY_RESERVED:
            raise Rejected(f"entry {entry:#010x} has reserved bits set")
        mfn = entry >> PAGE_SHIFT
        if table_type == TYPE_L2:
            info = self._own_frame(mfn, "PDE target")
            if info.type != TYPE_L1:
                raise Rejected(f"PDE target {mfn:#x} is not an L1 page table (it is {_describe(info)})")
            self._get_type(mfn, TYPE_L1)
        else:
            self._own_frame(mfn, "frame")
            if entry & PTE_W:
                self._get_type(mfn, TYPE_WRITABLE)
        self._get_ref(mfn)

    def _put_entry(self, table_type: str, entry: int) -> None:
        """Drop the references a validated `entry` of a `table_type` table holds."""
        if not entry & PTE_P:
            return
        mfn = entry >> PAGE_SHIFT
        self._put_ref(mfn)
        if table_type == TYPE_L2 or entry & PTE_W:
            self._put_type(mfn)

    def _validate(self, mfn: int, table_type: str) -> None:
        """Make `mfn` (type_count zero) a `table_type` table with type_count 1, taking every
        entry's references.  Raises Rejected, with every count as before, at a bad entry."""
        if mfn in self._stale_writable:
            self._flush_machine_tlb()
            self.counters["forced_flushes"] += 1
        info = self._info[mfn]
        info.type, info.type_count = table_type, 1
        taken: list[int] = []
        try:
            for index, entry in enumerate(self._read_table(mfn)):
                self._get_entry(table_type, entry)
                taken.append(entry)
        except Rejected as error:
            for entry in reversed(taken):
                self._put_entry(table_type, entry)
            info.type, info.type_count = TYPE_NONE, 0
            raise Rejected(f"entry {index} of frame {mfn:#x}: {error.reason}", error.error) from None

    # --- updates --------------------------------------------------------------------

    def _entry_table(self, ptr_ma: int) -> str:
        """The type (l1 or l2) of the page table holding the entry at machine address `ptr_ma`;
        raises Rejected unless it is 4-byte aligned inside a page table of this VM."""
        if not 0 <= ptr_ma < WORD_LIMIT or ptr_ma & 3:
            raise Rejected(f"PTE address {ptr_ma:#010x} is not 4-byte aligned")
        mfn = ptr_ma >> PAGE_SHIFT
        info = self._own_frame(mfn, "PTE address frame")
        if info.type not in (TYPE_L1, TYPE_L2):
            raise Rejected(f"PTE address {ptr_ma:#010x} is not inside a page table "
                           f"(frame {mfn:#x} is {_describe(info)})")
        return info.type

    def mmu_update(self, ptr_ma: int, value: int) -> None:
        """Validate one update (entry at machine address `ptr_ma` := `value`) and apply it,
        moving the counts from the old entry to the new.  Raises Rejected having applied
        nothing.  There is no fast path: a change of the W bit alone is validated too."""
        try:
            table_type = self._entry_table(ptr_ma)
            if not 0 <= value < WORD_LIMIT:
                raise Rejected(f"entry {value:#x} is not a 32-bit word")
            self._get_entry(table_type, value)
        except Rejected:
            self.counters["updates_rejected"] += 1
            raise
        old = self.memory.read(ptr_ma, 4)
        self.memory.write(ptr_ma, 4, value)
        self._put_entry(table_type, old)
        self.counters["updates_accepted"] += 1

    def read_batch(self, read_guest_word: Callable[[int], int | None], gva: int,
                   count: int) -> Iterator[tuple[int, int]]:
        """Yield the (ptr, val) of each of `count` elements at guest-virtual `gva`, reading an
        element only when the caller asks for it.  `read_guest_word(gva)` returns the word or
        None if the guest cannot read it; an unreadable element raises Rejected(-EFAULT)."""
        for index in range(count):
            at = gva + index * MMU_UPDATE_ELEMENT_SIZE
            ptr = read_guest_word(at) if at + MMU_UPDATE_ELEMENT_SIZE <= WORD_LIMIT else None
            val = read_guest_word(at + 4) if ptr is not None else None
            if val is None:
                self.counters["updates_rejected"] += 1
                raise Rejected(f"batch element {index} at {at:#x} is outside guest memory", -EFAULT)
            yield ptr, val

    def apply_batch(self, read_guest_word: Callable[[int], int | None], gva: int,
                    count: int) -> BatchResult:
        """Apply `count` elements from `gva` in order (see read_batch); stop at the first one
        refused or unreadable.  A batch over MMU_UPDATE_MAX or at an unaligned `gva` is
        refused whole."""
        self.counters["batches"] += 1
        if count > MMU_UPDATE_MAX:
            return BatchResult(0, -E2BIG, None, f"batch of {count} elements (at most {MMU_UPDATE_MAX})")
        if gva & 3:
            return BatchResult(0, -EINVAL, None, f"batch address {gva:#x} is not 4-byte aligned")
        done = 0
        try:
            for ptr, val in self.read_batch(read_guest_word, gva, count):
                self.mmu_update(ptr, val)
                done += 1
        except Rejected as error:
            return BatchResult(done, error.error, done, error.reason)
        return BatchResult(done)

    # --- frames the VMM writes for the guest ----------------------------------------------

    def hold_writable(self, mfn: int) -> None:
        """Take a writable type reference to `mfn` for the VMM itself (a page
        it will write into for the guest, such as the per-vCPU page), so it
        cannot become a page table while held.  Raises Rejected (-EPERM for a
        frame not this VM's RAM, -EBUSY for a page table) having taken nothing."""
        info = self._own_frame(mfn, "frame")
        if info.type_count and info.type != TYPE_WRITABLE:
            raise Rejected(f"frame {mfn:#x} is {_describe(info)}", -EBUSY)
        self._get_type(mfn, TYPE_WRITABLE)
        self._get_ref(mfn)
        self._held.append(mfn)

    def release_writable(self, mfn: int) -> None:
        """Drop one hold_writable reference to `mfn`."""
        self._held.remove(mfn)
        self._put_ref(mfn)
        self._put_type(mfn)

    # --- pins and bases --------------------------------------------------------------

    def pin_table(self, mfn: int, level: int) -> None:
        """Validate `mfn` as a page table of `level` (PIN_L1 or PIN_L2), unless it already is
        one, and keep it typed until unpin.  Raises Rejected having changed nothing."""
        table_type = LEVEL_TYPES.get(level)
        if table_type is None:
            raise Rejected(f"page-table level {level} is not PIN_L1 ({PIN_L1}) or PIN_L2 ({PIN_L2})")
        info = self._own_frame(mfn, "page table")
        if info.pinned:
            raise Rejected(f"frame {mfn:#x} is already pinned")
        if info.type_count and info.type != table_type:
            raise Rejected(f"frame {mfn:#x} is {_describe(info)}; it cannot be pinned as {table_type}")
        if info.type_count:
            info.type_count += 1
        else:
            self._validate(mfn, table_type)
        self._get_ref(mfn)
        info.pinned = True
        self.counters["pins"] += 1

    def unpin(self, mfn: int) -> None:
        """Drop the pin of `mfn` (the table is devalidated if nothing else uses it).  Refused
        while it is the kernel or user base."""
        info = self._own_frame(mfn, "page table")
        if not info.pinned:
            raise Rejected(f"frame {mfn:#x} is not pinned")
        if mfn in (self.kernel_base, self.user_base):
            raise Rejected(f"frame {mfn:#x} is a current base", -EBUSY)
        self._drop_pin(mfn)
        self.counters["unpins"] += 1

    def _drop_pin(self, mfn: int) -> None:
        self._info[mfn].pinned = False
        self._put_ref(mfn)
        self._put_type(mfn)

    def set_base(self, kernel_mfn: int, user_mfn: int) -> tuple[int, int]:
        """Make the two roots current; each must be a pinned L2 of this VM (they may be the
        same).  Returns their ptb values (kernel, user).  Does not touch the machine's ptb:
        the VMM loads the one for the current virtual mode, which flushes the TLB."""
        for mfn in (kernel_mfn, user_mfn):
            info = self._own_frame(mfn, "base")
            if not (info.pinned and info.type == TYPE_L2):
                raise Rejected(f"base {mfn:#x} is not a pinned L2 page table (it is {_describe(info)})")
        for mfn in (kernel_mfn, user_mfn):
            self._get_type(mfn, TYPE_L2)
            self._get_ref(mfn)
        self._drop_bases()
        self.kernel_base, self.user_base = kernel_mfn, user_mfn
        self.counters["base_switches"] += 1
        return ptb_value(kernel_mfn), ptb_value(user_mfn)

    def _drop_bases(self) -> None:
        for mfn in (self.kernel_base, self.user_base):
            if mfn is not None:
                self._put_ref(mfn)
                self._put_type(mfn)
        self.kernel_base = self.user_base = None

    # --- checkpoints (vmm/monitor/checkpoint.py) ----------------------------------------

    def saved_state(self) -> dict:
        """The accounting in guest frame numbers, never machine ones: `pins`
        ([gfn, "l1" or "l2"] by gfn), `bases` ([kernel gfn, user gfn] or None),
        `held` (the VMM's holds, sorted gfns) and `frames` (accounting())."""
        gfn = self.physmap.gfn
        return {"pins": [[gfn(mfn), self._info[mfn].type] for mfn in self.physmap.p2m if self._info[mfn].pinned],
                "bases": None if self.kernel_base is None else [gfn(self.kernel_base), gfn(self.user_base)],
                "held": sorted(gfn(mfn) for mfn in self._held),
                "frames": self.accounting()}

    def accounting(self) -> list[list]:
        """[gfn, type, type_count, ref_count] of every frame with a type or a
        reference, by gfn (a frame mapped read-only only: type none, refs)."""
        return [[gfn, info.type, info.type_count, info.ref_count] for gfn, mfn in enumerate(self.physmap.p2m)
                if (info := self._info[mfn]).type != TYPE_NONE or info.type_count or info.ref_count]

    def revalidate(self, pins: list[tuple[int, str]], bases: tuple[int, int], typed_l1: list[int]) -> None:
        """Rebuild a fresh VM's accounting from saved_state's guest frames
        through the checks a guest's hypercalls pass: pin every L1 of `pins`
        and of `typed_l1` (saved l1 tables, pinned or only referenced), then
        the L2s of `pins` (their PDEs need typed L1s), set `bases`, and drop
        the pins only the rebuild took.  Raises Rejected at the first
        refusal (the caller discards the VM).  Takes no holds."""
        p2m = self.physmap.p2m
        pinned_l1 = {gfn for gfn, kind in pins if kind == TYPE_L1}
        for gfn in sorted(pinned_l1 | set(typed_l1)):
            self.pin_table(p2m[gfn], PIN_L1)
        for gfn in sorted(gfn for gfn, kind in pins if kind != TYPE_L1):
            self.pin_table(p2m[gfn], PIN_L2)
        self.set_base(p2m[bases[0]], p2m[bases[1]])
        for gfn in sorted(set(typed_l1) - pinned_l1):
            self._drop_pin(p2m[gfn])

    # --- TLB and teardown -----------------------------------------------------------

    def _flush_machine_tlb(self) -> None:
        self.flush_tlb()
        self._stale_writable.clear()

    def tlb_flush(self) -> None:
        """The guest's full TLB flush, passed to the machine."""
        self._flush_machine_tlb()
        self.counters["tlb_flushes"] += 1

    def invlpg(self, va: int) -> None:
        """The guest's one-page TLB flush (virtual address `va`), passed to the machine."""
        self.invlpg_machine(va)
        self.counters["invlpgs"] += 1

    def teardown(self) -> None:
        """Drop both bases, every pin and every hold, flush the machine TLB, and
        check that every type_count and ref_count is back to zero; raises
        AccountingError if not."""
        while self._held:
            self.release_writable(self._held[-1])
        self._drop_bases()
        for mfn, info in self._info.items():
            if info.pinned:
                self._drop_pin(mfn)
        self._flush_machine_tlb()
        left = [f"{mfn:#x} {_describe(info)} refs {info.ref_count}" for mfn, info in self._info.items()
                if info.type_count or info.ref_count or info.type != TYPE_NONE]
        if left:
            raise AccountingError("teardown: counts not back to zero: " + ", ".join(left))


def _describe(info: FrameInfo) -> str:
    """A frame's type for a message: 'l1 (type count 2)', 'mapped writable (1)', 'untyped'."""
    if info.type == TYPE_NONE:
        return "untyped"
    if info.type == TYPE_WRITABLE:
        return f"mapped writable ({info.type_count})"
    return f"{info.type} (type count {info.type_count})"

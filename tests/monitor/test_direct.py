"""Direct paging (vmm/monitor/direct.py): every malicious update is refused with
nothing applied, the good paths build working address spaces, and a property
test recounts the type accounting from scratch after random update sequences.

The guest's tables are written by hand into machine memory before they are
pinned, as a PV guest does with its own (not yet page-table) frames.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm.isa import MMIO_BASE, PAGE_SHIFT, PTB_ENABLE, PTB_FRAME_MASK, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W

from vmm.machine.memory import PhysicalMemory
from vmm.monitor.direct import (TYPE_L1, TYPE_L2, TYPE_NONE, TYPE_WRITABLE, AccountingError, DirectPaging,
                                Rejected)
from vmm.monitor.hypercall_abi import E2BIG, EBUSY, EFAULT, EINVAL, EPERM, MMU_UPDATE_MAX, PIN_L1, PIN_L2
from vmm.monitor.physmap import OWNER_VMM, GuestPhysMap, MachineFrames

TOTAL_FRAMES = 32
VM, OTHER_VM = 1, 2
RW = PTE_P | PTE_W | PTE_U
RO = PTE_P | PTE_U


def pte(mfn: int, flags: int = RW) -> int:
    return (mfn << PAGE_SHIFT) | flags


class World:
    """Machine memory with the VMM's frames, VM 1 (16 frames) and VM 2 (4 frames);
    `paging` is VM 1's DirectPaging; flushes are recorded."""

    def __init__(self, memory=None):
        self.memory = memory or PhysicalMemory(TOTAL_FRAMES << PAGE_SHIFT)
        self.frames = MachineFrames(TOTAL_FRAMES)
        self.vmm_frames = self.frames.allocate(OWNER_VMM, 2)
        self.mine = self.frames.allocate(VM, 16)
        self.others = self.frames.allocate(OTHER_VM, 4)
        self.free = self.frames.owned_by(-1)
        self.flushes: list[object] = []
        self.paging = DirectPaging(self.memory, self.frames, GuestPhysMap(VM, self.mine), VM,
                                   lambda: self.flushes.append("all"), self.flushes.append)

    def write(self, mfn: int, index: int, value: int) -> None:
        """The guest writing word `index` of its (not page-table) frame `mfn`."""
        self.memory.write((mfn << PAGE_SHIFT) + 4 * index, 4, value)

    def read(self, mfn: int, index: int) -> int:
        return self.memory.read((mfn << PAGE_SHIFT) + 4 * index, 4)

    def entry_ma(self, mfn: int, index: int) -> int:
        return (mfn << PAGE_SHIFT) + 4 * index

    def state(self):
        """Everything an update may change: accounting, bases and memory."""
        infos = {mfn: self.paging.frame_info(mfn) for mfn in self.mine}
        memory = self.memory.read_bytes(0, self.memory.size)
        return infos, self.paging.kernel_base, self.paging.user_base, memory


@pytest.fixture
def world(physical_memory):
    return World(physical_memory(TOTAL_FRAMES << PAGE_SHIFT))


@pytest.fixture
def space(world):
    """A small address space: L2 `top` -> L1 `table` -> data frame `data` (writable, VA 0);
    `top` pinned and loaded as both bases.  `spare` frames are untouched."""
    top, table, data, *spare = world.mine
    world.write(table, 0, pte(data))
    world.paging.pin_table(table, PIN_L1)
    world.write(top, 0, pte(table))
    world.paging.pin_table(top, PIN_L2)
    world.paging.set_base(top, top)
    world.top, world.table, world.data, world.spare = top, table, data, spare
    return world


def assert_refused(world, action, error: int, reason: str) -> None:
    """`action()` raises Rejected with `error` and a reason matching `reason`, changing nothing."""
    before = world.state()
    with pytest.raises(Rejected, match=reason) as caught:
        action()
    assert caught.value.error == -error
    assert world.state() == before


# --- malicious updates: refused, nothing applied, counts unchanged -----------------------

@pytest.mark.parametrize("whose", ["other VM", "VMM", "free"])
def test_mapping_a_frame_the_vm_does_not_own_is_refused(space, whose):
    target = {"other VM": space.others[0], "VMM": space.vmm_frames[0], "free": space.free[0]}[whose]
    rejected = space.paging.counters["updates_rejected"]
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1), pte(target, RO)),
                   EPERM, "belongs to")
    assert space.paging.counters["updates_rejected"] == rejected + 1


def test_mapping_a_frame_the_vmm_took_back_is_refused(space):
    """Ownership is MachineFrames' record, not the VM's physmap, which may still list the frame."""
    taken_back = space.spare[0]
    space.frames.release(VM, [taken_back])
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1), pte(taken_back, RO)),
                   EPERM, "belongs to no one")


def test_mapping_an_mmio_page_is_refused(space):
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1), MMIO_BASE | RW),
                   EPERM, "MMIO page")


@pytest.mark.parametrize("which", ["table", "top"])
def test_mapping_a_page_table_writable_is_refused(space, which):
    target = getattr(space, which)
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1), pte(target, RW)),
                   EINVAL, "cannot be writable")


def test_mapping_a_page_table_read_only_is_allowed(space):
    space.paging.mmu_update(space.entry_ma(space.table, 1), pte(space.top, RO))
    assert space.read(space.table, 1) == pte(space.top, RO)
    assert space.paging.frame_info(space.top).ref_count == 4     # pin, kernel base, user base, this


def test_pinning_a_writable_mapped_page_is_refused(space):
    assert_refused(space, lambda: space.paging.pin_table(space.data, PIN_L1), EINVAL, "mapped writable")


def test_pointing_a_pde_at_a_writable_mapped_page_is_refused(space):
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.top, 1), pte(space.data)),
                   EINVAL, "not an L1 page table")


def test_flipping_only_the_w_bit_of_an_entry_mapping_a_page_table_is_refused(space):
    """XSA-182: a fast path that skipped validation when only 'safe' bits changed let W through."""
    space.paging.mmu_update(space.entry_ma(space.table, 1), pte(space.table, RO))
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1), pte(space.table, RW)),
                   EINVAL, "cannot be writable")
    assert space.read(space.table, 1) == pte(space.table, RO)


@pytest.mark.parametrize("which", ["data", "unvalidated", "l1"])
def test_a_base_must_be_a_pinned_l2(space, which):
    target = {"data": space.data, "unvalidated": space.spare[0], "l1": space.table}[which]
    assert_refused(space, lambda: space.paging.set_base(target, space.top), EINVAL, "not a pinned L2")
    assert_refused(space, lambda: space.paging.set_base(space.top, target), EINVAL, "not a pinned L2")


@pytest.mark.parametrize("which", ["untyped", "l2"])
def test_a_pde_pointing_at_a_frame_that_is_not_an_l1_table_is_refused(space, which):
    target = {"untyped": space.spare[0], "l2": space.top}[which]
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.top, 1), pte(target)),
                   EINVAL, "not an L1 page table")


def test_a_frame_number_beyond_memory_is_refused(space):
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1),
                                                          pte(TOTAL_FRAMES + 3, RO)),
                   EINVAL, "beyond memory")
    assert_refused(space, lambda: space.paging.mmu_update(pte(TOTAL_FRAMES, 0), pte(space.data)),
                   EINVAL, "beyond memory")


def test_a_misaligned_pte_address_is_refused(space):
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1) + 2, 0),
                   EINVAL, "not 4-byte aligned")


def test_a_pte_address_outside_a_page_table_is_refused(space):
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.data, 1), pte(space.data)),
                   EINVAL, "not inside a page table")
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.others[0], 0), 0),
                   EPERM, "belongs to VM 2")


def test_reserved_bits_in_a_present_entry_are_refused(space):
    assert_refused(space, lambda: space.paging.mmu_update(space.entry_ma(space.table, 1),
                                                          pte(space.data) | 0x100),
                   EINVAL, "reserved bits")


# --- frames the VMM holds (the per-vCPU page) ----------------------------------------------

def test_a_frame_the_vmm_holds_cannot_be_pinned_as_a_page_table_until_released(space):
    page = space.spare[0]
    space.paging.hold_writable(page)
    assert_refused(space, lambda: space.paging.pin_table(page, PIN_L1), EINVAL, "mapped writable")
    space.paging.release_writable(page)
    space.paging.pin_table(page, PIN_L1)            # a zero frame is a valid L1 once no one holds it
    assert space.paging.frame_info(page).type == "l1"


def test_the_vmm_holds_neither_a_page_table_nor_a_frame_not_this_vms(space):
    assert_refused(space, lambda: space.paging.hold_writable(space.table), EBUSY, "l1")
    assert_refused(space, lambda: space.paging.hold_writable(space.others[0]), EPERM, "belongs to")


def test_teardown_drops_the_holds_and_every_count_comes_back_to_zero(space):
    space.paging.hold_writable(space.spare[0])
    space.paging.hold_writable(space.data)          # held and mapped writable at once
    space.paging.teardown()
    assert all(space.paging.frame_info(mfn).type_count == space.paging.frame_info(mfn).ref_count == 0
               for mfn in space.mine)


def test_unpinning_the_current_base_is_refused(space):
    assert_refused(space, lambda: space.paging.unpin(space.top), EBUSY, "current base")


def test_pinning_a_table_with_a_bad_entry_takes_back_the_good_ones(world):
    table, data, page = world.mine[:3]
    world.write(table, 0, pte(data))                  # good: takes a writable type on `data`
    world.write(table, 1, pte(page, RO))              # good: a reference on `page`
    world.write(table, 700, pte(world.others[1], RO))  # bad
    assert_refused(world, lambda: world.paging.pin_table(table, PIN_L1), EPERM, "entry 700 .* belongs to VM 2")
    assert world.paging.frame_info(data).type == TYPE_NONE


def test_a_table_mapping_itself_writable_cannot_be_pinned(world):
    table = world.mine[0]
    world.write(table, 3, pte(table, RW))
    assert_refused(world, lambda: world.paging.pin_table(table, PIN_L1), EINVAL, "entry 3 .* cannot be writable")


def test_an_l2_pointing_at_itself_cannot_be_pinned(world):
    top = world.mine[0]
    world.write(top, 0, pte(top, RO))
    assert_refused(world, lambda: world.paging.pin_table(top, PIN_L2), EINVAL, "not an L1 page table")


def test_pinning_twice_or_at_a_bad_level_is_refused(space):
    assert_refused(space, lambda: space.paging.pin_table(space.table, PIN_L1), EINVAL, "already pinned")
    assert_refused(space, lambda: space.paging.pin_table(space.spare[0], 3), EINVAL, "level 3")
    assert_refused(space, lambda: space.paging.unpin(space.spare[0]), EINVAL, "not pinned")


# --- batches ---------------------------------------------------------------------

def guest_reader(world, limit: int):
    """read_guest_word for a guest whose virtual = guest-physical addresses below `limit`."""
    physmap = world.paging.physmap

    def read(gva: int) -> int | None:
        ma = physmap.gpa_to_ma(gva) if gva < limit else None
        return None if ma is None else world.memory.read(ma, 4)
    return read


def put_batch(world, mfn: int, pairs) -> int:
    """Write (ptr, val) pairs at the start of frame `mfn`; returns the batch's gva."""
    for index, (ptr, val) in enumerate(pairs):
        world.write(mfn, 2 * index, ptr)
        world.write(mfn, 2 * index + 1, val)
    return world.paging.physmap.gfn(mfn) << PAGE_SHIFT


def translate(memory, ptb: int, va: int) -> tuple[int, bool] | None:
    """The hardware walk: (machine address, writable) of `va` under `ptb`, or None."""
    pde = memory.read((ptb & PTB_FRAME_MASK) + 4 * (va >> 22), 4)
    if not pde & PTE_P:
        return None
    entry = memory.read((pde & PTE_FRAME_MASK) + 4 * ((va >> PAGE_SHIFT) & 0x3FF), 4)
    if not entry & PTE_P:
        return None
    return (entry & PTE_FRAME_MASK) | (va & 0xFFF), bool(pde & entry & PTE_W)


def test_a_batch_builds_an_address_space(world):
    top, table, code, stack, batch_frame = world.mine[:5]
    world.paging.pin_table(table, PIN_L1)
    world.paging.pin_table(top, PIN_L2)
    gva = put_batch(world, batch_frame, [
        (world.entry_ma(table, 0), pte(code, RO)),
        (world.entry_ma(table, 1), pte(stack, RW)),
        (world.entry_ma(top, 0), pte(table, RW)),
    ])
    result = world.paging.apply_batch(guest_reader(world, 1 << 30), gva, 3)
    assert (result.done, result.error, result.failed_index) == (3, 0, None)
    kernel_ptb, user_ptb = world.paging.set_base(top, top)
    assert kernel_ptb == user_ptb == (top << PAGE_SHIFT) | PTB_ENABLE
    assert translate(world.memory, kernel_ptb, 0x0123) == ((code << PAGE_SHIFT) | 0x123, False)
    assert translate(world.memory, kernel_ptb, 0x1FFC) == ((stack << PAGE_SHIFT) | 0xFFC, True)
    assert world.paging.counters["batches"] == 1
    assert world.paging.counters["updates_accepted"] == 3


def test_a_batch_stops_at_the_refused_element_and_says_which(space):
    gva = put_batch(space, space.spare[0], [
        (space.entry_ma(space.table, 1), pte(space.spare[1], RO)),
        (space.entry_ma(space.table, 2), pte(space.table, RW)),    # refused
        (space.entry_ma(space.table, 3), pte(space.spare[2], RO)),
    ])
    result = space.paging.apply_batch(guest_reader(space, 1 << 30), gva, 3)
    assert (result.done, result.error, result.failed_index) == (1, -EINVAL, 1)
    assert "cannot be writable" in result.reason
    assert [space.read(space.table, i) for i in (1, 2, 3)] == [pte(space.spare[1], RO), 0, 0]


def test_a_batch_running_outside_guest_memory_is_efault_for_that_element(space):
    """One good element in the last 8 bytes of guest memory, the next one past its end."""
    end_of_memory = space.paging.physmap.size
    last_frame = space.mine[-1]
    space.write(last_frame, 1022, space.entry_ma(space.table, 1))
    space.write(last_frame, 1023, pte(space.spare[1], RO))
    before = space.paging.counters["updates_rejected"]
    result = space.paging.apply_batch(guest_reader(space, end_of_memory), end_of_memory - 8, 2)
    assert (result.done, result.error, result.failed_index) == (1, -EFAULT, 1)
    assert "outside guest memory" in result.reason
    assert space.read(space.table, 1) == pte(space.spare[1], RO)
    assert space.paging.counters["updates_rejected"] == before + 1


def test_a_batch_wrapping_past_the_top_of_the_address_space_is_efault(space):
    not_present = space.entry_ma(space.table, 5)      # read as both ptr and val: P is clear
    result = space.paging.apply_batch(lambda gva: not_present, 0xFFFFFFF8, 2)
    assert (result.done, result.error, result.failed_index) == (1, -EFAULT, 1)


def test_oversized_or_misaligned_batches_are_refused_whole(space):
    before = space.state()
    assert space.paging.apply_batch(lambda gva: 0, 0, MMU_UPDATE_MAX + 1).error == -E2BIG
    assert space.paging.apply_batch(lambda gva: 0, 2, 1).error == -EINVAL
    assert space.state() == before


# --- good paths ------------------------------------------------------------------------

def test_remapping_moves_the_counts(space):
    new = space.spare[0]
    space.paging.mmu_update(space.entry_ma(space.table, 0), pte(new, RW))
    assert space.paging.frame_info(space.data).ref_count == 0
    assert space.paging.frame_info(space.data).type == TYPE_NONE
    info = space.paging.frame_info(new)
    assert (info.type, info.type_count, info.ref_count) == (TYPE_WRITABLE, 1, 1)


def test_remapping_the_same_frame_read_only_keeps_one_reference(space):
    space.paging.mmu_update(space.entry_ma(space.table, 0), pte(space.data, RO))
    info = space.paging.frame_info(space.data)
    assert (info.type, info.type_count, info.ref_count) == (TYPE_NONE, 0, 1)


def test_unmapping_then_the_frame_can_change_type(space):
    space.paging.mmu_update(space.entry_ma(space.table, 0), 0)
    space.flushes.clear()
    space.paging.pin_table(space.data, PIN_L1)
    assert space.paging.frame_info(space.data).type == TYPE_L1
    assert space.flushes == ["all"]                  # a stale writable TLB entry may have existed
    assert space.paging.counters["forced_flushes"] == 1


def test_no_forced_flush_after_the_guest_flushed(space):
    space.paging.mmu_update(space.entry_ma(space.table, 0), 0)
    space.paging.tlb_flush()
    space.paging.invlpg(0x4000)
    assert space.flushes == ["all", 0x4000]
    space.paging.pin_table(space.data, PIN_L1)
    assert space.flushes == ["all", 0x4000]
    assert space.paging.counters["tlb_flushes"] == 1


def test_a_pinned_l1_can_be_hooked_in_and_unpinned_while_referenced(space):
    second = space.spare[0]
    space.paging.pin_table(second, PIN_L1)
    space.paging.mmu_update(space.entry_ma(space.top, 1), pte(second))
    space.paging.unpin(second)
    info = space.paging.frame_info(second)
    assert (info.type, info.type_count, info.pinned) == (TYPE_L1, 1, False)
    space.paging.mmu_update(space.entry_ma(space.top, 1), 0)
    assert space.paging.frame_info(second).type == TYPE_NONE


def test_unpinning_a_directory_devalidates_what_only_it_held(space):
    other_top = space.spare[0]
    space.paging.pin_table(other_top, PIN_L2)
    space.paging.set_base(other_top, other_top)
    assert space.paging.counters["base_switches"] == 2
    space.paging.unpin(space.table)
    space.paging.unpin(space.top)
    for mfn in (space.top, space.table, space.data):
        info = space.paging.frame_info(mfn)
        assert (info.type, info.type_count, info.ref_count) == (TYPE_NONE, 0, 0)
    assert space.paging.frame_info(other_top).type == TYPE_L2


def test_separate_kernel_and_user_roots(space):
    user_top = space.spare[0]
    space.paging.pin_table(user_top, PIN_L2)
    kernel_ptb, user_ptb = space.paging.set_base(space.top, user_top)
    assert translate(space.memory, kernel_ptb, 0) is not None
    assert translate(space.memory, user_ptb, 0) is None
    assert_refused(space, lambda: space.paging.unpin(user_top), EBUSY, "current base")


def test_teardown_returns_every_count_to_zero(space):
    space.paging.mmu_update(space.entry_ma(space.table, 9), pte(space.top, RO))
    space.paging.teardown()
    assert (space.paging.kernel_base, space.paging.user_base) == (None, None)
    for mfn in space.mine:
        info = space.paging.frame_info(mfn)
        assert (info.type, info.type_count, info.ref_count, info.pinned) == (TYPE_NONE, 0, 0, False)
    assert space.flushes[-1] == "all"


def test_teardown_reports_a_leaked_reference(space):
    space.paging._info[space.data].ref_count += 1     # a simulated accounting bug
    with pytest.raises(AccountingError, match=f"{space.data:#x}"):
        space.paging.teardown()


# --- property: random update sequences keep the invariants ---------------------------------

def recount(world) -> dict[int, tuple[int, int]]:
    """(type_count, ref_count) of every VM frame, recounted from the tables, pins and bases;
    asserts the structural invariants on the way."""
    paging = world.paging
    infos = {mfn: paging.frame_info(mfn) for mfn in world.mine}
    counts = {mfn: [0, 0] for mfn in world.mine}
    for mfn, info in infos.items():
        if info.pinned:
            counts[mfn][0] += 1
            counts[mfn][1] += 1
    for base in (paging.kernel_base, paging.user_base):
        if base is not None:
            assert infos[base].type == TYPE_L2 and infos[base].pinned
            counts[base][0] += 1
            counts[base][1] += 1
    for mfn, info in infos.items():
        if info.type not in (TYPE_L1, TYPE_L2):
            continue
        table = struct.unpack("<1024I", world.memory.read_bytes(mfn << PAGE_SHIFT, 1 << PAGE_SHIFT))
        for index, entry in enumerate(table):
            if not entry & PTE_P:
                continue
            target = entry >> PAGE_SHIFT
            assert target in infos, f"entry {index} of {mfn:#x} reaches {target:#x}, not the VM's"
            counts[target][1] += 1
            if info.type == TYPE_L2:
                assert infos[target].type == TYPE_L1
                counts[target][0] += 1
            elif entry & PTE_W:
                assert infos[target].type == TYPE_WRITABLE, f"page table {target:#x} mapped writable"
                counts[target][0] += 1
    return {mfn: tuple(pair) for mfn, pair in counts.items()}


def frames_of(world, *types) -> list[int]:
    """The operated frames (VM 1's first six) whose type is one of `types`."""
    return [mfn for mfn in world.mine[:6] if world.paging.frame_info(mfn).type in types]


INDEXES = (0, 1, 2, 1023)
FLAGS = (0, RO, RW, PTE_P | PTE_W)
PICK = {size: st.integers(0, size - 1) for size in range(1, TOTAL_FRAMES + 3)}


def pick(data, *lists):
    """One item of one of the non-empty `lists`, each list equally likely."""
    lists = [items for items in lists if items]
    items = lists[data.draw(PICK[len(lists)])]
    return items[data.draw(PICK[len(items)])]


def next_op(data, world) -> tuple:
    """A random operation, biased by the current state towards ones that may succeed: entries of
    existing page tables, PDEs at L1 tables, bases at L2 tables, and now and then anything."""
    operated = world.mine[:6]
    tables = frames_of(world, TYPE_L1, TYPE_L2)
    l2s = frames_of(world, TYPE_L2)
    kind = pick(data, ("update", "pin", "unpin", "base", "write"))
    if kind == "pin":
        return kind, pick(data, operated), pick(data, (PIN_L1, PIN_L2))
    if kind == "unpin":
        return kind, pick(data, tables, operated)
    if kind == "base":
        return kind, pick(data, l2s, operated), pick(data, l2s, operated)
    target = pick(data, operated, frames_of(world, TYPE_L1), range(TOTAL_FRAMES + 2))
    where = pick(data, tables, operated) if kind == "update" else pick(data, operated)
    return kind, where, pick(data, INDEXES), target, pick(data, FLAGS)


def run_op(world, op) -> None:
    """Apply one operation; refusals (Rejected) are expected and left to the caller."""
    kind, first, *rest = op
    paging = world.paging
    if kind == "update":
        paging.mmu_update(world.entry_ma(first, rest[0]), pte(rest[1], rest[2]))
    elif kind == "pin":
        paging.pin_table(first, rest[0])
    elif kind == "unpin":
        paging.unpin(first)
    elif kind == "base":
        paging.set_base(first, rest[0])
    elif paging.frame_info(first).type not in (TYPE_L1, TYPE_L2):   # the guest's own store
        world.write(first, rest[0], pte(rest[1], rest[2]))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_update_sequences_keep_the_invariants(data):
    world = World()
    for _ in range(data.draw(st.integers(0, 40), label="length")):
        op = next_op(data, world)
        before = world.state()
        try:
            run_op(world, op)
        except Rejected:
            assert world.state() == before
        counts = recount(world)
        for mfn in world.mine:
            info = world.paging.frame_info(mfn)
            assert (info.type_count, info.ref_count) == counts[mfn], f"frame {mfn:#x}"
    world.paging.teardown()

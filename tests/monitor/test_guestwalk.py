"""The guest page-table walker applies the bare machine's rules (docs/internals.md, "Paging")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm.arch import Access
from asm.isa import (CAUSE_CODE_MASK, CAUSE_ERRCODE_SHIFT, EXC_BUS_ERROR, PAGE_SHIFT, PF_FETCH, PF_PRESENT,
                     PF_USER, PF_WRITE, PTB_ENABLE, PTE_A, PTE_D, PTE_P, PTE_U, PTE_W)

from vmm.machine.memory import PhysicalMemory
from vmm.machine.counters import Counters
from vmm.machine.mmu import MMU, Fault
from vmm.monitor.guestwalk import GuestFault, GuestTables, TableBusError, Translation
from vmm.monitor.physmap import GuestPhysMap

PD, PT, DATA = 1, 2, 7
GVA = 0x00403123            # pdx 1, ptx 3, offset 0x123
P, W, U = PTE_P, PTE_W, PTE_U
R, WR, X = Access.READ, Access.WRITE, Access.FETCH

# (pde flags, pte flags, access, user mode) -> the bare machine's error code, or None: translated.
CASES = [
    (0, P | W | U, R, False, 0),
    (0, P | W | U, WR, True, PF_WRITE | PF_USER),
    (P | W | U, 0, X, True, PF_FETCH | PF_USER),
    (P | W | U, 0, R, False, 0),
    (P, 0, WR, True, PF_WRITE | PF_USER),                          # presence before permission
    (P | W | U, P | W | U, WR, True, None),
    (P | U, P | W | U, WR, True, PF_PRESENT | PF_WRITE | PF_USER),  # W needed in the PDE
    (P | W | U, P | U, WR, True, PF_PRESENT | PF_WRITE | PF_USER),  # W needed in the PTE
    (P | W, P | W, WR, True, PF_PRESENT | PF_WRITE | PF_USER),      # U needed (PDE and PTE)
    (P | W | U, P | W, R, True, PF_PRESENT | PF_USER),              # U needed in the PTE
    (P | W, P | W | U, R, True, PF_PRESENT | PF_USER),              # U needed in the PDE
    (P | W, P | W | U, X, True, PF_PRESENT | PF_FETCH | PF_USER),
    (P, P, WR, False, PF_PRESENT | PF_WRITE),                       # write protection in kernel mode
    (P | W, P, WR, False, PF_PRESENT | PF_WRITE),
    (P, P, R, False, None),                                         # kernel reads supervisor pages
    (P, P, X, False, None),                                         # fetch needs read only
    (P | U, P | U, X, True, None),
]


def tables(vm, pde_flags: int, pte_flags: int) -> GuestTables:
    vm.map(PD, GVA, PT, DATA, pte_flags, pde_flags)
    return GuestTables(vm.memory, vm.physmap, PD << PAGE_SHIFT | PTB_ENABLE)


@pytest.mark.parametrize("pde_flags, pte_flags, access, user, expected", CASES)
def test_walk_reports_the_bare_machine_error_code_or_translates(guest_vm, pde_flags, pte_flags, access,
                                                               user, expected):
    vm = guest_vm()
    result = tables(vm, pde_flags, pte_flags).walk(GVA, access, user)
    if expected is None:
        assert isinstance(result, Translation)
        assert result.gpa == DATA << PAGE_SHIFT | 0x123
        both = pde_flags & pte_flags
        assert (result.writable, result.user) == (bool(both & W), bool(both & U))
    else:
        assert result == GuestFault(expected)


def test_successful_read_sets_accessed_in_guest_pde_and_pte_but_not_dirty(guest_vm):
    vm = guest_vm()
    result = tables(vm, P | W | U, P | W | U).walk(GVA, R, user=True)
    assert vm.read(vm.pde_gpa(PD, GVA)) == PT << PAGE_SHIFT | P | W | U | PTE_A
    assert vm.read(vm.pte_gpa(PT, GVA)) == DATA << PAGE_SHIFT | P | W | U | PTE_A
    assert (result.pde, result.pte) == (vm.read(result.pde_gpa), vm.read(result.pte_gpa))


def test_successful_write_sets_dirty_in_the_guest_pte_only(guest_vm):
    vm = guest_vm()
    tables(vm, P | W, P | W).walk(GVA, WR, user=False)
    assert vm.read(vm.pde_gpa(PD, GVA)) == PT << PAGE_SHIFT | P | W | PTE_A
    assert vm.read(vm.pte_gpa(PT, GVA)) == DATA << PAGE_SHIFT | P | W | PTE_A | PTE_D


def test_faulting_walk_and_looking_walk_leave_guest_memory_alone(guest_vm):
    vm = guest_vm()
    guest = tables(vm, P | W, P)
    assert guest.walk(GVA, WR, user=False) == GuestFault(PF_PRESENT | PF_WRITE)
    assert isinstance(guest.walk(GVA, R, user=False, set_bits=False), Translation)
    assert vm.read(vm.pde_gpa(PD, GVA)) == PT << PAGE_SHIFT | P | W
    assert vm.read(vm.pte_gpa(PT, GVA)) == DATA << PAGE_SHIFT | P


def test_paging_off_translates_gva_to_the_same_gpa_with_every_permission(guest_vm):
    vm = guest_vm()
    result = GuestTables(vm.memory, vm.physmap, PD << PAGE_SHIFT).walk(0xF0000010, WR, user=True)
    assert result == Translation(0xF0000010, None, None, None, None, True, True)


def test_page_table_beyond_guest_ram_is_a_bus_error_at_the_entry_address(guest_vm):
    vm = guest_vm(guest_frames=16)
    vm.write(vm.pde_gpa(PD, GVA), 40 << PAGE_SHIFT | P | W)
    result = GuestTables(vm.memory, vm.physmap, PD << PAGE_SHIFT | PTB_ENABLE).walk(GVA, R, user=False)
    assert result == TableBusError((40 << PAGE_SHIFT) + 3 * 4)


def test_page_directory_beyond_guest_ram_is_a_bus_error_at_the_entry_address(guest_vm):
    vm = guest_vm(guest_frames=16)
    result = GuestTables(vm.memory, vm.physmap, 0x20000 | PTB_ENABLE).walk(GVA, R, user=False)
    assert result == TableBusError(0x20000 + 1 * 4)


def test_data_frame_beyond_guest_ram_still_translates(guest_vm):
    vm = guest_vm(guest_frames=16)
    vm.map(PD, GVA, PT, 0xF0000, P | W)
    result = GuestTables(vm.memory, vm.physmap, PD << PAGE_SHIFT | PTB_ENABLE).walk(GVA, R, user=False)
    assert result.gpa == 0xF0000123


# --- differential: the guest walker against the machine's own MMU ---------------------------

FRAMES = st.sampled_from([PT, DATA, 3, 40])          # 40 is beyond the 16 frames of RAM


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(st.tuples(FRAMES, st.integers(0, 0x1F)), min_size=6, max_size=6),
       accesses=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(list(Access)), st.booleans()),
                         min_size=1, max_size=12))
def test_guest_walk_agrees_with_the_bare_machine_mmu(entries, accesses):
    machine_memory, guest_memory = PhysicalMemory(16 << PAGE_SHIFT), PhysicalMemory(16 << PAGE_SHIFT)
    for (table, index), (frame, flags) in zip([(PD, 0), (PD, 1), (PT, 0), (PT, 1), (3, 0), (3, 1)], entries):
        for memory in (machine_memory, guest_memory):
            memory.write((table << PAGE_SHIFT) + index * 4, 4, frame << PAGE_SHIFT | flags)
    mmu = MMU(machine_memory, Counters())
    mmu.set_ptb(PD << PAGE_SHIFT | PTB_ENABLE)
    guest = GuestTables(guest_memory, GuestPhysMap(1, list(range(16))), PD << PAGE_SHIFT | PTB_ENABLE)
    for slot, access, user in accesses:
        gva = (slot >> 1) << 22 | (slot & 1) << PAGE_SHIFT | 0x44
        result = guest.walk(gva, access, user)
        try:
            expected = mmu.translate(gva, access, user)
        except Fault as fault:
            if fault.cause & CAUSE_CODE_MASK == EXC_BUS_ERROR:
                assert isinstance(result, TableBusError)
            else:
                assert result == GuestFault(fault.cause >> CAUSE_ERRCODE_SHIFT)
        else:
            assert isinstance(result, Translation) and result.gpa == expected
        assert machine_memory.read_bytes(0, 16 << PAGE_SHIFT) == guest_memory.read_bytes(0, 16 << PAGE_SHIFT)

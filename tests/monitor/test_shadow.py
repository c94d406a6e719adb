"""Shadow paging, driven as the VMM drives it (no CPU): guest tables are built in
guest memory, translations are resolved by a model MMU walking the SHADOW
tables in machine memory (tests/monitor/conftest.py), and the shadow audits
itself after every operation."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asm.arch import Access
from asm.isa import (MMIO_BASE, PAGE_SHIFT, PAGE_SIZE, PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE, PTB_ENABLE,
                     PTE_A, PTE_D, PTE_P, PTE_U, PTE_W)
from tests.monitor.conftest import KERNBASE, NEIGHBOUR_VM, VM_ID, MachineMMU, MachineModel
from vmm.monitor.guestwalk import GuestFault, GuestTables, TableBusError
from vmm.monitor.physmap import OWNER_VMM

P, W, U = PTE_P, PTE_W, PTE_U
PD_A, PT_USER, PT_KERNEL, PD_B, PT_OTHER = 0, 1, 2, 3, 4
PTB_A, PTB_B, PAGING_OFF = PD_A << PAGE_SHIFT | PTB_ENABLE, PD_B << PAGE_SHIFT | PTB_ENABLE, 0
USER = 0x00400000                       # pdx 1: user pages, PT_USER
SELF = 0x3FF                            # the recursive slot in the two-level test


def boot(guest_vm, shadow_driver, max_cached_roots: int = 4, machine=MachineModel):
    """A guest with PDs A and B sharing a kernel window over all RAM, each data
    frame holding the marker 0x1000 + gfn in its first word; running in virtual
    kernel mode on base A."""
    vm = guest_vm()
    for pd in (PD_A, PD_B):
        vm.map_kernel_window(pd, PT_KERNEL)
    for gfn in range(5, vm.physmap.frames):
        vm.write(gfn << PAGE_SHIFT, 0x1000 + gfn)
    driver = shadow_driver(vm, max_cached_roots, machine)
    driver.switch(PTB_A, virtual_kernel=True)
    return vm, driver


def user_page(page: int) -> int:
    return USER + page * PAGE_SIZE


def map_user(vm, page: int, gfn: int, flags: int = P | W | U, pd: int = PD_A, pt: int = PT_USER) -> None:
    vm.map(pd, user_page(page), pt, gfn, flags)


def set_entry_as_guest_kernel(driver, gpa: int, value: int, width: int = 4):
    """The guest kernel stores `value` at `gpa` through its kernel window."""
    return driver.store(KERNBASE + gpa, value, width)


def ma(vm, gpa: int) -> int:
    return vm.physmap.gpa_to_ma(gpa)


# --- hidden and true faults ------------------------------------------------------------------

def test_n_fresh_mapped_pages_take_n_hidden_faults_and_no_true_fault(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    for page in range(8):
        map_user(vm, page, 5 + page)
    driver.switch(PTB_A, virtual_kernel=False)
    for page in range(8):
        assert driver.load(user_page(page)) == 0x1000 + 5 + page
    for page in range(8):
        assert driver.access(user_page(page) + 8) == ("ok", ma(vm, (5 + page) << PAGE_SHIFT | 8))
    assert (driver.shadow.counters["hidden_faults"], driver.shadow.counters["true_faults"]) == (8, 0)


def test_unmapped_addresses_are_true_faults_with_the_bare_machine_error_code(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    assert driver.access(0x08000000) == ("fault", 0)                      # no PDE
    assert driver.access(0x08000000, "write") == ("fault", PF_WRITE)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.access(user_page(1)) == ("fault", PF_USER)               # PDE present, no PTE
    assert driver.access(user_page(1), "write") == ("fault", PF_USER | PF_WRITE)
    assert driver.access(user_page(1), "fetch") == ("fault", PF_USER | PF_FETCH)
    assert driver.shadow.counters["true_faults"] == 5


def test_guest_pte_change_is_seen_on_the_next_access_in_every_mode(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    assert driver.load(user_page(0)) == 0x1005
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005
    driver.switch(PTB_A, virtual_kernel=True)
    pte_gpa = vm.pte_gpa(PT_USER, user_page(0))
    assert set_entry_as_guest_kernel(driver, pte_gpa, 6 << PAGE_SHIFT | P | W | U) == ("traced", pte_gpa)
    assert driver.load(user_page(0)) == 0x1006
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1006


def test_unmapped_page_then_access_is_a_true_not_present_fault(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    assert driver.load(user_page(0)) == 0x1005
    set_entry_as_guest_kernel(driver, vm.pte_gpa(PT_USER, user_page(0)), 0)
    assert driver.access(user_page(0)) == ("fault", 0)


def test_clean_page_read_then_write_sets_guest_dirty_and_shadow_write_only_after(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    driver.switch(PTB_A, virtual_kernel=False)
    pte_gpa = vm.pte_gpa(PT_USER, user_page(0))
    assert driver.load(user_page(0)) == 0x1005
    assert vm.read(pte_gpa) == 5 << PAGE_SHIFT | P | W | U | PTE_A
    assert driver.machine.walk(user_page(0)) == (ma(vm, 5 << PAGE_SHIFT) >> PAGE_SHIFT, False)
    assert driver.store(user_page(0), 0xBEEF) == ("ok", ma(vm, 5 << PAGE_SHIFT))
    assert vm.read(pte_gpa) == 5 << PAGE_SHIFT | P | W | U | PTE_A | PTE_D
    assert driver.machine.walk(user_page(0))[1] is True
    assert driver.shadow.counters["hidden_faults"] == 2


def test_supervisor_page_faults_from_virtual_user_and_maps_from_virtual_kernel(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5, flags=P | W)
    vm.map(PD_A, 0x00800000, PT_OTHER, 6, P | W | U, pde_flags=P | W)    # U clear in the PDE only
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.access(user_page(0)) == ("fault", PF_PRESENT | PF_USER)
    assert driver.access(0x00800000, "write") == ("fault", PF_PRESENT | PF_USER | PF_WRITE)
    assert driver.machine.walk(user_page(0)) is None
    driver.switch(PTB_A, virtual_kernel=True)
    assert driver.load(user_page(0)) == 0x1005
    assert driver.load(0x00800000) == 0x1006
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.machine.walk(user_page(0)) is None
    assert driver.access(user_page(0)) == ("fault", PF_PRESENT | PF_USER)


def test_read_only_guest_pde_keeps_a_dirty_writable_pte_read_only(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    vm.map(PD_A, 0x00800000, PT_OTHER, 6, P | W | U | PTE_D, pde_flags=P | U)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(0x00800000) == 0x1006
    assert driver.access(0x00800000, "write") == ("fault", PF_PRESENT | PF_WRITE | PF_USER)


# --- roots ------------------------------------------------------------------------------------

def test_cached_root_is_reused_after_switching_base_and_back(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    map_user(vm, 0, 7, pd=PD_B, pt=PT_OTHER)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005
    driver.switch(PTB_B, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1007
    faults = driver.shadow.counters["hidden_faults"]
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005
    assert driver.shadow.counters["hidden_faults"] == faults
    assert (driver.shadow.counters["roots_built"], driver.shadow.counters["roots_reused"]) == (3, 1)


def test_editing_a_table_then_switching_back_to_its_cached_root_sees_the_edit(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005
    driver.switch(PTB_B, virtual_kernel=True)
    pte_gpa = vm.pte_gpa(PT_USER, user_page(0))
    assert set_entry_as_guest_kernel(driver, pte_gpa, 8 << PAGE_SHIFT | P | U) == ("traced", pte_gpa)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.shadow.counters["roots_reused"] == 1
    assert driver.load(user_page(0)) == 0x1008
    assert driver.access(user_page(0), "write") == ("fault", PF_PRESENT | PF_WRITE | PF_USER)


def test_root_cache_evicts_the_least_recent_root_and_frees_its_frames(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver, max_cached_roots=2)
    map_user(vm, 0, 5)
    driver.load(user_page(0))
    driver.switch(PTB_A, virtual_kernel=False)
    driver.load(user_page(0))
    driver.switch(PTB_B, virtual_kernel=False)                  # evicts A kernel
    driver.switch(PTB_A, virtual_kernel=True)                   # rebuilt; evicts A user
    counters = driver.shadow.counters
    assert (counters["roots_built"], counters["roots_reused"]) == (4, 0)
    assert len(vm.frames.owned_by(OWNER_VMM)) == counters["shadow_pages"] == 2


# --- tracing ----------------------------------------------------------------------------------

def test_one_guest_table_used_as_directory_and_page_table_at_once(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    vm.write(vm.pde_gpa(PD_A, SELF << 22), PD_A << PAGE_SHIFT | P | W)
    vm.map(PD_B, user_page(0), PT_OTHER, 6, P | W | U)          # PD_B is only the source of PT_OTHER
    page_tables, directory = SELF << 22, SELF << 22 | SELF << PAGE_SHIFT
    assert driver.load(user_page(0)) == 0x1005
    assert driver.load(page_tables + (1 << PAGE_SHIFT)) == vm.read(vm.pte_gpa(PT_USER, user_page(0)))
    assert driver.load(directory + 4) == vm.read(vm.pde_gpa(PD_A, USER))
    pde_gpa = vm.pde_gpa(PD_A, USER)
    assert driver.store(directory + 4, PT_OTHER << PAGE_SHIFT | P | W | U) == ("traced", pde_gpa)
    assert driver.load(user_page(0)) == 0x1006
    pte_gpa = vm.pte_gpa(PT_OTHER, user_page(0))
    assert driver.store(page_tables + (1 << PAGE_SHIFT), 7 << PAGE_SHIFT | P | W | U) == ("traced", pte_gpa)
    assert driver.load(user_page(0)) == 0x1007


def test_frame_becoming_a_page_table_is_write_protected_where_already_mapped(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    table_gva = KERNBASE + (12 << PAGE_SHIFT)
    assert driver.store(table_gva, 6 << PAGE_SHIFT | P | W | U) == ("ok", ma(vm, 12 << PAGE_SHIFT))
    set_entry_as_guest_kernel(driver, vm.pde_gpa(PD_A, 0x00800000), 12 << PAGE_SHIFT | P | W | U)
    assert driver.load(0x00800000) == 0x1006
    assert driver.store(table_gva, 7 << PAGE_SHIFT | P | W | U) == ("traced", 12 << PAGE_SHIFT)
    assert driver.load(0x00800000) == 0x1007


def test_byte_and_misaligned_writes_into_a_page_table_reach_every_affected_entry(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    map_user(vm, 1, 7)
    assert (driver.load(user_page(0)), driver.load(user_page(1))) == (0x1005, 0x1007)
    pte_gpa = vm.pte_gpa(PT_USER, user_page(0))
    assert set_entry_as_guest_kernel(driver, pte_gpa + 1, 0x60, width=1) == ("traced", pte_gpa + 1)
    assert driver.load(user_page(0)) == 0x1006
    faults = driver.shadow.counters["hidden_faults"]
    driver.shadow.emulate_pt_write(pte_gpa + 2, 4, 0x90 << 24 | (P | W | U) << 16)   # bytes 2..5
    driver.check()
    assert (driver.load(user_page(0)), driver.load(user_page(1))) == (0x1006, 0x1009)
    assert driver.shadow.counters["hidden_faults"] == faults + 2


# --- odd guest mappings -----------------------------------------------------------------------

def test_guest_mappings_outside_guest_ram_are_bus_errors_or_mmio_and_never_mapped(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 40)
    map_user(vm, 1, MMIO_BASE >> PAGE_SHIFT)
    vm.write(vm.pde_gpa(PD_A, 0x00800000), 50 << PAGE_SHIFT | P | W | U)
    assert driver.access(user_page(0)) == ("bus", 40 << PAGE_SHIFT)
    assert driver.access(user_page(1) + 4, "write") == ("mmio", MMIO_BASE + 4)
    assert driver.access(0x00800000) == ("bus", 50 << PAGE_SHIFT)
    assert driver.machine.walk(user_page(0)) is None and driver.machine.walk(user_page(1)) is None
    assert (driver.shadow.counters["bus_errors"], driver.shadow.counters["mmio_faults"]) == (2, 1)


def test_guest_paging_off_uses_an_identity_shadow_that_still_traces_tables(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    assert driver.load(user_page(0)) == 0x1005                   # shadows PT_USER
    driver.switch(PAGING_OFF, virtual_kernel=True)
    assert driver.load(7 << PAGE_SHIFT) == 0x1007
    assert driver.access(40 << PAGE_SHIFT) == ("bus", 40 << PAGE_SHIFT)
    assert driver.access(MMIO_BASE) == ("mmio", MMIO_BASE)
    pte_gpa = vm.pte_gpa(PT_USER, user_page(0))
    assert driver.store(pte_gpa, 6 << PAGE_SHIFT | P | W | U) == ("traced", pte_gpa)
    driver.switch(PTB_A, virtual_kernel=True)
    assert driver.load(user_page(0)) == 0x1006
    assert driver.shadow.counters["roots_built"] == 2


def test_tlbinv_of_an_unmapped_address_is_harmless_and_of_a_mapped_one_rewalks(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    assert driver.load(user_page(0)) == 0x1005
    driver.shadow.invlpg(0x12345000)
    driver.shadow.invlpg(MMIO_BASE)
    driver.check()
    assert driver.machine.invalidated[-2:] == [0x12345000, MMIO_BASE]
    faults = driver.shadow.counters["hidden_faults"]
    assert driver.load(user_page(0)) == 0x1005
    assert driver.shadow.counters["hidden_faults"] == faults
    vm.write(vm.pte_gpa(PT_USER, user_page(0)), 5 << PAGE_SHIFT | P | W | U)   # A cleared behind the shadow
    driver.shadow.invlpg(user_page(0))
    assert driver.load(user_page(0)) == 0x1005
    assert vm.read(vm.pte_gpa(PT_USER, user_page(0))) & PTE_A


def test_tlbflush_makes_every_page_rewalk_but_rebuilds_no_table(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    for page in range(3):
        map_user(vm, page, 5 + page)
        driver.load(user_page(page))
    pages = driver.shadow.counters["shadow_pages"]
    driver.shadow.flush()
    driver.check()
    assert driver.machine.tlb == {}
    for page in range(3):
        assert driver.load(user_page(page)) == 0x1005 + page
    assert driver.shadow.counters["hidden_faults"] == 6
    assert driver.shadow.counters["shadow_pages"] == pages


# --- audit and teardown -----------------------------------------------------------------------

def shadow_pte_ma(driver, gva: int) -> int:
    """Machine address of the shadow PTE for `gva` in the loaded root."""
    memory, ptb = driver.vm.memory, driver.machine.ptb
    pde = memory.read((ptb & ~0xFFF) + (gva >> 22) * 4, 4)
    return (pde & ~0xFFF) + ((gva >> 12) & 0x3FF) * 4


def test_audit_reports_a_shadow_entry_that_escapes_the_vm_or_writes_a_traced_table(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5, flags=P | W | U | PTE_D)
    driver.load(user_page(0))
    driver.load(KERNBASE + (PT_USER << PAGE_SHIFT))
    entry_ma = shadow_pte_ma(driver, user_page(0))
    vm.memory.write(entry_ma, 4, vm.neighbour[0] << PAGE_SHIFT | P | W | U)
    assert any("not this VM's RAM" in problem for problem in driver.shadow.audit())
    table_ma = shadow_pte_ma(driver, KERNBASE + (PT_USER << PAGE_SHIFT))
    vm.memory.write(table_ma, 4, vm.memory.read(table_ma, 4) | W)
    assert any("writable, but the guest page is traced" in problem for problem in driver.shadow.audit())


def test_teardown_returns_every_frame_the_shadows_used(guest_vm, shadow_driver):
    vm, driver = boot(guest_vm, shadow_driver)
    map_user(vm, 0, 5)
    for ptb, virtual_kernel in ((PTB_A, False), (PTB_B, True), (PAGING_OFF, True), (PTB_A, True)):
        driver.switch(ptb, virtual_kernel)
        driver.access(user_page(0))
        driver.access(KERNBASE)
    assert len(vm.frames.owned_by(OWNER_VMM)) > 4
    driver.shadow.teardown()
    assert vm.frames.owned_by(OWNER_VMM) == []
    assert driver.shadow.counters["shadow_pages"] == 0
    assert len(vm.frames.owned_by(VM_ID)) == vm.physmap.frames


def test_misuse_by_the_vmm_is_a_clear_error(guest_vm, shadow_driver):
    vm = guest_vm()
    shadow = shadow_driver(vm).shadow
    with pytest.raises(RuntimeError, match="before activate"):
        shadow.page_fault(0x1000, False, False, True)
    shadow.activate(PTB_A, virtual_kernel=False)
    with pytest.raises(ValueError, match="virtual mode differs"):
        shadow.page_fault(0x1000, False, False, True)
    with pytest.raises(ValueError, match="outside guest RAM"):
        shadow.emulate_pt_write((16 << PAGE_SHIFT) - 2, 4, 0)
    with pytest.raises(ValueError, match="width 3"):
        shadow.emulate_pt_write(0, 3, 0)


# --- properties -------------------------------------------------------------------------------

FLAGS = st.integers(0, 0x1F)
GVAS = st.sampled_from([pdx << 22 | ptx << PAGE_SHIFT | 4 for pdx in range(3) for ptx in range(3)]
                       + [KERNBASE, KERNBASE + (PT_USER << PAGE_SHIFT), SELF << 22, 5 << PAGE_SHIFT])
EDITS = st.one_of(
    st.tuples(st.just("pte"), st.sampled_from([PT_USER, PT_OTHER]), st.integers(0, 2),
              st.sampled_from([0, 1, 3, 4, 5, 6, 7, 20, MMIO_BASE >> PAGE_SHIFT]), FLAGS),
    st.tuples(st.just("pde"), st.sampled_from([PD_A, PD_B]), st.sampled_from([0, 1, 2, SELF]),
              st.sampled_from([PT_USER, PT_OTHER, PT_KERNEL, PD_A, 30]), FLAGS),
    st.tuples(st.just("byte"), st.sampled_from([PT_USER, PT_OTHER]), st.integers(0, 11), st.integers(0, 255)),
)
OPS = st.lists(st.one_of(
    EDITS,
    *(st.tuples(st.just("access"), GVAS, st.just(kind)) for kind in ("read", "write", "fetch", "read")),
    st.tuples(st.just("switch"), st.sampled_from([PTB_A, PTB_B, PAGING_OFF]), st.booleans()),
    st.tuples(st.just("invlpg"), GVAS),
    st.tuples(st.just("flush"),),
), min_size=20, max_size=50)


def expected_access(driver, guest_ptb: int, gva: int, kind: str) -> tuple[str, int]:
    """What the guest's own tables say, composed with the p2m (looking, not setting A/D)."""
    vm = driver.vm
    walk = GuestTables(vm.memory, vm.physmap, guest_ptb).walk(gva, Access(kind), not driver.virtual_kernel,
                                                             set_bits=False)
    if isinstance(walk, GuestFault):
        return "fault", walk.error_code
    if isinstance(walk, TableBusError):
        return "bus", walk.gpa
    if walk.gpa >= MMIO_BASE:
        return ("bus" if kind == "fetch" else "mmio"), walk.gpa     # no instruction fetch from a device
    machine = vm.physmap.gpa_to_ma(walk.gpa)
    return ("bus", walk.gpa) if machine is None else ("ok", machine)


def guest_kernel_edit(driver, guest_ptb: int, edit) -> None:
    """Apply a table edit as the guest kernel would: a store through its kernel
    window (gpa itself with paging off), in virtual kernel mode."""
    kind, table, index, *rest = edit
    if kind == "byte":
        gpa, value, width = (table << PAGE_SHIFT) + index, rest[0], 1
    else:
        gpa, value, width = (table << PAGE_SHIFT) + index * 4, rest[0] << PAGE_SHIFT | rest[1], 4
    user_mode = not driver.virtual_kernel
    if user_mode:
        driver.switch(guest_ptb, virtual_kernel=True)
    gva = gpa if guest_ptb == PAGING_OFF else KERNBASE + gpa
    assert driver.store(gva, value, width)[0] in ("ok", "traced")
    if user_mode:
        driver.switch(guest_ptb, virtual_kernel=False)


def run_ops(driver, ops) -> None:
    """Apply `ops`; every access must agree with the guest walk composed with the p2m."""
    guest_ptb = PTB_A
    for op in ops:
        if op[0] == "access":
            expected = expected_access(driver, guest_ptb, op[1], op[2])
            result = driver.access(op[1], op[2])
            if result[0] == "traced":
                driver.shadow.emulate_pt_write(result[1], 4, driver.vm.read(result[1] & ~3))
                result = ("ok", driver.vm.physmap.gpa_to_ma(result[1]))
            assert result == expected, (op, hex(result[1]), hex(expected[1]))
        elif op[0] == "switch":
            guest_ptb = op[1]
            driver.switch(op[1], op[2])
        elif op[0] == "invlpg":
            driver.shadow.invlpg(op[1])
        elif op[0] == "flush":
            driver.shadow.flush()
        else:
            guest_kernel_edit(driver, guest_ptb, op)
        driver.check()


@pytest.mark.parametrize("machine", [MachineModel, MachineMMU])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_shadow_translation_equals_guest_walk_composed_with_p2m(guest_vm, shadow_driver, machine, ops):
    vm, driver = boot(guest_vm, shadow_driver, max_cached_roots=3, machine=machine)
    map_user(vm, 0, 5)
    map_user(vm, 1, 6, flags=P | U)
    map_user(vm, 0, 7, pd=PD_B, pt=PT_OTHER)
    run_ops(driver, ops)
    driver.shadow.teardown()
    assert vm.frames.owned_by(OWNER_VMM) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.tuples(st.sampled_from([PT_USER, PD_A]), st.integers(0, 7),
                                st.integers(0, 0xFFFFFFFF)), max_size=12),
       accesses=st.lists(st.tuples(GVAS, st.sampled_from(["read", "write", "fetch"]), st.booleans()),
                         max_size=20))
def test_shadow_never_maps_a_frame_outside_the_vm_whatever_the_guest_writes(guest_vm, shadow_driver,
                                                                            words, accesses):
    vm, driver = boot(guest_vm, shadow_driver)
    vm.write(vm.pde_gpa(PD_A, USER), PT_USER << PAGE_SHIFT | P | W | U)
    for table, index, word in words:
        vm.write((table << PAGE_SHIFT) + index * 4, word)      # written before anything shadows them
    for gva, kind, virtual_kernel in accesses:
        driver.switch(PTB_A, virtual_kernel)
        result = driver.access(gva, kind)
        if result[0] == "ok":
            assert vm.frames.owner(result[1] >> PAGE_SHIFT) == VM_ID
    shadow_frames = vm.frames.owned_by(OWNER_VMM)
    for mfn in shadow_frames:
        for entry in struct.unpack("<1024I", vm.memory.read_bytes(mfn << PAGE_SHIFT, PAGE_SIZE)):
            if entry & P:
                assert vm.frames.owner(entry >> PAGE_SHIFT) in (VM_ID, OWNER_VMM)
                assert vm.frames.owner(entry >> PAGE_SHIFT) != NEIGHBOUR_VM


@pytest.mark.parametrize("machine", [MachineModel, MachineMMU])
def test_a_fault_through_a_second_gva_of_a_shared_shadow_leaf_flushes_its_stale_tlb_entry(guest_vm, shadow_driver,
                                                                                         machine):
    """Found by the property above.  PD_B's PDE 0 names PT_KERNEL, the kernel window's own leaf
    table, so one shadow PT serves gva 0 and KERNBASE.  PD_A (frame 0), no longer shadowed, is
    read through KERNBASE while still read-only, then written through gva 4, which makes the shared
    leaf writable and invalidates gva 4 only; the write through KERNBASE must then not fault
    forever on its stale read-only TLB entry."""
    vm, driver = boot(guest_vm, shadow_driver, max_cached_roots=3, machine=machine)
    map_user(vm, 0, 5)
    map_user(vm, 1, 6, flags=P | U)
    map_user(vm, 0, 7, pd=PD_B, pt=PT_OTHER)
    run_ops(driver, [("access", 4, "read"), ("switch", PAGING_OFF, False), ("pte", PT_USER, 0, 0, 0),
                     ("pde", PD_B, 0, PT_KERNEL, P | W), ("switch", PTB_B, True), ("access", KERNBASE, "read"),
                     ("access", 4, "write"), ("pde", PD_A, 0, PT_USER, 0)])

"""The production shadow-MMU techniques (vmm/monitor/shadow.py, docs/shadow.md
"Optimizations"): write-flood detection, out-of-sync leaf tables, prefetch.
Each is driven as the VMM drives it, the shadow auditing itself after every
operation (tests/monitor/conftest.py); each changes what the guest sees only
where the bare machine's TLB may differ too (until a flush)."""

from __future__ import annotations

import pytest

from asm.isa import PAGE_SHIFT, PTE_A, PTE_D, PTE_P, PTE_U, PTE_W
from tests.monitor.test_shadow import KERNBASE, PD_A, PT_USER, PTB_A, PTB_B, USER, boot, map_user, user_page
from vmm.monitor.shadow import BASIC, FLOOD_WRITES, PREFETCH, ShadowOptions

P, W, U, A, D = PTE_P, PTE_W, PTE_U, PTE_A, PTE_D


def driver_with(guest_vm, shadow_driver, **on):
    """boot() with only the named techniques on."""
    options = ShadowOptions(**{name: name in on for name in ShadowOptions.NAMES})
    return boot(guest_vm, lambda vm, roots, machine: shadow_driver(vm, roots, machine, options=options))


def kernel_store(driver, gpa: int, value: int):
    return driver.store(KERNBASE + gpa, value)


# --- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("all", ShadowOptions()), ("none", BASIC), ("flood", ShadowOptions(True, False, False)),
    ("unsync,prefetch", ShadowOptions(False, True, True)), ("prefetch+flood", ShadowOptions(True, False, True)),
])
def test_shadow_options_parse_and_print_back(text, expected):
    assert ShadowOptions.parse(text) == expected
    assert ShadowOptions.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "fast", "flood,", "all,flood"])
def test_unknown_shadow_options_are_refused(text):
    with pytest.raises(ValueError, match="expected all, none or some of flood, unsync, prefetch"):
        ShadowOptions.parse(text)


# --- write-flood detection -------------------------------------------------------------------------

def test_a_table_written_again_and_again_with_no_use_is_unshadowed_and_writes_go_untrapped(
        guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, flood=True)
    map_user(vm, 0, 5)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005             # PT_USER is now shadowed, hence traced
    driver.switch(PTB_A, virtual_kernel=True)
    table = PT_USER << PAGE_SHIFT
    results = [kernel_store(driver, table + 4 * (100 + n), 0)[0] for n in range(FLOOD_WRITES + 2)]
    # the first FLOOD_WRITES are traced and emulated; then the shadow PT is gone and the frame untraced
    assert results == ["traced"] * FLOOD_WRITES + ["ok"] * 2
    assert driver.shadow.counters["flood_unshadows"] == 1
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005             # rebuilt by a hidden fault: traced again
    driver.switch(PTB_A, virtual_kernel=True)
    assert kernel_store(driver, table + 4 * 200, 0)[0] == "traced"


def test_a_use_between_the_writes_keeps_the_table_shadowed(guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, flood=True)
    for page in range(8):
        map_user(vm, page, 5 + page)
    driver.switch(PTB_A, virtual_kernel=False)
    driver.load(user_page(0))
    for page in range(1, FLOOD_WRITES * 2):
        driver.switch(PTB_A, virtual_kernel=True)
        assert kernel_store(driver, vm.pte_gpa(PT_USER, user_page(page)), (5 + page) << PAGE_SHIFT | P | W | U)[0] \
            == "traced"
        driver.switch(PTB_A, virtual_kernel=False)
        assert driver.load(user_page(page)) == 0x1005 + page   # a use through the table: the count restarts
    assert driver.shadow.counters["flood_unshadows"] == 0


def test_the_current_root_is_never_unshadowed(guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, flood=True)
    directory = PD_A << PAGE_SHIFT
    for n in range(FLOOD_WRITES + 2):
        assert kernel_store(driver, directory + 4 * (900 + n), 0)[0] == "traced"
    assert driver.shadow.counters["flood_unshadows"] == 0


# --- out-of-sync leaf tables -----------------------------------------------------------------------

def test_a_leaf_table_goes_out_of_sync_and_the_old_translation_lasts_until_tlbinv(guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, unsync=True)
    map_user(vm, 0, 5)
    map_user(vm, 1, 6)
    driver.switch(PTB_A, virtual_kernel=False)
    assert (driver.load(user_page(0)), driver.load(user_page(1))) == (0x1005, 0x1006)
    driver.switch(PTB_A, virtual_kernel=True)
    assert kernel_store(driver, vm.pte_gpa(PT_USER, user_page(0)), 7 << PAGE_SHIFT | P | W | U)[0] == "ok"
    assert kernel_store(driver, vm.pte_gpa(PT_USER, user_page(1)), 8 << PAGE_SHIFT | P | W | U)[0] == "ok"
    assert driver.shadow.counters["unsyncs"] == 1 and driver.shadow.counters["pt_write_traps"] == 0
    driver.switch(PTB_A, virtual_kernel=False)
    # not flushed yet: the old translations may still be used, as the bare TLB may use them
    assert (driver.load(user_page(0)), driver.load(user_page(1))) == (0x1005, 0x1006)
    driver.invlpg(user_page(0))
    assert (driver.load(user_page(0)), driver.load(user_page(1))) == (0x1007, 0x1006)
    driver.flush()
    assert driver.load(user_page(1)) == 0x1008
    assert driver.shadow.counters["resyncs"] == 1


def test_a_ptb_write_brings_every_out_of_sync_table_back_and_traces_it_again(guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, unsync=True)
    map_user(vm, 0, 5)
    driver.switch(PTB_A, virtual_kernel=False)
    driver.load(user_page(0))
    driver.switch(PTB_A, virtual_kernel=True)
    pte = vm.pte_gpa(PT_USER, user_page(0))
    assert kernel_store(driver, pte, 9 << PAGE_SHIFT | P | W | U)[0] == "ok"
    driver.write_ptb(PTB_B)
    driver.write_ptb(PTB_A)
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1009
    driver.switch(PTB_A, virtual_kernel=True)
    assert kernel_store(driver, pte, 5 << PAGE_SHIFT | P | W | U)[0] == "ok"    # out of sync once more
    assert driver.shadow.counters["unsyncs"] == 2


def test_a_page_directory_is_never_out_of_sync(guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, unsync=True)
    map_user(vm, 0, 5)
    driver.switch(PTB_A, virtual_kernel=False)
    driver.load(user_page(0))
    driver.switch(PTB_A, virtual_kernel=True)
    assert kernel_store(driver, vm.pde_gpa(PD_A, USER), 0)[0] == "traced"
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.access(user_page(0)) == ("fault", 0x4)      # seen at once: user, not present


# --- prefetch ----------------------------------------------------------------------------------------

def test_a_hidden_fault_fills_the_accessed_neighbours_only_and_sets_no_accessed_bit(guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, prefetch=True)
    for page in range(PREFETCH):                              # pages 0..7: one aligned group
        map_user(vm, page, 5 + page, P | W | U | (A if page % 2 else 0))
    driver.switch(PTB_A, virtual_kernel=False)
    assert driver.load(user_page(0)) == 0x1005
    accessed = [page for page in range(1, PREFETCH) if page % 2]
    assert driver.shadow.counters["prefetched"] == len(accessed)
    for page in range(1, PREFETCH):                            # no walk set A in a page not yet touched
        assert bool(vm.read(vm.pte_gpa(PT_USER, user_page(page))) & A) == (page in accessed)
    hidden = driver.shadow.counters["hidden_faults"]
    for page in accessed:
        assert driver.load(user_page(page)) == 0x1005 + page
    assert driver.shadow.counters["hidden_faults"] == hidden  # already mapped: no fault


def test_prefetch_leaves_out_supervisor_pages_in_the_user_role_and_clean_pages_read_only(
        guest_vm, shadow_driver):
    vm, driver = driver_with(guest_vm, shadow_driver, prefetch=True)
    map_user(vm, 0, 5)
    map_user(vm, 1, 6, P | W | A)                             # accessed, but not user
    map_user(vm, 2, 7, P | W | U | A)                         # accessed, clean
    driver.switch(PTB_A, virtual_kernel=False)
    driver.load(user_page(0))
    assert driver.shadow.counters["prefetched"] == 1
    assert driver.access(user_page(1)) == ("fault", 0x5)       # still the guest's protection fault
    hidden = driver.shadow.counters["hidden_faults"]
    assert driver.store(user_page(2), 1)[0] == "ok"            # read-only until the write sets D
    assert driver.shadow.counters["hidden_faults"] == hidden + 1
    assert vm.read(vm.pte_gpa(PT_USER, user_page(2))) & D

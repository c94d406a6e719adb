"""The MMU: the permission matrix, A/D bits, the TLB's caching and flushes, counters.

The matrix follows kvm-unit-tests' access test: every combination of P/W/U
in the PDE and the PTE with the A/D bits' initial values, times every access
(read, write, fetch) and mode (user, kernel).  `expected_outcome` is a small
reference model written from docs/internals.md; `check_access_matrix` takes
any "run this access" callable, so the VMM can be held to the same matrix.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import pytest

from asm.isa import (CAUSE_ERRCODE_SHIFT, CR_BADADDR, CR_CAUSE, CR_EPC, CR_PTB, CR_STATUS, CR_TVEC,
                     EXC_BREAKPOINT, EXC_BUS_ERROR, EXC_PAGE_FAULT, PF_FETCH, PF_PRESENT, PF_USER,
                     PF_WRITE, PTB_ENABLE, PTE_A, PTE_D, PTE_P, PTE_U, PTE_W, REG_NUMBERS,
                     STATUS_KM)
from tests.machine.cpuprog import CODE_BASE, label_address, machine_with

PAGE_DIR, CODE_TABLE, TEST_TABLE = 0x20000, 0x21000, 0x22000
TEST_VA = 0x00400000            # PDE 1, PTE 0
TEST_FRAME, OTHER_FRAME = 0x30000, 0x31000
DATA_WORD, OTHER_WORD, STORED = 0x11111111, 0x22222222, 0x5A5A5A5A
ACCESSES = ("read", "write", "fetch")
ALL_FLAGS = PTE_P | PTE_W | PTE_U | PTE_A | PTE_D


@dataclass(frozen=True)
class Outcome:
    """What one access did: `cause` (full value, 0 if none), badaddr (if it
    faulted), the PDE and PTE afterwards, and the value loaded or found stored."""
    cause: int
    badaddr: int | None
    pde: int
    pte: int


def expected_outcome(pde: int, pte: int, access: str, user: bool) -> Outcome:
    """The reference model: which access faults, with which error code, and
    what the walker leaves in the PDE and PTE."""
    errcode = (PF_WRITE if access == "write" else 0) | (PF_USER if user else 0) | (
        PF_FETCH if access == "fetch" else 0)
    if not (pde & PTE_P and pte & PTE_P):
        return Outcome(EXC_PAGE_FAULT | errcode << CAUSE_ERRCODE_SHIFT, TEST_VA, pde, pte)
    both = pde & pte
    if (user and not both & PTE_U) or (access == "write" and not both & PTE_W):
        return Outcome(EXC_PAGE_FAULT | (errcode | PF_PRESENT) << CAUSE_ERRCODE_SHIFT,
                       TEST_VA, pde, pte)
    return Outcome(0, None, pde | PTE_A, pte | PTE_A | (PTE_D if access == "write" else 0))


def access_cases():
    """(pde, pte, access, user) for every combination the matrix covers."""
    level = [p | w | u | a for p, w, u, a in itertools.product((0, PTE_P), (0, PTE_W), (0, PTE_U),
                                                                (0, PTE_A))]
    for pde, pte_base, dirty, access, user in itertools.product(level, level, (0, PTE_D), ACCESSES,
                                                                (False, True)):
        yield pde, pte_base | dirty, access, user


def check_access_matrix(run_access: Callable[[int, int, str, bool], Outcome]) -> int:
    """Run every case through `run_access(pde, pte, access, user)` and compare
    with the reference model; raises AssertionError listing the first
    mismatches.  Returns the number of cases."""
    failures, count = [], 0
    for pde, pte, access, user in access_cases():
        count += 1
        got, want = run_access(pde, pte, access, user), expected_outcome(pde, pte, access, user)
        if got != want:
            failures.append(f"pde={pde:#x} pte={pte:#x} {access} {'user' if user else 'kernel'}: "
                            f"got {got}, expected {want}")
    assert not failures, f"{len(failures)} of {count} cases differ:\n" + "\n".join(failures[:10])
    return count


# --- the bare CPU's "run this access" -------------------------------------------------------------

ACCESS_PROGRAM = [
    "read:", ("lw", "s0", 0, "a0"), ("break",),
    "write:", ("sw", "a1", 0, "a0"), ("break",),
    "fetch:", ("jalr", "zero", "a0", 0),
    "handler:", ("halt",),
]


class BareAccessRunner:
    """Runs one access on a real machine: code identity-mapped by PDE 0 (all
    permissions), TEST_VA mapped by the PDE and PTE under test to TEST_FRAME,
    which holds DATA_WORD followed by `break` (for fetches)."""

    def __init__(self):
        self.machine = machine_with(ACCESS_PROGRAM)
        memory = self.machine.memory
        memory.write(PAGE_DIR, 4, CODE_TABLE | ALL_FLAGS)
        memory.write(CODE_TABLE + 4 * (CODE_BASE >> 12), 4, CODE_BASE | ALL_FLAGS)

    def __call__(self, pde: int, pte: int, access: str, user: bool) -> Outcome:
        machine, memory = self.machine, self.machine.memory
        memory.write(PAGE_DIR + 4, 4, TEST_TABLE | pde)
        memory.write(TEST_TABLE, 4, TEST_FRAME | pte)
        break_word = int.from_bytes(memory.read_bytes(CODE_BASE + 4, 4), "little")
        memory.write(TEST_FRAME, 4, break_word if access == "fetch" else DATA_WORD)
        cpu = machine.cpu
        cpu.reset(label_address(ACCESS_PROGRAM, access), 0)
        cpu.regs[REG_NUMBERS["a0"]], cpu.regs[REG_NUMBERS["a1"]] = TEST_VA, STORED
        cpu.cr[CR_TVEC] = label_address(ACCESS_PROGRAM, "handler")
        cpu.cr[CR_STATUS] = 0 if user else STATUS_KM
        cpu.cr[CR_PTB] = PAGE_DIR | PTB_ENABLE
        cpu.run(100)
        assert cpu.state == "halted"
        cause = cpu.cr[CR_CAUSE]
        if cause == EXC_BREAKPOINT:
            self._check_effect(access, cpu)
            return Outcome(0, None, memory.read(PAGE_DIR + 4, 4) & ALL_FLAGS,
                           memory.read(TEST_TABLE, 4) & ALL_FLAGS)
        assert cpu.cr[CR_EPC] == (TEST_VA if access == "fetch" else
                                  label_address(ACCESS_PROGRAM, access))
        assert memory.read(TEST_FRAME, 4) != STORED
        return Outcome(cause, cpu.cr[CR_BADADDR], memory.read(PAGE_DIR + 4, 4) & ALL_FLAGS,
                       memory.read(TEST_TABLE, 4) & ALL_FLAGS)

    def _check_effect(self, access: str, cpu) -> None:
        """A successful access really used TEST_FRAME."""
        if access == "read":
            assert cpu.regs[REG_NUMBERS["s0"]] == DATA_WORD
        elif access == "write":
            assert self.machine.memory.read(TEST_FRAME, 4) == STORED
        else:
            assert cpu.cr[CR_EPC] == TEST_VA


def test_permission_matrix_of_every_pde_pte_access_and_mode_combination():
    assert check_access_matrix(BareAccessRunner()) == 16 * 32 * 3 * 2


def test_reference_model_spot_checks():
    # written out by hand, so a wrong model cannot silently agree with a wrong CPU
    user_write_readonly = expected_outcome(PTE_P | PTE_W | PTE_U, PTE_P | PTE_U, "write", True)
    assert user_write_readonly.cause == EXC_PAGE_FAULT | 0b0111 << 8
    kernel_fetch_missing = expected_outcome(PTE_P, 0, "fetch", False)
    assert kernel_fetch_missing.cause == EXC_PAGE_FAULT | 0b1000 << 8
    kernel_write_ok = expected_outcome(PTE_P | PTE_W, PTE_P | PTE_W, "write", False)
    assert (kernel_write_ok.cause, kernel_write_ok.pde, kernel_write_ok.pte) == (
        0, PTE_P | PTE_W | PTE_A, PTE_P | PTE_W | PTE_A | PTE_D)


# --- the TLB ------------------------------------------------------------------------------------------

def paged_machine(items, extra_maps=()):
    """`items` at CODE_BASE with paging on (via ptb set before the run): code
    and TEST_TABLE identity-mapped, TEST_VA -> TEST_FRAME, plus (va, pa) `extra_maps`; all
    kernel read-write, A and D preset."""
    body = list(items) + [("halt",), "handler:", ("halt",)]
    machine = machine_with(body)
    memory = machine.memory
    memory.write(PAGE_DIR, 4, CODE_TABLE | ALL_FLAGS)
    memory.write(PAGE_DIR + 4, 4, TEST_TABLE | ALL_FLAGS)
    for page in (CODE_BASE, TEST_TABLE):
        memory.write(CODE_TABLE + 4 * (page >> 12), 4, page | ALL_FLAGS)
    for va, pa in ((TEST_VA, TEST_FRAME),) + tuple(extra_maps):
        memory.write(TEST_TABLE + 4 * ((va >> 12) & 0x3FF), 4, pa | ALL_FLAGS)
    memory.write(TEST_FRAME, 4, DATA_WORD)
    memory.write(OTHER_FRAME, 4, OTHER_WORD)
    machine.cpu.cr[CR_PTB] = PAGE_DIR | PTB_ENABLE
    machine.cpu.cr[CR_TVEC] = label_address(body, "handler")
    return machine


def remap_test_page_then(flush_items):
    """Read TEST_VA, point its PTE at OTHER_FRAME with a guest store, read
    again (s1), run `flush_items`, read again (s2)."""
    pte_address = TEST_TABLE
    return [("lui", "a0", TEST_VA >> 12), ("lui", "a1", pte_address >> 12),
            ("lw", "s0", 0, "a0"),
            ("lui", "t0", OTHER_FRAME >> 12), ("ori", "t0", "t0", ALL_FLAGS), ("sw", "t0", 0, "a1"),
            ("lw", "s1", 0, "a0")] + list(flush_items) + [("lw", "s2", 0, "a0")]


@pytest.mark.parametrize("flush", [
    [("tlbflush",)],
    [("tlbinv", "a0")],
    [("mfcr", "t1", "ptb"), ("mtcr", "ptb", "t1")],    # rewriting the same ptb flushes too
], ids=["tlbflush", "tlbinv", "ptb-write"])
def test_stale_translation_is_used_until_a_flush_and_gone_after(flush):
    machine = paged_machine(remap_test_page_then(flush))
    machine.run()
    regs = machine.cpu.regs
    assert machine.cpu.cr[CR_CAUSE] == 0
    assert [regs[REG_NUMBERS[name]] for name in ("s0", "s1", "s2")] == [DATA_WORD, DATA_WORD,
                                                                         OTHER_WORD]


def test_without_a_flush_the_stale_translation_stays():
    machine = paged_machine(remap_test_page_then([("addi", "t1", "zero", 1)]))
    machine.run()
    assert machine.cpu.regs[REG_NUMBERS["s2"]] == DATA_WORD


def test_tlbinv_invalidates_only_its_own_page():
    second_va = TEST_VA + 0x1000
    items = remap_test_page_then([]) + [
        ("lw", "s3", 0, "t3"),                                  # second page, cached
        ("sw", "zero", 4, "a1"),                                # its PTE now not present
        ("tlbinv", "a0"), ("lw", "s2", 0, "a0"), ("lw", "s3", 0, "t3")]
    machine = paged_machine(items, extra_maps=[(second_va, OTHER_FRAME)])
    machine.cpu.regs[REG_NUMBERS["t3"]] = second_va
    machine.run()
    regs = machine.cpu.regs
    assert machine.cpu.cr[CR_CAUSE] == 0                        # the second page still translates
    assert (regs[REG_NUMBERS["s2"]], regs[REG_NUMBERS["s3"]]) == (OTHER_WORD, OTHER_WORD)


def test_write_through_a_clean_entry_walks_again_and_sets_dirty():
    items = [("lui", "a0", TEST_VA >> 12), ("lw", "s0", 0, "a0"), ("sw", "s0", 4, "a0"),
             ("sw", "s0", 8, "a0")]
    machine = paged_machine(items)
    machine.memory.write(TEST_TABLE, 4, TEST_FRAME | PTE_P | PTE_W)        # A and D clear
    machine.run()
    counters = machine.cpu.counters
    assert machine.memory.read(TEST_TABLE, 4) == TEST_FRAME | PTE_P | PTE_W | PTE_A | PTE_D
    # code page: 1 miss; data page: 1 miss (lw), 1 re-walk (first sw), the second sw hits
    assert (counters.tlb_misses, counters.page_walks) == (2, 3)
    # translations: 5 fetches + 3 data accesses; walk refs: 2 reads per walk, A on the
    # data PTE, then D on it (code and PDE entries have A preset)
    assert counters.tlb_hits == 8 - 2
    assert counters.walk_refs == 3 * 2 + 1 + 1


def test_tlb_hits_and_misses_count_fetches_and_data_accesses_exactly():
    items = [("lui", "a0", TEST_VA >> 12), ("addi", "t0", "zero", 10), "loop:",
             ("lw", "s0", 0, "a0"), ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop")]
    machine = paged_machine(items)
    machine.run()
    counters = machine.cpu.counters
    instructions = 2 + 30 + 1
    assert counters.instructions == instructions
    assert counters.tlb_misses == 2
    assert counters.tlb_hits == instructions + 10 - 2


def test_paging_off_makes_no_translations():
    machine = machine_with([("lw", "s0", 0, "zero"), ("halt",)])
    machine.run()
    counters = machine.cpu.counters
    assert (counters.tlb_hits, counters.tlb_misses, counters.page_walks) == (0, 0, 0)


def test_page_table_outside_ram_is_a_bus_error_at_the_virtual_address():
    machine = paged_machine([("lui", "a0", TEST_VA >> 12), ("lw", "s0", 0, "a0")])
    machine.memory.write(PAGE_DIR + 4, 4, 0xE0000000 | ALL_FLAGS)
    machine.run()
    cpu = machine.cpu
    assert (cpu.cr[CR_CAUSE], cpu.cr[CR_BADADDR], cpu.cr[CR_EPC]) == (EXC_BUS_ERROR, TEST_VA,
                                                                       CODE_BASE + 4)


def test_device_page_behind_a_valid_translation_reaches_the_device():
    from asm.isa import POWER_BASE
    machine = paged_machine([("lui", "a0", TEST_VA >> 12), ("addi", "t0", "zero", 42),
                             ("sw", "t0", 0, "a0"), ("addi", "s0", "zero", 1)])
    machine.memory.write(TEST_TABLE, 4, POWER_BASE | ALL_FLAGS)
    result = machine.run()
    assert (result.reason, result.exit_code) == ("power off", 42)
    assert machine.cpu.regs[REG_NUMBERS["s0"]] == 0


def test_page_fault_in_user_mode_after_rfe_reports_user_error_code():
    items = [("lui", "a0", TEST_VA >> 12), ("mtcr", "epc", "a0"), ("rfe",)]
    machine = paged_machine(items)
    machine.memory.write(TEST_TABLE, 4, TEST_FRAME | PTE_P | PTE_W)        # kernel-only page
    machine.cpu.cr[CR_STATUS] = STATUS_KM                                  # PKM 0: rfe to user
    machine.run()
    cpu = machine.cpu
    assert cpu.cr[CR_CAUSE] == EXC_PAGE_FAULT | (PF_PRESENT | PF_USER | PF_FETCH) << 8
    assert (cpu.cr[CR_EPC], cpu.cr[CR_BADADDR]) == (TEST_VA, TEST_VA)


def test_faulting_access_counts_its_translations_and_its_miss():
    machine = paged_machine([("lui", "a0", 0x00800000 >> 12), ("lw", "s0", 0, "a0")])
    machine.run()
    counters = machine.cpu.counters
    assert machine.cpu.cr[CR_CAUSE] == EXC_PAGE_FAULT     # PDE 2 is not present
    # fetches: lui, lw, the handler's halt; data: the lw's failed translation (a miss)
    assert (counters.tlb_misses, counters.page_walks, counters.tlb_hits) == (2, 2, 4 - 2)


def test_write_cr_ptb_for_the_vmm_flushes_the_tlb_like_mtcr():
    machine = paged_machine([("lui", "a0", TEST_VA >> 12), ("lw", "s0", 0, "a0")])
    machine.run()
    cpu = machine.cpu
    assert TEST_VA >> 12 in cpu.mmu.tlb
    cpu.write_cr(CR_PTB, cpu.cr[CR_PTB])
    assert cpu.mmu.tlb == {} and cpu.cr[CR_PTB] == PAGE_DIR | PTB_ENABLE

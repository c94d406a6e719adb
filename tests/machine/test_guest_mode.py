"""The virtualization extension of the Kite32 machine (docs/isa.md
"Virtualization extension (optional)"): guest mode, VM exits and nested
paging with the two-dimensional walk.

A bare-metal host program (tests/machine/cpuprog.py) builds a VMCS, nested
tables, guest tables and guest code with plain stores, enters the guest with
`vmenter` and handles each exit: it logs (reason, qualification), skips a
hypercall, maps a nested page on a nested fault, stops the timer on an
external interrupt and stops at the guest's halt.  The Python interface
(CPU.enter_guest, CPU.guest_exit) drives the walk counts and the isolation
scenarios.  Machine layout (machine addresses):

    0x10000  host code          0x30000  VMCS       0x31000 nested PD   0x32000 nested PT
    0x20000  host exit log      0x100000 + gpa      the guest's RAM, GUEST_PAGES pages
    guest-physical: 0x1000 guest code, 0x4000 guest PD, 0x5000 guest PT, 0x6000 a second guest PT,
    0x8000 results, 0x8100 guest trap log, 0x9000 the page mapped lazily, 0x10000.. data pages
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from asm import isa
from asm.isa import (CR_NUMBERS, EXC_BUS_ERROR, EXC_ILLEGAL, EXC_PAGE_FAULT,
                     EXC_PRIVILEGED, EXC_SYSCALL, EXIT_INFO_WORD, NF_MMIO, NF_TABLE,
                     NPTB_ENABLE, NPTB_PWC, PF_PRESENT, PF_WRITE, PTB_ENABLE, PTE_A, PTE_D, PTE_P, PTE_W, STATUS_KM,
                     TIMER_BASE, VMCS_AREA_CR, VMCS_AREA_PC, VMCS_AREA_REGS, VMCS_EXIT_ACCESS,
                     VMCS_EXIT_CONTROLS, VMCS_EXIT_GVA, VMCS_EXIT_INFO, VMCS_EXIT_QUALIFICATION,
                     VMCS_EXIT_REASON, VMCS_EXIT_WORD, VMCS_GUEST, VMCS_HOST, VMCS_MTCR_EXITS, VMCS_NPTB,
                     VMCS_VIRQ, VMEXIT_EXTERNAL, VMEXIT_HALT, VMEXIT_HYPERCALL, VMEXIT_MTCR,
                     VMEXIT_NESTED_FAULT, VMEXIT_SENSITIVE, VMX_EXIT_SENSITIVE, BY_MNEMONIC, encode)
from tests.machine.cpuprog import label_address, li, machine_with, words
from vmm.machine.devices.timer import CTRL_ENABLE, TIMER_ACK, TIMER_CTRL, TIMER_INTERVAL
from vmm.machine.outcome import CpuState

MEM_SIZE = 1 << 22
HOST_LOG = 0x20000
VMCS, NPD, NPT = 0x30000, 0x31000, 0x32000
GUEST_BASE = 0x100000
GUEST_PAGES = 0x120
GUEST_CODE, GPD, GPT, GPT2 = 0x1000, 0x4000, 0x5000, 0x6000
RESULT, GUEST_LOG, LAZY_PAGE = 0x8000, 0x8100, 0x9000
DATA_VA = 0x10000
LAZY_VALUE = 0x1234
UNMAPPED_VA = 0x00800000         # no guest PDE: the guest's own page fault
SECOND_TABLE_VA = 0x00C00000     # through GPT2, which the guest fills itself
PW = PTE_P | PTE_W


# --- building the layout ----------------------------------------------------------------

def nested_map(skip: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """(machine address, word) of the nested tables: gpa page i -> GUEST_BASE + i for the guest's pages."""
    pokes = [(NPD, NPT | PW)]
    pokes += [(NPT + 4 * page, (GUEST_BASE + (page << 12)) | PW)
              for page in range(GUEST_PAGES) if page not in skip]
    return pokes


def guest_tables() -> list[tuple[int, int]]:
    """(gpa, word) of the guest's own tables: the low GUEST_PAGES pages identity-mapped (A/D clear)."""
    return ([(GPD, GPT | PW), (GPD + 4 * (SECOND_TABLE_VA >> 22), GPT2 | PW)]
            + [(GPT + 4 * page, (page << 12) | PW) for page in range(GUEST_PAGES)])


def vmcs_fields(pc: int, tvec: int = 0, ptb: int = GPD | PTB_ENABLE, nptb: int = NPD | NPTB_ENABLE,
                controls: int = 0, mtcr_exits: int = 0, virq: int = 0) -> list[tuple[int, int]]:
    """(machine address, word) of a VMCS whose guest starts at `pc` in kernel mode."""
    guest = VMCS + VMCS_GUEST
    return [(guest + VMCS_AREA_PC, pc), (guest + VMCS_AREA_CR + 4 * CR_NUMBERS["status"], STATUS_KM),
            (guest + VMCS_AREA_CR + 4 * CR_NUMBERS["tvec"], tvec),
            (guest + VMCS_AREA_CR + 4 * CR_NUMBERS["ptb"], ptb),
            (VMCS + VMCS_NPTB, nptb), (VMCS + VMCS_EXIT_CONTROLS, controls),
            (VMCS + VMCS_MTCR_EXITS, mtcr_exits), (VMCS + VMCS_VIRQ, virq)]


def guest_code_pokes(items: list) -> list[tuple[int, int]]:
    """(gpa, word) of guest code placed at GUEST_CODE."""
    return [(GUEST_CODE + 4 * index, word) for index, word in enumerate(words(items, GUEST_CODE))]


def in_machine(guest_pokes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Guest-physical pokes as machine addresses."""
    return [(GUEST_BASE + gpa, value) for gpa, value in guest_pokes]


def poke(address: int, value: int) -> list[tuple]:
    """Host code storing `value` at machine `address` (uses at and t1)."""
    return li("at", address) + li("t1", value) + [("sw", "t1", 0, "at")]


# --- the host program -------------------------------------------------------------------

def host_program(pokes: list[tuple[int, int]], vmcs: int = VMCS, timer_interval: int = 0) -> list:
    """The bare-metal host (module doc): stores every poke, starts the timer
    if asked, then enters the guest until it halts or faults beyond its RAM."""
    guest_pc = VMCS_GUEST + VMCS_AREA_PC
    items = [item for address, value in pokes for item in poke(address, value)]
    if timer_interval:
        items += li("t0", TIMER_BASE) + li("t1", timer_interval) + [
            ("sw", "t1", TIMER_INTERVAL, "t0"), ("addi", "t1", "zero", CTRL_ENABLE), ("sw", "t1", TIMER_CTRL, "t0")]
    items += li("s0", vmcs) + li("s1", HOST_LOG) + [
        "enter:",
        ("vmenter", "s0"),
        ("lw", "t0", VMCS_EXIT_REASON, "s0"), ("lw", "t1", VMCS_EXIT_QUALIFICATION, "s0"),
        ("sw", "t0", 0, "s1"), ("sw", "t1", 4, "s1"), ("addi", "s1", "s1", 8),
        ("addi", "t2", "zero", VMEXIT_HALT), ("beq", "t0", "t2", "done"),
        ("addi", "t2", "zero", VMEXIT_NESTED_FAULT), ("beq", "t0", "t2", "nested"),
        ("addi", "t2", "zero", VMEXIT_EXTERNAL), ("beq", "t0", "t2", "external"),
        ("addi", "t2", "zero", VMEXIT_HYPERCALL), ("bne", "t0", "t2", "done"),
        ("lw", "t1", guest_pc, "s0"), ("addi", "t1", "t1", 4), ("sw", "t1", guest_pc, "s0"),
        ("jal", "zero", "enter"),
        "nested:",                                  # map the page lazily, if it is the guest's
        *li("t2", GUEST_PAGES << 12), ("bgeu", "t1", "t2", "done"),
        ("srli", "t1", "t1", 12), ("slli", "t3", "t1", 2), *li("t2", NPT), ("add", "t3", "t3", "t2"),
        ("slli", "t1", "t1", 12), *li("t2", GUEST_BASE | PW), ("add", "t1", "t1", "t2"),
        ("sw", "t1", 0, "t3"), ("jal", "zero", "enter"),
        "external:",                                # stop and acknowledge the timer
        *li("t0", TIMER_BASE), ("sw", "zero", TIMER_CTRL, "t0"), ("sw", "zero", TIMER_ACK, "t0"),
        ("jal", "zero", "enter"),
        "done:",
        ("halt",),
    ]
    return items


GUEST_KERNEL = li("a0", RESULT) + li("s2", GUEST_LOG) + [
    ("mfcr", "t0", "status"), ("mtcr", "scratch", "t0"), ("rdsr", "t1"),
    ("sw", "t1", 0, "a0"), ("sw", "t0", 4, "a0"), ("mfcr", "t2", "scratch"), ("sw", "t2", 8, "a0"),
    ("syscall",),                                   # the guest's own tvec
    ("hypercall",),                                 # exit: the host skips it
    *li("t1", UNMAPPED_VA), ("lw", "t2", 0, "t1"),  # the guest's own page fault: the handler skips it
    *li("t1", LAZY_PAGE + 0x10), ("lw", "t2", 0, "t1"), ("sw", "t2", 12, "a0"),   # nested fault, mapped
    *li("t1", 3000),
    "spin:",                                        # the machine timer fires in here: external exit
    ("addi", "t1", "t1", -1), ("bne", "t1", "zero", "spin"),
    ("ei",), ("di",),
    ("halt",),                                      # exit: the host stops
    "tvec:",
    ("mfcr", "t3", "cause"), ("sw", "t3", 0, "s2"), ("mfcr", "t3", "badaddr"), ("sw", "t3", 4, "s2"),
    ("addi", "s2", "s2", 8),
    ("mfcr", "t3", "epc"), ("addi", "t3", "t3", 4), ("mtcr", "epc", "t3"), ("rfe",),
]


def guest_word(machine, gpa: int) -> int:
    return machine.memory.read(GUEST_BASE + gpa, 4)


def host_log(machine) -> list[tuple[int, int]]:
    """(reason, qualification) of every exit the host program logged."""
    end = machine.cpu.regs[isa.REG_NUMBERS["s1"]]
    return [(machine.memory.read(at, 4), machine.memory.read(at + 4, 4)) for at in range(HOST_LOG, end, 8)]


@pytest.fixture(scope="module")
def hosted():
    """The host program run to its end with GUEST_KERNEL as its guest."""
    pokes = (nested_map(skip=(LAZY_PAGE >> 12,)) + in_machine(guest_tables() + guest_code_pokes(GUEST_KERNEL))
             + [(GUEST_BASE + LAZY_PAGE + 0x10, LAZY_VALUE)]
             + vmcs_fields(GUEST_CODE, tvec=label_address(GUEST_KERNEL, "tvec", GUEST_CODE)))
    items = host_program(pokes, timer_interval=2000)
    machine = machine_with(items, mem_size=MEM_SIZE)
    machine.run(max_instructions=200_000)
    machine.host_items = items
    return machine


def test_host_program_sees_each_exit_and_the_guest_halts(hosted):
    assert hosted.cpu.state is CpuState.HALTED and not hosted.cpu.in_guest
    log = host_log(hosted)
    assert [reason for reason, _ in log] == [VMEXIT_HYPERCALL, VMEXIT_NESTED_FAULT, VMEXIT_EXTERNAL, VMEXIT_HALT]
    assert dict(log)[VMEXIT_NESTED_FAULT] == LAZY_PAGE + 0x10      # the faulting guest-physical address
    assert hosted.cpu.counters.vm.vm_entries == 4
    assert hosted.cpu.counters.vm.vm_exits == {VMEXIT_HYPERCALL: 1, VMEXIT_NESTED_FAULT: 1,
                                               VMEXIT_EXTERNAL: 1, VMEXIT_HALT: 1}


def test_guest_kernel_runs_mfcr_mtcr_rdsr_in_real_kernel_mode_without_exits(hosted):
    assert guest_word(hosted, RESULT) == STATUS_KM          # rdsr: the guest's own KM = 1
    assert guest_word(hosted, RESULT + 4) == STATUS_KM      # mfcr status
    assert guest_word(hosted, RESULT + 8) == STATUS_KM      # mtcr scratch then mfcr scratch


def test_syscall_and_page_fault_go_to_the_guest_tvec(hosted):
    assert guest_word(hosted, GUEST_LOG) == EXC_SYSCALL
    assert guest_word(hosted, GUEST_LOG + 8) == EXC_PAGE_FAULT       # not present, read, kernel: error 0
    assert guest_word(hosted, GUEST_LOG + 12) == UNMAPPED_VA
    assert guest_word(hosted, GUEST_LOG + 16) == 0                    # no third guest trap


def test_lazily_mapped_page_is_read_after_the_nested_fault(hosted):
    assert guest_word(hosted, RESULT + 12) == LAZY_VALUE


def test_halt_exit_records_the_instruction_word_and_the_guest_pc(hosted):
    memory = hosted.memory
    halt_pc = label_address(GUEST_KERNEL, "tvec", GUEST_CODE) - 4
    assert memory.read(VMCS + VMCS_EXIT_REASON, 4) == VMEXIT_HALT
    assert memory.read(VMCS + VMCS_EXIT_WORD, 4) == encode(BY_MNEMONIC["halt"], {})
    assert memory.read(VMCS + VMCS_EXIT_INFO, 4) == EXIT_INFO_WORD
    assert memory.read(VMCS + VMCS_GUEST + VMCS_AREA_PC, 4) == halt_pc     # the exiting halt did not retire


def test_host_state_comes_back_after_each_exit(hosted):
    cpu = hosted.cpu
    assert cpu.pc == label_address(hosted.host_items, "done") + 4          # after the host's own halt
    assert cpu.regs[isa.REG_NUMBERS["s0"]] == VMCS
    assert cpu.cr[CR_NUMBERS["status"]] == STATUS_KM and cpu.cr[CR_NUMBERS["ptb"]] == 0
    assert hosted.memory.read(VMCS + VMCS_HOST + VMCS_AREA_REGS + 4 * isa.REG_NUMBERS["s0"], 4) == VMCS


def test_walker_sets_accessed_and_dirty_in_the_guest_tables_through_the_nested_map(hosted):
    code_pte, result_pte = guest_word(hosted, GPT + 4), guest_word(hosted, GPT + 4 * (RESULT >> 12))
    assert code_pte & PTE_A and not code_pte & PTE_D
    assert result_pte & PTE_A and result_pte & PTE_D
    assert guest_word(hosted, GPD) & PTE_A
    assert not guest_word(hosted, GPT + 4 * 0x20) & PTE_A                 # never touched


# --- the Python interface: enter_guest and guest_exit ---------------------------------------

class Hypervisor:
    """A VMM in Python on the machine: writes the layout, enters with
    enter_guest and answers every exit in guest_exit (hypercall: skip it and
    enter again; anything else: record it and stop)."""

    def __init__(self, guest_items: list, vmcs: list[tuple[int, int]] | None = None, skip_faults: int = 0,
                 extra: list[tuple[int, int]] = ()):
        self.machine = machine_with([("halt",)], mem_size=MEM_SIZE)
        self.cpu = self.machine.cpu
        self.items = guest_items
        for address, value in (nested_map() + in_machine(guest_tables() + guest_code_pokes(guest_items))
                               + (vmcs if vmcs is not None else vmcs_fields(GUEST_CODE)) + list(extra)):
            self.machine.memory.write(address, 4, value)
        self.exits: list[tuple[int, int, int, int]] = []
        self.figures: list[tuple[int, int]] = []
        self.skip_faults = skip_faults
        self.cpu.guest_exit = self.exit

    def run(self) -> "Hypervisor":
        self.cpu.enter_guest(VMCS)
        self.machine.run(max_instructions=2_000_000)
        return self

    def exit(self, reason: int, qualification: int) -> None:
        read = self.machine.memory.read
        counters = self.cpu.counters
        self.exits.append((reason, qualification, read(VMCS + VMCS_EXIT_ACCESS, 4), read(VMCS + VMCS_EXIT_GVA, 4)))
        self.figures.append((counters.tlb_misses, counters.walk_refs))
        if reason == VMEXIT_NESTED_FAULT and self.skip_faults:
            self.skip_faults -= 1
            reason = VMEXIT_HYPERCALL               # skip the faulting instruction, like a hypercall
        if reason == VMEXIT_HYPERCALL:
            pc = VMCS + VMCS_GUEST + VMCS_AREA_PC
            self.machine.memory.write(pc, 4, read(pc, 4) + 4)
            self.cpu.enter_guest(VMCS)
        else:
            self.cpu.request_stop(f"guest exit {reason}")


def page_walk_program(pages: int) -> list:
    """Guest (or bare) kernel code: paging on, a pass reading one word of
    each of `pages` data pages (sets A), tlbflush, hypercall, the same pass
    again, hypercall, halt.  The second pass's misses all find A set."""
    def one_pass(label: str) -> list:
        return li("t1", DATA_VA) + li("t2", pages) + [
            f"{label}:", ("lw", "t3", 0, "t1"), ("addi", "t1", "t1", 4096), ("addi", "t2", "t2", -1),
            ("bne", "t2", "zero", label)]
    return (li("t0", GPD | PTB_ENABLE) + [("mtcr", "ptb", "t0")] + one_pass("first")
            + [("tlbflush",), ("hypercall",)] + one_pass("second") + [("hypercall",), ("halt",)])


def second_pass_refs_per_miss(pages: int, nested: bool, pwc: bool = False) -> float:
    """Walk references per TLB miss in page_walk_program's second pass: as a
    guest under nested paging (with or without the page-walk cache), or on
    the bare machine (the same code and tables at machine addresses)."""
    items = page_walk_program(pages)
    if nested:
        nptb = NPD | NPTB_ENABLE | (NPTB_PWC if pwc else 0)
        hypervisor = Hypervisor(items, vmcs_fields(GUEST_CODE, ptb=0, nptb=nptb)).run()
        (misses, refs), (misses2, refs2) = hypervisor.figures[:2]
        assert [reason for reason, *_ in hypervisor.exits] == [VMEXIT_HYPERCALL, VMEXIT_HYPERCALL, VMEXIT_HALT]
        return (refs2 - refs) / (misses2 - misses)
    machine = machine_with(items, base=GUEST_CODE, mem_size=MEM_SIZE)
    for address, value in guest_tables():
        machine.memory.write(address, 4, value)
    figures = []

    def vm_exit(cause, epc, badaddr):
        figures.append((machine.cpu.counters.tlb_misses, machine.cpu.counters.walk_refs))
        machine.cpu.pc = epc + 4
    machine.cpu.vm_exit = vm_exit
    machine.run(max_instructions=2_000_000)
    (misses, refs), (misses2, refs2) = figures
    return (refs2 - refs) / (misses2 - misses)


def test_two_by_two_nested_walk_makes_eight_references_per_miss():
    assert second_pass_refs_per_miss(32, nested=False) == 2
    assert second_pass_refs_per_miss(32, nested=True) == 8


def test_page_walk_cache_saves_the_nested_references_of_the_guest_table_entries():
    assert second_pass_refs_per_miss(32, nested=True, pwc=True) == 4


def test_page_walk_cache_counts_its_hits_and_nested_references_are_counted_apart():
    hypervisor = Hypervisor(page_walk_program(8), vmcs_fields(GUEST_CODE, ptb=0, nptb=NPD | NPTB_ENABLE | NPTB_PWC))
    vm = hypervisor.run().cpu.counters.vm
    assert vm.pwc_hits > 0 and 0 < vm.nested_walk_refs < hypervisor.cpu.counters.walk_refs


def test_guest_translations_survive_an_exit_and_an_entry_with_the_same_nptb_and_ptb():
    hypervisor = Hypervisor(page_walk_program(8), vmcs_fields(GUEST_CODE, ptb=0)).run()
    (misses, _), (misses2, _) = hypervisor.figures[:2]
    assert misses2 - misses == 8            # the data pages only: the code page's entry was kept


def test_host_tlbflush_drops_the_kept_guest_translations():
    hypervisor = Hypervisor(page_walk_program(8), vmcs_fields(GUEST_CODE, ptb=0))
    cpu = hypervisor.cpu
    cpu.enter_guest(VMCS)
    hypervisor.cpu.guest_exit = lambda reason, qualification: cpu.request_stop("first exit")
    hypervisor.machine.run(max_instructions=100_000)
    kept = cpu.counters.tlb_misses
    cpu.flush_tlb()                          # in host mode: every translation
    cpu.guest_exit = hypervisor.exit
    pc = VMCS + VMCS_GUEST + VMCS_AREA_PC
    hypervisor.machine.memory.write(pc, 4, hypervisor.machine.memory.read(pc, 4) + 4)
    cpu.state = CpuState.RUNNING
    cpu.enter_guest(VMCS)
    hypervisor.machine.run(max_instructions=100_000)
    assert hypervisor.figures[0][0] - kept == 9    # the code page again, and the 8 data pages


def test_setting_accessed_in_a_guest_table_the_nested_map_makes_read_only_is_a_nested_write_fault():
    read_only_table = (NPT + 4 * (GPT >> 12), (GUEST_BASE + GPT) | PTE_P)
    exits = Hypervisor([("halt",)], extra=[read_only_table]).run().exits
    code_pte = GPT + 4 * (GUEST_CODE >> 12)
    assert exits == [(VMEXIT_NESTED_FAULT, code_pte, PF_PRESENT | PF_WRITE | NF_TABLE, GUEST_CODE)]


ISOLATION_GPA = (GUEST_PAGES + 1) << 12      # beyond the guest's RAM: not in the nested map
HOSTILE_VALUE = 0xBAD


def own_pte(gpa: int) -> list:
    """Guest code pointing its own SECOND_TABLE_VA page at `gpa` (PTE in GPT2, then tlbinv)."""
    return li("t0", GPT2) + li("t1", gpa | PW) + [("sw", "t1", 0, "t0")] + li("t2", SECOND_TABLE_VA) + [
        ("tlbinv", "t2")]


HOSTILE_GUEST = (own_pte(ISOLATION_GPA) + li("t1", HOSTILE_VALUE) + [("sw", "t1", 0, "t2")]   # outside its RAM
                 + own_pte(isa.UART_BASE) + [("lw", "t1", 0, "t2")]                      # MMIO: never RAM
                 + li("t0", 0x00FFF000 | PTB_ENABLE) + [("mtcr", "ptb", "t0"), ("halt",)])   # a root beyond its RAM


def test_guest_tables_pointing_outside_the_nested_map_reach_only_nested_faults():
    hypervisor = Hypervisor(HOSTILE_GUEST, skip_faults=2)
    exits = hypervisor.run().exits
    assert exits[0] == (VMEXIT_NESTED_FAULT, ISOLATION_GPA, PF_WRITE, SECOND_TABLE_VA)
    assert exits[1] == (VMEXIT_NESTED_FAULT, isa.UART_BASE, NF_MMIO, SECOND_TABLE_VA)
    reason, gpa, access, _ = exits[2]           # fetching the next instruction through the new root
    assert (reason, gpa & ~0xFFF, access & NF_TABLE) == (VMEXIT_NESTED_FAULT, 0x00FFF000, NF_TABLE)
    ram = hypervisor.machine.memory.ram
    assert HOSTILE_VALUE not in struct.unpack(f"<{len(ram) // 4}I", ram)    # the store reached no machine word
    assert hypervisor.cpu.counters.vm.nested_faults == 3


def test_sensitive_pair_and_controlled_mtcr_exit_only_when_the_vmcs_says_so():
    items = [("rdsr", "t0"), ("mtcr", "scratch", "t0"), ("mtcr", "tvec", "t0"), ("halt",)]
    free = Hypervisor(items).run().exits
    assert [reason for reason, *_ in free] == [VMEXIT_HALT]
    controlled = Hypervisor(items, vmcs_fields(GUEST_CODE, controls=VMX_EXIT_SENSITIVE,
                                               mtcr_exits=1 << CR_NUMBERS["tvec"])).run().exits
    assert controlled[0][:2] == (VMEXIT_SENSITIVE, BY_MNEMONIC["rdsr"].opcode)


def test_controlled_mtcr_exits_with_the_control_register_as_qualification():
    items = [("mtcr", "scratch", "t0"), ("mtcr", "tvec", "t0"), ("halt",)]
    exits = Hypervisor(items, vmcs_fields(GUEST_CODE, mtcr_exits=1 << CR_NUMBERS["tvec"])).run().exits
    assert exits[0][:2] == (VMEXIT_MTCR, CR_NUMBERS["tvec"])


def test_virtual_interrupt_is_delivered_to_the_guest_when_its_ie_allows_without_an_exit():
    items = [("ei",), ("halt",), "tvec:", ("mfcr", "t0", "cause"), ("halt",)]
    tvec = label_address(items, "tvec", GUEST_CODE)
    hypervisor = Hypervisor(items, vmcs_fields(GUEST_CODE, tvec=tvec, virq=1 << isa.IRQ_DISK)).run()
    assert hypervisor.exits[0][0] == VMEXIT_HALT
    assert hypervisor.cpu.memory.read(VMCS + VMCS_GUEST + VMCS_AREA_REGS + 4 * isa.REG_NUMBERS["t0"], 4) == (
        isa.CAUSE_INTERRUPT | isa.IRQ_DISK)


# --- vmenter refused, and the ISA's own rules -----------------------------------------------

@pytest.mark.parametrize("vmcs, cause", [(MEM_SIZE, EXC_BUS_ERROR), (isa.UART_BASE, EXC_BUS_ERROR),
                                         (VMCS + 8, EXC_BUS_ERROR), (VMCS, EXC_ILLEGAL)])
def test_vmenter_refuses_a_vmcs_outside_ram_unaligned_or_without_nested_paging(vmcs, cause):
    machine = machine_with(host_program([], vmcs=vmcs), mem_size=MEM_SIZE)   # the VMCS page is all zero
    machine.run(max_instructions=10_000)
    assert machine.cpu.cr[CR_NUMBERS["cause"]] == cause and not machine.cpu.in_guest
    assert machine.cpu.cr[CR_NUMBERS["epc"]] == label_address(host_program([], vmcs=vmcs), "enter")
    with pytest.raises(ValueError):
        machine.cpu.enter_guest(vmcs)


def test_vmenter_in_user_mode_is_a_privileged_instruction():
    items = li("t0", 0) + [("mtcr", "status", "t0"), ("vmenter", "zero")]
    machine = machine_with(items, mem_size=MEM_SIZE)
    machine.run(max_instructions=100)
    assert machine.cpu.cr[CR_NUMBERS["cause"]] == EXC_PRIVILEGED


def test_a_machine_without_the_extension_does_not_decode_vmenter():
    word = encode(BY_MNEMONIC["vmenter"], {"rs1": 4})
    assert isa.decode(word).insn.mnemonic == "vmenter" and isa.base_decode(word) is None


DOC = (Path(__file__).resolve().parents[2] / "docs" / "isa.md").read_text(encoding="utf-8")
SECTION = DOC[DOC.find("## Virtualization extension (optional)"):]


def doc_table(column: str) -> list[dict[str, str]]:
    """The rows of the section's one table with `column`."""
    for block in re.findall(r"((?:^\|.*\n)+)", SECTION, flags=re.M):
        lines = block.strip().splitlines()
        titles = [cell.strip() for cell in lines[0].strip("|").split("|")]
        if column in titles:
            return [dict(zip(titles, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]
    raise AssertionError(f"no table with {column}")


@pytest.mark.parametrize("column", ["Offset", "Area offset"])
def test_the_vmcs_layout_tables_match_the_constants(column):
    rows = doc_table(column)
    assert rows
    for row in rows:
        name = row["Constant"].strip("`")
        assert getattr(isa, name) == int(row[column], 16), name
    assert {row["Constant"].strip("`") for row in rows} == {
        name for name in vars(isa) if name.startswith("VMCS_") and name != "VMCS_SIZE"
        and name.startswith("VMCS_AREA_") == (column == "Area offset")}


def test_the_exit_reason_table_matches_the_constants():
    rows = doc_table("Reason")
    assert {int(row["Reason"]): row["Name"] for row in rows} == isa.VMEXIT_NAMES
    assert all(getattr(isa, row["Constant"].strip("`")) == int(row["Reason"]) for row in rows)

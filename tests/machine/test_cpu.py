"""The Kite32 CPU, instruction by instruction, on the real Machine.

Programs are built with isa.encode (cpuprog.py).  `execute` runs a snippet
followed by `halt`, with a trap handler that halts too, so after a trap the
cause, epc and badaddr registers tell what happened.  Expected values are
worked out by hand from docs/internals.md "Architecture decisions".
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from asm.isa import (BY_MNEMONIC, CAUSE_INTERRUPT, CR_BADADDR, CR_CAUSE, CR_EPC, CR_NUMBERS,
                     CR_STATUS, CR_TVEC, EXC_BREAKPOINT, EXC_BUS_ERROR, EXC_DIVIDE, EXC_ILLEGAL,
                     EXC_MISALIGNED, EXC_PRIVILEGED, EXC_SYSCALL, INSTRUCTIONS, IRQ_TIMER,
                     POWER_BASE, PRIVILEGED, REG_NUMBERS, STATUS_IE, STATUS_KM, STATUS_PIE,
                     STATUS_PKM, TIMER_BASE, encode)
from vmm.machine.cpu import EXIT_HYPERCALL
from vmm.machine.devices.timer import CTRL_ENABLE, TIMER_ACK, TIMER_CTRL, TIMER_INTERVAL
from tests.machine.cpuprog import CODE_BASE, label_address, li, machine_with, words

M32 = 0xFFFFFFFF
DATA = 0x8000


def setup(items, regs=None, cr=None, handler=(("halt",),), **options):
    """A machine with `items`, then `halt`, then `handler:` (tvec points there)."""
    body = list(items) + [("halt",), "handler:"] + list(handler)
    machine = machine_with(body, **options)
    cpu = machine.cpu
    for name, value in (regs or {}).items():
        cpu.regs[REG_NUMBERS[name]] = value & M32
    cpu.cr[CR_TVEC] = label_address(body, "handler")
    for name, value in (cr or {}).items():
        cpu.cr[CR_NUMBERS[name]] = value
    return machine


def execute(items, regs=None, cr=None, max_instructions=10_000, **options):
    """Run `items` (see setup) until the machine stops; the CPU."""
    machine = setup(items, regs, cr, **options)
    machine.run(max_instructions=max_instructions)
    return machine.cpu


def reg(cpu, name):
    return cpu.regs[REG_NUMBERS[name]]


def assert_trapped(cpu, cause, epc, badaddr=None):
    """The handler ran (and halted) for this exception."""
    assert cpu.state == "halted"
    assert (cpu.cr[CR_CAUSE], cpu.cr[CR_EPC]) == (cause, epc)
    if badaddr is not None:
        assert cpu.cr[CR_BADADDR] == badaddr


def assert_not_trapped(cpu):
    assert cpu.state == "halted" and cpu.cr[CR_CAUSE] == 0, f"cause {cpu.cr[CR_CAUSE]}"


def at(index):
    """Address of the index-th instruction of a snippet."""
    return CODE_BASE + 4 * index


# --- arithmetic and logic: golden table ------------------------------------------------

ALU_CASES = [
    # mnemonic, rs1, rs2 or imm, expected rd
    ("add", 0xFFFFFFFF, 2, 1),
    ("add", 0x7FFFFFFF, 1, 0x80000000),
    ("sub", 0, 1, 0xFFFFFFFF),
    ("sub", 5, 3, 2),
    ("and", 0xF0F0F0F0, 0xFF00FF00, 0xF000F000),
    ("or", 0xF0F0F0F0, 0x0F000000, 0xFFF0F0F0),
    ("xor", 0xFFFF0000, 0xFF00FF00, 0x00FFFF00),
    ("sll", 0x80000001, 1, 0x00000002),
    ("sll", 1, 31, 0x80000000),
    ("sll", 1, 32, 0),
    ("sll", 1, 0xFFFFFFFF, 0),             # the whole of rs2 counts, not its low 5 bits
    ("sll", 1, 33, 0),
    ("srl", 0x80000000, 31, 1),
    ("srl", 0x80000000, 32, 0),
    ("srl", 0xFFFFFFFF, 0xFFFFFFFF, 0),
    ("sra", 0x80000000, 31, 0xFFFFFFFF),
    ("sra", 0x80000000, 32, 0xFFFFFFFF),
    ("sra", 0x80000000, 0x80000000, 0xFFFFFFFF),
    ("sra", 0x40000000, 40, 0),
    ("sra", 0xF0000000, 4, 0xFF000000),
    ("slt", 0xFFFFFFFF, 0, 1),             # -1 < 0
    ("slt", 0, 0xFFFFFFFF, 0),
    ("slt", 0x80000000, 0x7FFFFFFF, 1),
    ("sltu", 0xFFFFFFFF, 0, 0),
    ("sltu", 0, 0xFFFFFFFF, 1),
    ("sltu", 3, 3, 0),
    ("mul", 0x10000, 0x10000, 0),
    ("mul", 0xFFFFFFFF, 0xFFFFFFFF, 1),
    ("mul", 12345, 6789, 83810205),
    ("div", 7, 2, 3),
    ("div", (-7) & M32, 2, (-3) & M32),    # toward zero
    ("div", 7, (-2) & M32, (-3) & M32),
    ("div", 0x80000000, 0xFFFFFFFF, 0x80000000),   # -2^31 / -1 wraps
    ("divu", 0xFFFFFFFF, 2, 0x7FFFFFFF),
    ("rem", (-7) & M32, 2, (-1) & M32),    # sign of the dividend
    ("rem", 7, (-2) & M32, 1),
    ("rem", 0x80000000, 0xFFFFFFFF, 0),
    ("remu", 0xFFFFFFFF, 10, 5),
    ("addi", 0xFFFFFFFF, 1, 0),
    ("addi", 5, -6, 0xFFFFFFFF),
    ("addi", 0, 131071, 131071),
    ("andi", 0xFFFFFFFF, -2, 0xFFFFFFFE),  # immediates sign-extend
    ("andi", 0xFFFFFFFF, 0xFFF, 0xFFF),
    ("ori", 0x12340000, 0x567, 0x12340567),
    ("ori", 0, -1, 0xFFFFFFFF),
    ("xori", 0x0000FFFF, -1, 0xFFFF0000),
    ("slli", 3, 30, 0xC0000000),
    ("srli", 0xC0000000, 30, 3),
    ("srai", 0xC0000000, 30, 0xFFFFFFFF),
    ("srai", 0x40000000, 30, 1),
    ("slti", 0xFFFFFFFE, -1, 1),
    ("slti", 0, -1, 0),
    ("sltiu", 0, -1, 1),                   # -1 sign-extends to 0xFFFFFFFF, compared unsigned
    ("sltiu", 0xFFFFFFFF, -1, 0),
    ("sltiu", 4, 5, 1),
]


@pytest.mark.parametrize("mnemonic, a, b, expected", ALU_CASES,
                         ids=[f"{c[0]}-{c[1]:#x}-{c[2]:#x}" for c in ALU_CASES])
def test_alu_instruction_gives_the_documented_result(mnemonic, a, b, expected):
    if BY_MNEMONIC[mnemonic].fmt == "R":
        cpu = execute([(mnemonic, "s0", "t0", "t1")], regs={"t0": a, "t1": b})
    else:
        cpu = execute([(mnemonic, "s0", "t0", b)], regs={"t0": a})
    assert_not_trapped(cpu)
    assert reg(cpu, "s0") == expected


def reference(mnemonic, a, b):
    """An independent model of the register-register ALU, for the differential test."""
    sa, sb = (a ^ 0x80000000) - 0x80000000, (b ^ 0x80000000) - 0x80000000
    return {
        "add": a + b, "sub": a - b, "and": a & b, "or": a | b, "xor": a ^ b,
        "sll": a << b if b < 32 else 0, "srl": a >> b if b < 32 else 0,
        "sra": sa >> min(b, 31), "slt": int(sa < sb), "sltu": int(a < b), "mul": a * b,
    }[mnemonic] & M32


@settings(max_examples=60, deadline=None)
@given(mnemonic=st.sampled_from(["add", "sub", "and", "or", "xor", "sll", "srl", "sra", "slt",
                                 "sltu", "mul"]),
       a=st.integers(0, M32), b=st.one_of(st.integers(0, 40), st.integers(0, M32)))
def test_alu_matches_an_independent_reference_model(mnemonic, a, b):
    cpu = execute([(mnemonic, "s0", "t0", "t1")], regs={"t0": a, "t1": b})
    assert reg(cpu, "s0") == reference(mnemonic, a, b)


def test_lui_places_the_immediate_in_the_top_twenty_bits():
    cpu = execute([("lui", "s0", 0xFFFFF), ("lui", "s1", 1)])
    assert (reg(cpu, "s0"), reg(cpu, "s1")) == (0xFFFFF000, 0x1000)


def test_writes_to_r0_are_dropped_and_r0_reads_zero():
    cpu = execute([("addi", "zero", "zero", 5), ("lui", "zero", 7), ("add", "s0", "zero", "zero"),
                   ("jal", "zero", "next"), "next:"])
    assert cpu.regs[0] == 0 and reg(cpu, "s0") == 0


@pytest.mark.parametrize("mnemonic", ["div", "divu", "rem", "remu"])
def test_division_by_zero_traps_and_leaves_rd_unchanged(mnemonic):
    cpu = execute([("addi", "s1", "zero", 1), (mnemonic, "s0", "t0", "zero"), ("addi", "s1", "zero", 2)],
                  regs={"t0": 9, "s0": 77})
    assert_trapped(cpu, EXC_DIVIDE, at(1))
    assert (reg(cpu, "s0"), reg(cpu, "s1")) == (77, 1)


def test_division_by_zero_into_r0_still_traps():
    cpu = execute([("div", "zero", "t0", "t1")], regs={"t0": 1})
    assert_trapped(cpu, EXC_DIVIDE, at(0))


@pytest.mark.parametrize("mnemonic", ["slli", "srli", "srai"])
@pytest.mark.parametrize("amount", [32, -1])
def test_immediate_shift_outside_0_to_31_is_illegal(mnemonic, amount):
    # encode() refuses the amount, so the word is packed by hand: rd = s0 (12), rs1 = t0 (8)
    word = BY_MNEMONIC[mnemonic].opcode << 26 | 12 << 22 | 8 << 18 | amount & 0x3FFFF
    cpu = execute([("word", word)], regs={"t0": 1, "s0": 5})
    assert_trapped(cpu, EXC_ILLEGAL, at(0))
    assert reg(cpu, "s0") == 5


# --- loads and stores ----------------------------------------------------------------------

@pytest.mark.parametrize("mnemonic, offset, expected", [
    ("lw", 0, 0x80FF7F01),
    ("lh", 0, 0x00007F01), ("lh", 2, 0xFFFF80FF), ("lhu", 2, 0x80FF),
    ("lb", 1, 0x7F), ("lb", 2, 0xFFFFFFFF), ("lb", 3, 0xFFFFFF80), ("lbu", 3, 0x80),
])
def test_load_extends_the_little_endian_value(mnemonic, offset, expected):
    machine = setup([(mnemonic, "s0", offset, "t0")], regs={"t0": DATA})
    machine.memory.write(DATA, 4, 0x80FF7F01)
    machine.run()
    assert reg(machine.cpu, "s0") == expected


@pytest.mark.parametrize("mnemonic, offset, expected", [
    ("sw", 0, b"\x04\x03\x02\x01"), ("sh", 2, b"\xEE\xEE\x04\x03"), ("sb", 3, b"\xEE\xEE\xEE\x04"),
])
def test_store_writes_the_low_bytes_little_endian(mnemonic, offset, expected):
    machine = setup([(mnemonic, "t1", offset, "t0")], regs={"t0": DATA, "t1": 0x01020304})
    machine.memory.write_bytes(DATA, b"\xEE" * 4)
    machine.run()
    assert machine.memory.read_bytes(DATA, 4) == expected


def test_negative_load_offset_is_added_to_the_base():
    machine = setup([("lw", "s0", -4, "t0")], regs={"t0": DATA + 4})
    machine.memory.write(DATA, 4, 0xCAFEF00D)
    machine.run()
    assert reg(machine.cpu, "s0") == 0xCAFEF00D


@pytest.mark.parametrize("mnemonic, offset", [
    ("lw", 1), ("lw", 2), ("lw", 3), ("lh", 1), ("lhu", 3), ("sw", 2), ("sh", 1)])
def test_misaligned_access_traps_with_badaddr_and_has_no_effect(mnemonic, offset):
    role = "s0" if mnemonic.startswith("l") else "t1"
    machine = setup([("addi", "s1", "zero", 1), (mnemonic, role, offset, "t0")],
                    regs={"t0": DATA, "s0": 55, "t1": 0xFFFFFFFF})
    machine.run()
    cpu = machine.cpu
    assert_trapped(cpu, EXC_MISALIGNED, at(1), DATA + offset)
    assert reg(cpu, "s0") == 55 and reg(cpu, "s1") == 1
    assert machine.memory.read_bytes(DATA, 8) == bytes(8)


@pytest.mark.parametrize("mnemonic", ["lb", "sb", "lw", "sw"])
def test_access_to_a_physical_address_with_nothing_behind_it_is_a_bus_error(mnemonic):
    role = "s0" if mnemonic.startswith("l") else "t1"
    cpu = execute([(mnemonic, role, 4, "t0")], regs={"t0": 0xE0000000, "s0": 3})
    assert_trapped(cpu, EXC_BUS_ERROR, at(0), 0xE0000004)
    assert reg(cpu, "s0") == 3


def test_access_just_past_the_end_of_ram_is_a_bus_error():
    cpu = execute([("lw", "s0", 0, "t0")], regs={"t0": 1 << 20}, mem_size=1 << 20)
    assert_trapped(cpu, EXC_BUS_ERROR, at(0), 1 << 20)


# --- control transfer -------------------------------------------------------------------------

BRANCH_CASES = [
    ("beq", 5, 5, True), ("beq", 5, 6, False),
    ("bne", 5, 6, True), ("bne", 5, 5, False),
    ("blt", 0xFFFFFFFF, 0, True), ("blt", 0, 0xFFFFFFFF, False), ("blt", 3, 3, False),
    ("bge", 0, 0xFFFFFFFF, True), ("bge", 3, 3, True), ("bge", 0xFFFFFFFF, 0, False),
    ("bltu", 0, 0xFFFFFFFF, True), ("bltu", 0xFFFFFFFF, 0, False),
    ("bgeu", 0xFFFFFFFF, 0, True), ("bgeu", 3, 3, True), ("bgeu", 0, 1, False),
]


@pytest.mark.parametrize("mnemonic, a, b, taken", BRANCH_CASES)
def test_branch_goes_to_pc_plus_offset_times_four_when_its_condition_holds(mnemonic, a, b, taken):
    cpu = execute([(mnemonic, "t0", "t1", "target"), ("addi", "s0", "zero", 1), ("halt",),
                   "target:", ("addi", "s0", "zero", 2)], regs={"t0": a, "t1": b})
    assert reg(cpu, "s0") == (2 if taken else 1)


def test_backward_branch_loops():
    cpu = execute([("addi", "t0", "zero", 5), "loop:", ("addi", "s0", "s0", 3),
                   ("addi", "t0", "t0", -1), ("bne", "t0", "zero", "loop")])
    assert reg(cpu, "s0") == 15 and cpu.counters.instructions == 1 + 15 + 1


def test_jal_links_the_next_address_and_jumps():
    cpu = execute([("jal", "ra", "target"), ("addi", "s0", "zero", 1), ("halt",), "target:",
                   ("addi", "s1", "zero", 2)])
    assert (reg(cpu, "ra"), reg(cpu, "s0"), reg(cpu, "s1")) == (at(1), 0, 2)


def test_jalr_jumps_to_register_plus_offset_and_links_even_when_rd_is_rs1():
    cpu = execute([("jalr", "t0", "t0", 8), ("addi", "s0", "zero", 1), ("halt",),
                   ("addi", "s1", "zero", 2)], regs={"t0": at(1)})
    assert (reg(cpu, "t0"), reg(cpu, "s0"), reg(cpu, "s1")) == (at(1), 0, 2)


def test_jalr_to_a_misaligned_target_traps_at_the_jalr_and_changes_nothing():
    cpu = execute([("jalr", "ra", "t0", 2)], regs={"t0": at(4), "ra": 9})
    assert_trapped(cpu, EXC_MISALIGNED, at(0), at(4) + 2)
    assert reg(cpu, "ra") == 9


@pytest.mark.parametrize("mnemonic, cause", [("syscall", EXC_SYSCALL), ("break", EXC_BREAKPOINT),
                                             ("hypercall", EXC_ILLEGAL)])
def test_trapping_instruction_reports_its_own_address_as_epc(mnemonic, cause):
    cpu = execute([("addi", "s0", "zero", 1), (mnemonic,), ("addi", "s0", "zero", 2)])
    assert_trapped(cpu, cause, at(1))
    assert reg(cpu, "s0") == 1
    assert cpu.counters.instructions == 2      # addi and the handler's halt; the trap retires nothing


def test_syscall_handler_returns_past_the_syscall_with_rfe():
    handler = [("mfcr", "t0", "epc"), ("addi", "t0", "t0", 4), ("mtcr", "epc", "t0"), ("rfe",)]
    cpu = execute([("syscall",), ("addi", "s0", "zero", 7)], handler=handler)
    assert reg(cpu, "s0") == 7 and cpu.state == "halted" and cpu.pc == at(3)


# --- undefined encodings ----------------------------------------------------------------------

UNDEFINED_WORDS = [
    0x00000000,                                       # opcode 0
    0x2F << 26,                                       # opcode 0x2F is unused
    0x3F << 26,
    encode(BY_MNEMONIC["add"], {"rd": 1, "rs1": 2, "rs2": 3}) | 1,      # R format low bits
    encode(BY_MNEMONIC["halt"], {}) | 1 << 5,                           # N format operand bits
    encode(BY_MNEMONIC["lui"], {"rd": 1, "imm": 1}) | 1 << 20,          # U format bits 21:20
    encode(BY_MNEMONIC["mfcr"], {"rd": 1, "cr": 0}) | 8,                # control register 8
    encode(BY_MNEMONIC["mtcr"], {"cr": 0, "rs1": 1}) | 0x3FFFF,         # control register -1
]


@pytest.mark.parametrize("word", UNDEFINED_WORDS, ids=hex)
def test_undefined_encoding_is_an_illegal_instruction(word):
    cpu = execute([("addi", "s0", "zero", 1), ("word", word), ("addi", "s0", "zero", 2)])
    assert_trapped(cpu, EXC_ILLEGAL, at(1))
    assert reg(cpu, "s0") == 1


# --- privilege ------------------------------------------------------------------------------------

PRIVILEGED_ITEMS = {
    "mfcr": ("mfcr", "s0", "tvec"), "mtcr": ("mtcr", "tvec", "zero"), "rfe": ("rfe",),
    "halt": ("halt",), "wfi": ("wfi",), "ei": ("ei",), "di": ("di",), "tlbflush": ("tlbflush",),
    "tlbinv": ("tlbinv", "t0"), "vmenter": ("vmenter", "t0"),
}


def test_the_privileged_list_covers_every_privileged_instruction():
    assert set(PRIVILEGED_ITEMS) == {insn.mnemonic for insn in INSTRUCTIONS if insn.has(PRIVILEGED)}


@pytest.mark.parametrize("mnemonic", sorted(PRIVILEGED_ITEMS))
def test_privileged_instruction_in_user_mode_traps_and_enters_kernel_mode(mnemonic):
    cpu = execute([PRIVILEGED_ITEMS[mnemonic]], regs={"s0": 5}, cr={"status": STATUS_IE})
    assert_trapped(cpu, EXC_PRIVILEGED, at(0))
    assert reg(cpu, "s0") == 5
    # entry saved KM = 0 and IE = 1 into PKM and PIE
    assert cpu.cr[CR_STATUS] == STATUS_KM | STATUS_PIE


def test_trap_from_kernel_mode_saves_km_in_pkm_and_clears_ie():
    cpu = execute([("break",)], cr={"status": STATUS_KM | STATUS_IE | 0x300})
    assert cpu.cr[CR_STATUS] == STATUS_KM | STATUS_PKM | STATUS_PIE | 0x300


def test_rdsr_in_user_mode_reads_the_real_status():
    cpu = execute([("rdsr", "s0"), ("syscall",)], cr={"status": STATUS_PIE | 0x4200})
    assert reg(cpu, "s0") == STATUS_PIE | 0x4200


def test_wrsr_in_user_mode_writes_only_the_user_flags_and_does_not_trap():
    cpu = execute([("wrsr", "t0"), ("rdsr", "s0"), ("wrsr", "t1"), ("rdsr", "s1"), ("syscall",)],
                  regs={"t0": 0xFFFFFFFF, "t1": 0x0000000F}, cr={"status": STATUS_PKM})
    assert reg(cpu, "s0") == STATUS_PKM | 0xFF00
    assert reg(cpu, "s1") == STATUS_PKM
    assert_trapped(cpu, EXC_SYSCALL, at(4))


def test_wrsr_in_kernel_mode_writes_every_defined_bit_and_can_drop_to_user_mode():
    cpu = execute([("wrsr", "t0"), ("rdsr", "s0"), ("halt",)], regs={"t0": 0xFFFF0A00 | STATUS_PIE})
    assert reg(cpu, "s0") == 0x0A00 | STATUS_PIE          # KM now 0: the halt traps
    assert_trapped(cpu, EXC_PRIVILEGED, at(2))


def test_mtcr_and_mfcr_round_trip_every_plain_control_register():
    names = ["tvec", "cause", "badaddr", "epc", "scratch", "timer"]
    items = []
    for index, name in enumerate(names):
        items += [("addi", "t0", "zero", 100 + index), ("mtcr", name, "t0")]
    items += [("mfcr", "s0", "scratch"), ("mfcr", "s1", "timer"), ("mfcr", "s2", "epc")]
    machine = setup(items)
    machine.run()
    cpu = machine.cpu
    assert (reg(cpu, "s0"), reg(cpu, "s1"), reg(cpu, "s2")) == (104, 105, 103)
    assert cpu.cr[CR_TVEC] == 100


def test_mtcr_status_keeps_only_defined_bits():
    cpu = execute([("mtcr", "status", "t0"), ("mfcr", "s0", "status")], regs={"t0": 0xFFFFFFF1})
    assert reg(cpu, "s0") == 0xFF01


def test_rfe_restores_km_and_ie_from_pkm_and_pie_and_jumps_to_epc():
    user = [("rfe",), ("halt",), "user:", ("rdsr", "s0"), ("syscall",)]
    machine = setup(user)
    machine.cpu.cr[CR_EPC] = label_address(user, "user")
    machine.cpu.cr[CR_STATUS] = STATUS_KM | STATUS_PIE      # PKM = 0: to user mode, IE on
    machine.run()
    cpu = machine.cpu
    assert reg(cpu, "s0") == STATUS_IE | STATUS_PIE          # PKM and PIE keep their values
    assert_trapped(cpu, EXC_SYSCALL, label_address(user, "user") + 4)


def test_ei_and_di_set_and_clear_ie():
    cpu = execute([("ei",), ("rdsr", "s0"), ("di",), ("rdsr", "s1")])
    assert (reg(cpu, "s0"), reg(cpu, "s1")) == (STATUS_KM | STATUS_IE, STATUS_KM)


def test_halt_stops_the_cpu_after_retiring():
    cpu = execute([("addi", "s0", "zero", 1)])
    assert cpu.state == "halted" and cpu.pc == at(2) and cpu.counters.instructions == 2


# --- precise exceptions inside a block ------------------------------------------------------------

def test_fault_in_the_middle_of_a_block_retires_exactly_the_instructions_before_it():
    items = [("addi", "s0", "zero", 1), ("addi", "s1", "zero", 2), ("lw", "s2", 1, "t0"),
             ("addi", "s3", "zero", 4)]
    machine = setup(items, regs={"t0": DATA}, handler=[("mfcr", "a0", "epc"), ("halt",)])
    result = machine.run()
    cpu = machine.cpu
    assert (reg(cpu, "s0"), reg(cpu, "s1"), reg(cpu, "s2"), reg(cpu, "s3")) == (1, 2, 0, 0)
    assert reg(cpu, "a0") == at(2)
    assert cpu.counters.instructions == 2 + 2 and result.stats.ticks == 4
    assert cpu.counters.exceptions == {EXC_MISALIGNED: 1}


def test_run_never_passes_its_until_tick_even_inside_a_long_block():
    machine = setup([("addi", "s0", "s0", 1)] * 20)
    cpu = machine.cpu
    for until in (3, 4, 11, 17):
        cpu.run(until)
        assert cpu.ticks == until and reg(cpu, "s0") == until


def test_same_code_gives_the_same_counts_with_and_without_trace():
    items = [("addi", "t0", "zero", 3), "loop:", ("sw", "t0", 0, "t1"), ("addi", "t0", "t0", -1),
             ("bne", "t0", "zero", "loop"), ("break",)]
    plain = execute(items, regs={"t1": DATA})
    events = []
    machine = setup(items, regs={"t1": DATA})
    machine.cpu.trace = lambda *event: events.append(event)
    machine.run()
    assert machine.cpu.counters.as_dict() == plain.counters.as_dict()
    assert [event for event in events if event[0] == "trap"] == [("trap", EXC_BREAKPOINT, at(4), None)]
    insns = [event[1] for event in events if event[0] == "insn"]
    assert insns == [at(0)] + [at(1), at(2), at(3)] * 3 + [at(4), at(6)]
    assert events[1] == ("insn", at(1), encode(BY_MNEMONIC["sw"], {"rs2": 8, "imm": 0, "rs1": 9}))


# --- unhandled faults ---------------------------------------------------------------------------------

def test_fault_with_tvec_zero_stops_with_a_message_naming_cause_and_addresses():
    machine = setup([("lw", "s0", 0, "t0")], regs={"t0": 0xE0000000})
    machine.cpu.cr[CR_TVEC] = 0
    result = machine.run()
    assert machine.cpu.state == "stopped" and result.exit_code == 125
    assert machine.cpu.stop_reason == ("unhandled bus error at pc 0x00010000 badaddr 0xe0000000 "
                                       "(tvec is 0)")
    assert machine.cpu.pc == at(0)


def test_fault_fetching_the_trap_vector_is_a_triple_fault():
    machine = setup([("break",)])
    machine.cpu.cr[CR_TVEC] = 0xE0000000
    machine.run()
    cpu = machine.cpu
    assert cpu.state == "stopped"
    assert cpu.stop_reason == ("triple fault: bus error fetching the trap vector at 0xe0000000 "
                               "badaddr 0xe0000000")
    assert cpu.counters.exceptions == {EXC_BREAKPOINT: 1, EXC_BUS_ERROR: 1}


def test_fetch_from_a_misaligned_pc_traps_with_the_pc_as_badaddr():
    cpu = execute([("addi", "t0", "zero", at(0) + 2), ("mtcr", "epc", "t0"), ("rfe",)],
                  cr={"status": STATUS_KM | STATUS_PKM})
    assert_trapped(cpu, EXC_MISALIGNED, at(0) + 2, at(0) + 2)


# --- interrupts and devices -------------------------------------------------------------------------

def timer_program(interval, enable_interrupts=True):
    """Start the timer (CTRL written by the instruction at tick 6), then spin."""
    return (li("t0", TIMER_BASE)
            + [("addi", "t1", "zero", interval), ("sw", "t1", TIMER_INTERVAL, "t0"),
               ("addi", "t1", "zero", CTRL_ENABLE), ("sw", "t1", TIMER_CTRL, "t0")]
            + ([("ei",)] if enable_interrupts else [])
            + ["loop:", ("addi", "s0", "s0", 1), ("jal", "zero", "loop")])


def test_timer_interrupt_is_taken_before_the_instruction_at_exactly_its_tick():
    items = timer_program(100)
    cpu = execute(items)
    # CTRL stored at tick 5 (instructions 0..4 retired before it): expiry at 5 + 100 = 105.
    # ei at 6, then addi/jal pairs from tick 7: addi at odd ticks, so tick 105 is an addi
    # and the addis at ticks 7, 9, ..., 103 (49 of them) have run.
    assert_trapped(cpu, CAUSE_INTERRUPT | IRQ_TIMER, label_address(items, "loop"))
    assert reg(cpu, "s0") == 49 and cpu.counters.instructions == 105 + 1
    assert cpu.counters.interrupts == {IRQ_TIMER: 1}
    assert cpu.cr[CR_STATUS] == STATUS_KM | STATUS_PKM | STATUS_PIE


def test_masked_interrupt_waits_until_ei():
    items = (timer_program(3, enable_interrupts=False)[:-3]
             + [("addi", "s0", "zero", 1)] * 10 + [("ei",), ("addi", "s1", "zero", 1)])
    cpu = execute(items)
    assert_trapped(cpu, CAUSE_INTERRUPT | IRQ_TIMER, at(len(items) - 1))
    assert (reg(cpu, "s0"), reg(cpu, "s1")) == (1, 0)


def test_wfi_with_interrupts_masked_sleeps_until_the_line_rises_then_continues():
    items = timer_program(50, enable_interrupts=False)[:-3] + [("wfi",), ("addi", "s1", "zero", 1)]
    machine = setup(items)
    result = machine.run()
    cpu = machine.cpu
    assert_not_trapped(cpu)
    assert reg(cpu, "s1") == 1
    # CTRL at tick 5: expiry at 55; wfi retires at tick 6 and sleeps from 7 to 55
    assert result.stats.ticks_idle == 55 - 7 and result.stats.ticks == 55 + 2


def test_interrupt_handler_acknowledges_and_returns_to_the_interrupted_instruction():
    handler = li("t2", TIMER_BASE) + [("sw", "zero", TIMER_ACK, "t2"), ("addi", "s1", "s1", 1),
                                      ("rfe",)]
    items = timer_program(40)[:-2] + ["loop:", ("addi", "s0", "s0", 1),
                                      ("addi", "t3", "zero", 60), ("blt", "s0", "t3", "loop")]
    cpu = execute(items, handler=handler)
    assert cpu.state == "halted" and reg(cpu, "s0") == 60 and reg(cpu, "s1") == 1


def test_power_off_store_stops_right_after_the_storing_instruction():
    items = li("t0", POWER_BASE) + [("addi", "t1", "zero", 9), ("sw", "t1", 0, "t0"),
                                    ("addi", "s0", "zero", 1)]
    machine = setup(items)
    result = machine.run()
    assert (result.reason, result.exit_code) == ("power off", 9)
    assert reg(machine.cpu, "s0") == 0 and machine.cpu.counters.instructions == 4
    assert machine.cpu.pc == at(4)


# --- the VMM hook -----------------------------------------------------------------------------------

def test_vm_exit_receives_exceptions_hypercalls_and_interrupts_instead_of_tvec():
    exits = []

    def monitor(cause, epc, badaddr):
        exits.append((cause, epc, badaddr))
        cpu.pc = epc + 4 if cause & CAUSE_INTERRUPT == 0 else epc
        if cause & CAUSE_INTERRUPT:
            cpu.bus.write(TIMER_BASE + TIMER_ACK, 4, 0)

    items = [("hypercall",), ("lw", "s0", 2, "zero"), ("syscall",)] + timer_program(30)
    machine = setup(items)
    cpu = machine.cpu
    cpu.vm_exit = monitor
    machine.run(max_instructions=60)
    assert exits[:3] == [(EXIT_HYPERCALL, at(0), None), (EXC_MISALIGNED, at(1), 2),
                         (EXC_SYSCALL, at(2), None)]
    assert exits[3][0] == CAUSE_INTERRUPT | IRQ_TIMER and len(exits) == 4
    assert cpu.cr[CR_EPC] == 0 and cpu.cr[CR_STATUS] & STATUS_KM
    assert cpu.counters.exceptions == {EXC_MISALIGNED: 1, EXC_SYSCALL: 1}


def test_vm_exit_sees_the_word_of_the_trapping_instruction_and_none_for_interrupts_or_fetch_faults():
    seen = []

    def monitor(cause, epc, badaddr):
        seen.append((cause, epc, cpu.exit_word))
        if cause & CAUSE_INTERRUPT:
            cpu.bus.write(TIMER_BASE + TIMER_ACK, 4, 0)
        else:       # the fetch fault: go on after the jump; the others: after the instruction
            cpu.pc = at(6) if cause == EXC_BUS_ERROR else epc + 4

    items = ([("addi", "s0", "zero", 1), ("hypercall",), ("lw", "s1", 2, "zero")] + li("t0", 0xE0000000)
             + [("jalr", "zero", "t0", 0)] + timer_program(30))
    machine = setup(items)
    cpu = machine.cpu
    cpu.vm_exit = monitor
    machine.run(max_instructions=60)
    code = words(items)
    assert seen[:3] == [(EXIT_HYPERCALL, at(1), code[1]), (EXC_MISALIGNED, at(2), code[2]),
                        (EXC_BUS_ERROR, 0xE0000000, None)]
    assert seen[3][0] == CAUSE_INTERRUPT | IRQ_TIMER and seen[3][2] is None and cpu.exit_word is None


def test_vm_exit_may_switch_the_guest_to_user_mode_by_writing_status():
    exits = []

    def monitor(cause, epc, badaddr):
        exits.append((cause, epc))
        if cause == EXIT_HYPERCALL:
            cpu.cr[CR_STATUS] = 0
            cpu.pc = epc + 4
        else:
            cpu.request_stop("monitor: done")

    machine = setup([("hypercall",), ("halt",)])
    cpu = machine.cpu
    cpu.vm_exit = monitor
    cpu.run(100)
    assert exits == [(EXIT_HYPERCALL, at(0)), (EXC_PRIVILEGED, at(1))]
    assert cpu.stop_reason == "monitor: done" and cpu.cr[CR_STATUS] == 0


def test_lowest_pending_interrupt_line_is_taken_first():
    machine = setup([("addi", "s0", "zero", 1)], cr={"status": STATUS_KM | STATUS_IE})
    machine.irq.assert_line(2)
    machine.irq.assert_line(1)
    machine.run()
    cpu = machine.cpu
    assert_trapped(cpu, CAUSE_INTERRUPT | 1, at(0))
    assert reg(cpu, "s0") == 0 and cpu.counters.interrupts == {1: 1}

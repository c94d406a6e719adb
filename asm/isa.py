"""Kite32: the instruction set table, the single source of truth for the ISA.

The assembler's encoder, the disassembler and the machine's decoder all derive
from the tables in this module; docs/isa.md documents them and a test keeps the
two in sync.  Nothing here knows about parsing, ELF or execution.

Every instruction is one 32-bit little-endian word.  Bit fields (see
docs/isa.md, "Instruction formats"):

    31      26 25  22 21  18 17  14 13                 0
    +---------+------+------+------+--------------------+
    | opcode  |  A   |  B   |  C   |        zero        |   R
    | opcode  |  A   |  B   |       imm18 (signed)      |   I, S, B
    | opcode  |  A   |          imm22 (signed)          |   J
    | opcode  |  A   | 00   |      imm20 (unsigned)     |   U
    | opcode  |                  zero                   |   N
    +---------+------+------+---------------------------+
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

# --- Registers -----------------------------------------------------------

NUM_REGS = 16

# ABI names, index = register number.  r0 always reads as zero.
REG_ABI_NAMES = (
    "zero", "ra", "sp", "at",
    "a0", "a1", "a2", "a3",
    "t0", "t1", "t2", "t3",
    "s0", "s1", "s2", "s3",
)

REG_NUMBERS: dict[str, int] = {f"r{i}": i for i in range(NUM_REGS)}
REG_NUMBERS.update({name: i for i, name in enumerate(REG_ABI_NAMES)})
REG_NUMBERS["fp"] = REG_NUMBERS["s0"]

REG_ZERO, REG_RA, REG_SP, REG_AT = 0, 1, 2, 3
REG_A0 = 4

# --- Control registers (mfcr / mtcr) --------------------------------------

CR_NAMES = ("status", "tvec", "cause", "badaddr", "epc", "scratch", "ptb", "timer")
CR_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CR_NAMES)}
CR_STATUS, CR_TVEC, CR_CAUSE, CR_BADADDR, CR_EPC, CR_SCRATCH, CR_PTB, CR_TIMER = range(8)

# status register bits
STATUS_KM = 1 << 0    # current mode: 1 = kernel, 0 = user
STATUS_IE = 1 << 1    # interrupts enabled
STATUS_PKM = 1 << 2   # KM saved by the last trap
STATUS_PIE = 1 << 3   # IE saved by the last trap
STATUS_UF_SHIFT = 8
STATUS_UF = 0xFF << STATUS_UF_SHIFT   # user flags: free for software in any mode
STATUS_PRIVILEGED = STATUS_KM | STATUS_IE | STATUS_PKM | STATUS_PIE
STATUS_DEFINED = STATUS_PRIVILEGED | STATUS_UF

# ptb register: root page-directory frame address plus the enable bit
PTB_ENABLE = 1 << 0
PTB_FRAME_MASK = 0xFFFFF000

# --- Exceptions and interrupts (cause register) ---------------------------

EXC_ILLEGAL = 1        # undefined opcode or control register; hypercall on bare hardware
EXC_PRIVILEGED = 2     # privileged instruction in user mode
EXC_MISALIGNED = 3     # misaligned load/store or jump target; badaddr = address
EXC_PAGE_FAULT = 4     # badaddr = address, error code in cause[11:8]
EXC_DIVIDE = 5         # div/divu/rem/remu by zero
EXC_BREAKPOINT = 6     # break
EXC_SYSCALL = 7        # syscall
EXC_BUS_ERROR = 8      # physical address with no RAM or device behind it; badaddr = address

EXCEPTION_NAMES = {
    EXC_ILLEGAL: "illegal instruction",
    EXC_PRIVILEGED: "privileged instruction",
    EXC_MISALIGNED: "misaligned access",
    EXC_PAGE_FAULT: "page fault",
    EXC_DIVIDE: "divide by zero",
    EXC_BREAKPOINT: "breakpoint",
    EXC_SYSCALL: "system call",
    EXC_BUS_ERROR: "bus error",
}

CAUSE_INTERRUPT = 1 << 31
CAUSE_CODE_MASK = 0xFF
CAUSE_ERRCODE_SHIFT = 8

IRQ_TIMER = 0
IRQ_CONSOLE = 1
IRQ_DISK = 2
IRQ_NAMES = {IRQ_TIMER: "timer", IRQ_CONSOLE: "console", IRQ_DISK: "disk"}

# page-fault error code bits, placed in cause[11:8]
PF_PRESENT = 1 << 0   # 1: protection violation on a present page; 0: not present
PF_WRITE = 1 << 1     # the access was a write
PF_USER = 1 << 2      # the access was made in user mode
PF_FETCH = 1 << 3     # the access was an instruction fetch

# --- Paging ----------------------------------------------------------------

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
PDX_SHIFT = 22          # va[31:22] indexes the page directory
PTX_SHIFT = 12          # va[21:12] indexes the page table
PTE_FRAME_MASK = 0xFFFFF000

PTE_P = 1 << 0   # present
PTE_W = 1 << 1   # writable
PTE_U = 1 << 2   # user accessible
PTE_A = 1 << 3   # accessed (set by the walker)
PTE_D = 1 << 4   # dirty (set by the walker on a write; leaf entries only)

# --- Virtualization extension (optional; docs/isa.md "Virtualization extension (optional)") ---
#
# The VMCS: one 4 KiB page of machine memory, every field a little-endian word at its offset.
# An area (guest or host) holds r0..r15, then pc, then the 8 control registers.

VMCS_SIZE = PAGE_SIZE
VMCS_AREA_REGS = 0x00          # r0..r15 within an area
VMCS_AREA_PC = 0x40
VMCS_AREA_CR = 0x44            # cr 0..7 within an area
VMCS_GUEST = 0x000             # the guest area: loaded at entry, stored at exit
VMCS_HOST = 0x080              # the host area: stored at entry, loaded at exit
VMCS_EXIT_CONTROLS = 0x100     # VMX_* bits: which optional events exit
VMCS_MTCR_EXITS = 0x104        # bit n set: the guest's mtcr of control register n exits
VMCS_NPTB = 0x108              # the nested root: frame [31:12], NPTB_PWC, NPTB_ENABLE
VMCS_VIRQ = 0x10C              # the guest's virtual interrupt lines: bit n = irq n pending
VMCS_EXIT_REASON = 0x180       # VMEXIT_* of the last exit
VMCS_EXIT_QUALIFICATION = 0x184   # what the reason is about (docs/isa.md "Exit reasons")
VMCS_EXIT_ACCESS = 0x188       # nested faults: the access kind (PF_* and NF_* bits)
VMCS_EXIT_WORD = 0x18C         # the instruction word at the guest pc (EXIT_INFO_WORD)
VMCS_EXIT_GVA = 0x190          # the guest-virtual address of the access (EXIT_INFO_GVA)
VMCS_EXIT_INFO = 0x194         # which of the word and the gva are valid

VMX_EXIT_SENSITIVE = 1 << 0    # the guest's rdsr / wrsr exit (in either guest mode)
VMX_EXIT_WFI = 1 << 1          # the guest's wfi exits

NPTB_ENABLE = 1 << 0           # nested paging on (vmenter refuses a VMCS without it)
NPTB_PWC = 1 << 1              # the page-walk cache of the nested walk on

EXIT_INFO_WORD = 1 << 0        # VMCS_EXIT_WORD holds the instruction word
EXIT_INFO_GVA = 1 << 1         # VMCS_EXIT_GVA holds the guest-virtual address

# the access kind of a nested fault, beside the PF_* bits (P: the nested entry was present, W, U: the
# guest was in user mode, I: a fetch)
NF_TABLE = 1 << 4              # the address is one of the guest's table entries (read or A/D write)
NF_MMIO = 1 << 5               # the address is in the MMIO range: never RAM, always an exit
NF_MISCONFIG = 1 << 6          # a nested table or the frame it names is not machine RAM

VMEXIT_EXTERNAL = 1            # a machine interrupt line; qualification = the irq
VMEXIT_HYPERCALL = 2           # qualification 0
VMEXIT_HALT = 3                # qualification 0
VMEXIT_WFI = 4                 # under VMX_EXIT_WFI; qualification 0
VMEXIT_MTCR = 5                # under VMCS_MTCR_EXITS; qualification = the control register
VMEXIT_SENSITIVE = 6           # rdsr / wrsr under VMX_EXIT_SENSITIVE; qualification = the opcode
VMEXIT_NESTED_FAULT = 7        # qualification = the guest-physical address; VMCS_EXIT_ACCESS the kind
VMEXIT_TRIPLE_FAULT = 8        # qualification = the cause the trap handler's first instruction raised
VMEXIT_NO_VECTOR = 9           # a guest trap while the guest's tvec is 0; qualification = the cause
VMEXIT_VMENTER = 10            # vmenter in guest kernel mode; qualification 0
VMEXIT_HOST = 11               # the host's own request between two instructions (CPU.leave_guest); qualification 0

VMEXIT_NAMES = {
    VMEXIT_EXTERNAL: "external interrupt", VMEXIT_HYPERCALL: "hypercall", VMEXIT_HALT: "halt",
    VMEXIT_WFI: "wfi", VMEXIT_MTCR: "mtcr", VMEXIT_SENSITIVE: "sensitive instruction",
    VMEXIT_NESTED_FAULT: "nested fault", VMEXIT_TRIPLE_FAULT: "triple fault",
    VMEXIT_NO_VECTOR: "no trap vector", VMEXIT_VMENTER: "vmenter", VMEXIT_HOST: "host request",
}

# --- Physical memory map ----------------------------------------------------

MMIO_BASE = 0xF0000000
UART_BASE = 0xF0000000
TIMER_BASE = 0xF0001000
DISK_BASE = 0xF0002000
POWER_BASE = 0xF0003000
MARKER_BASE = 0xF0004000      # the phase marker: where measurement phases start and end
MMIO_DEVICE_SIZE = 0x1000
MAX_RAM = MMIO_BASE

BOOTINFO_ADDR = 0x00001000     # physical address of the boot-info block; a0 at entry
BOOTINFO_MAGIC = 0x4B495445    # "KITE"

# --- ELF ----------------------------------------------------------------------

EM_KITE32 = 0x4B54             # ELF e_machine, ASCII "KT"

R_KITE_NONE = 0
R_KITE_32 = 1          # word32 = S + A
R_KITE_BRANCH18 = 2    # imm18 = (S + A - P) >> 2, signed, S + A - P a multiple of 4
R_KITE_JUMP22 = 3      # imm22 = (S + A - P) >> 2, signed, S + A - P a multiple of 4
R_KITE_HI20 = 4        # imm20 = (S + A) >> 12
R_KITE_LO12 = 5        # imm18 = (S + A) & 0xFFF
R_KITE_16 = 6          # half16 = S + A, must fit in 16 bits
R_KITE_8 = 7           # byte8 = S + A, must fit in 8 bits

RELOC_NAMES = {
    R_KITE_NONE: "R_KITE_NONE", R_KITE_32: "R_KITE_32",
    R_KITE_BRANCH18: "R_KITE_BRANCH18", R_KITE_JUMP22: "R_KITE_JUMP22",
    R_KITE_HI20: "R_KITE_HI20", R_KITE_LO12: "R_KITE_LO12",
    R_KITE_16: "R_KITE_16", R_KITE_8: "R_KITE_8",
}

# --- Instruction formats --------------------------------------------------------


class Field(NamedTuple):
    """A bit field of the instruction word: bits [shift + width - 1 : shift]."""
    shift: int
    width: int
    signed: bool = False

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    def range(self) -> tuple[int, int]:
        """Inclusive range of values the field can hold."""
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, self.mask


OPCODE = Field(26, 6)
FIELD_A = Field(22, 4)
FIELD_B = Field(18, 4)
FIELD_C = Field(14, 4)
IMM18 = Field(0, 18, signed=True)
IMM20 = Field(0, 20)
IMM22 = Field(0, 22, signed=True)

# Which bit field each operand role occupies, per format.
#   rd, rs1, rs2 : registers      imm : immediate      cr : control register
#   target : pc-relative code address, stored as a word offset (bytes / 4)
FORMATS: dict[str, dict[str, Field]] = {
    "R": {"rd": FIELD_A, "rs1": FIELD_B, "rs2": FIELD_C},
    "I": {"rd": FIELD_A, "rs1": FIELD_B, "imm": IMM18, "cr": IMM18},
    "S": {"rs2": FIELD_A, "rs1": FIELD_B, "imm": IMM18},
    "B": {"rs1": FIELD_A, "rs2": FIELD_B, "target": IMM18},
    "J": {"rd": FIELD_A, "target": IMM22},
    "U": {"rd": FIELD_A, "imm": IMM20},
    "N": {},
}

# --- The instruction table ------------------------------------------------------

# flags
PRIVILEGED = "privileged"   # traps with EXC_PRIVILEGED in user mode
SENSITIVE = "sensitive"     # reads or writes privileged state but does not trap
BRANCH = "branch"           # may change the pc (ends a basic block)
LOAD = "load"
STORE = "store"
TRAP = "trap"               # always raises an exception (ends a basic block)


@dataclass(frozen=True)
class Insn:
    """One instruction: its assembly syntax, encoding and properties.

    `syntax` lists the operands as written in assembly, e.g. "rd, imm(rs1)";
    each role in it must be a field of the format.
    """
    mnemonic: str
    opcode: int
    fmt: str
    syntax: str
    flags: frozenset[str] = frozenset()
    summary: str = ""
    extension: str = ""     # "" for the base architecture, else the optional extension (EXTENSIONS)

    @functools.cached_property
    def roles(self) -> tuple[str, ...]:
        """Operand roles in the order they are written: ('rd', 'imm', 'rs1')."""
        text = self.syntax.replace("(", ", ").replace(")", "")
        return tuple(part.strip() for part in text.split(",") if part.strip())

    def has(self, flag: str) -> bool:
        return flag in self.flags


def _i(mnemonic, opcode, fmt, syntax, summary, *flags, extension=""):
    return Insn(mnemonic, opcode, fmt, syntax, frozenset(flags), summary, extension)


# Optional parts of the architecture (docs/isa.md "Virtualization extension (optional)").  A machine
# without an extension has none of its instructions: their opcodes are unassigned there (base_decode).
EXT_VIRTUALIZATION = "virtualization"
EXTENSIONS = (EXT_VIRTUALIZATION,)


INSTRUCTIONS: tuple[Insn, ...] = (
    # Integer register-register (docs/isa.md "Arithmetic and logic")
    _i("add",  0x01, "R", "rd, rs1, rs2", "rd = rs1 + rs2"),
    _i("sub",  0x02, "R", "rd, rs1, rs2", "rd = rs1 - rs2"),
    _i("and",  0x03, "R", "rd, rs1, rs2", "rd = rs1 & rs2"),
    _i("or",   0x04, "R", "rd, rs1, rs2", "rd = rs1 | rs2"),
    _i("xor",  0x05, "R", "rd, rs1, rs2", "rd = rs1 ^ rs2"),
    _i("sll",  0x06, "R", "rd, rs1, rs2", "rd = rs1 << rs2 (0 if rs2 >= 32)"),
    _i("srl",  0x07, "R", "rd, rs1, rs2", "rd = rs1 >> rs2 logical (0 if rs2 >= 32)"),
    _i("sra",  0x08, "R", "rd, rs1, rs2", "rd = rs1 >> rs2 arithmetic (sign fill if rs2 >= 32)"),
    _i("slt",  0x09, "R", "rd, rs1, rs2", "rd = 1 if rs1 < rs2 signed else 0"),
    _i("sltu", 0x0A, "R", "rd, rs1, rs2", "rd = 1 if rs1 < rs2 unsigned else 0"),
    _i("mul",  0x0B, "R", "rd, rs1, rs2", "rd = low 32 bits of rs1 * rs2"),
    _i("div",  0x0C, "R", "rd, rs1, rs2", "rd = rs1 / rs2 signed, toward zero"),
    _i("divu", 0x0D, "R", "rd, rs1, rs2", "rd = rs1 / rs2 unsigned"),
    _i("rem",  0x0E, "R", "rd, rs1, rs2", "rd = rs1 % rs2 signed, sign of rs1"),
    _i("remu", 0x0F, "R", "rd, rs1, rs2", "rd = rs1 % rs2 unsigned"),
    # Integer register-immediate
    _i("addi",  0x10, "I", "rd, rs1, imm", "rd = rs1 + imm"),
    _i("andi",  0x11, "I", "rd, rs1, imm", "rd = rs1 & imm"),
    _i("ori",   0x12, "I", "rd, rs1, imm", "rd = rs1 | imm"),
    _i("xori",  0x13, "I", "rd, rs1, imm", "rd = rs1 ^ imm"),
    _i("slli",  0x14, "I", "rd, rs1, imm", "rd = rs1 << imm (imm 0..31)"),
    _i("srli",  0x15, "I", "rd, rs1, imm", "rd = rs1 >> imm logical (imm 0..31)"),
    _i("srai",  0x16, "I", "rd, rs1, imm", "rd = rs1 >> imm arithmetic (imm 0..31)"),
    _i("slti",  0x17, "I", "rd, rs1, imm", "rd = 1 if rs1 < imm signed else 0"),
    _i("sltiu", 0x18, "I", "rd, rs1, imm", "rd = 1 if rs1 < imm unsigned else 0"),
    _i("lui",   0x19, "U", "rd, imm", "rd = imm << 12"),
    # Loads and stores (docs/isa.md "Memory access")
    _i("lw",  0x1A, "I", "rd, imm(rs1)", "rd = mem32[rs1 + imm]", LOAD),
    _i("lh",  0x1B, "I", "rd, imm(rs1)", "rd = sign-extended mem16[rs1 + imm]", LOAD),
    _i("lhu", 0x1C, "I", "rd, imm(rs1)", "rd = zero-extended mem16[rs1 + imm]", LOAD),
    _i("lb",  0x1D, "I", "rd, imm(rs1)", "rd = sign-extended mem8[rs1 + imm]", LOAD),
    _i("lbu", 0x1E, "I", "rd, imm(rs1)", "rd = zero-extended mem8[rs1 + imm]", LOAD),
    _i("sw",  0x1F, "S", "rs2, imm(rs1)", "mem32[rs1 + imm] = rs2", STORE),
    _i("sh",  0x20, "S", "rs2, imm(rs1)", "mem16[rs1 + imm] = low 16 bits of rs2", STORE),
    _i("sb",  0x21, "S", "rs2, imm(rs1)", "mem8[rs1 + imm] = low 8 bits of rs2", STORE),
    # Control transfer (docs/isa.md "Control transfer")
    _i("beq",  0x22, "B", "rs1, rs2, target", "if rs1 == rs2: pc = target", BRANCH),
    _i("bne",  0x23, "B", "rs1, rs2, target", "if rs1 != rs2: pc = target", BRANCH),
    _i("blt",  0x24, "B", "rs1, rs2, target", "if rs1 < rs2 signed: pc = target", BRANCH),
    _i("bge",  0x25, "B", "rs1, rs2, target", "if rs1 >= rs2 signed: pc = target", BRANCH),
    _i("bltu", 0x26, "B", "rs1, rs2, target", "if rs1 < rs2 unsigned: pc = target", BRANCH),
    _i("bgeu", 0x27, "B", "rs1, rs2, target", "if rs1 >= rs2 unsigned: pc = target", BRANCH),
    _i("jal",  0x28, "J", "rd, target", "rd = pc + 4; pc = target", BRANCH),
    _i("jalr", 0x29, "I", "rd, rs1, imm", "rd = pc + 4; pc = rs1 + imm", BRANCH),
    # Traps into the kernel or the VMM (docs/isa.md "System")
    _i("syscall",   0x2A, "N", "", "raise the system-call exception", TRAP),
    _i("break",     0x2B, "N", "", "raise the breakpoint exception", TRAP),
    _i("hypercall", 0x2C, "N", "", "exit to the VMM; illegal instruction on bare hardware", TRAP),
    # Sensitive but unprivileged: the pushf/popf analogue (docs/isa.md "rdsr and wrsr")
    _i("rdsr", 0x2D, "I", "rd", "rd = status, in any mode", SENSITIVE),
    _i("wrsr", 0x2E, "I", "rs1",
       "status = rs1; in user mode the privileged bits are silently kept", SENSITIVE),
    # Privileged (docs/isa.md "Privileged instructions")
    _i("mfcr",     0x30, "I", "rd, cr", "rd = control register cr", PRIVILEGED),
    _i("mtcr",     0x31, "I", "cr, rs1", "control register cr = rs1", PRIVILEGED),
    _i("rfe",      0x32, "N", "", "return from trap: pc = epc, KM = PKM, IE = PIE",
       PRIVILEGED, BRANCH),
    _i("halt",     0x33, "N", "", "stop the machine", PRIVILEGED, BRANCH),
    _i("wfi",      0x34, "N", "", "wait until an interrupt is pending", PRIVILEGED, BRANCH),
    _i("ei",       0x35, "N", "", "IE = 1", PRIVILEGED),
    _i("di",       0x36, "N", "", "IE = 0", PRIVILEGED),
    _i("tlbflush", 0x37, "N", "", "invalidate every TLB entry", PRIVILEGED),
    _i("tlbinv",   0x38, "I", "rs1", "invalidate the TLB entry for virtual address rs1",
       PRIVILEGED),
    # The virtualization extension, optional (docs/isa.md "Virtualization extension (optional)")
    _i("vmenter",  0x39, "I", "rs1", "enter guest mode with the VMCS at machine address rs1",
       PRIVILEGED, extension=EXT_VIRTUALIZATION),
)

BY_MNEMONIC: dict[str, Insn] = {insn.mnemonic: insn for insn in INSTRUCTIONS}


# --- Aliases: pseudo-instructions that are one real instruction ---------------------------------


class Alias(NamedTuple):
    """`mnemonic syntax` is the instruction `real` with `operands`: each real role set to a fixed
    number, or to the operand of `syntax` that is named.  The assembler expands an alias with it
    and the disassembler prints a word as the first alias (in table order) that matches it."""
    mnemonic: str
    syntax: str
    real: str
    operands: dict

    @property
    def roles(self) -> tuple[str, ...]:
        """The alias's operand roles in the order they are written."""
        return tuple(part.strip() for part in self.syntax.split(",") if part.strip())


ALIASES: tuple[Alias, ...] = (
    Alias("nop", "", "addi", {"rd": REG_ZERO, "rs1": REG_ZERO, "imm": 0}),
    Alias("mov", "rd, rs", "addi", {"rd": "rd", "rs1": "rs", "imm": 0}),
    Alias("ret", "", "jalr", {"rd": REG_ZERO, "rs1": REG_RA, "imm": 0}),
    Alias("jr", "rs", "jalr", {"rd": REG_ZERO, "rs1": "rs", "imm": 0}),
    Alias("j", "target", "jal", {"rd": REG_ZERO, "target": "target"}),
    Alias("call", "target", "jal", {"rd": REG_RA, "target": "target"}),
    Alias("beqz", "rs, target", "beq", {"rs1": "rs", "rs2": REG_ZERO, "target": "target"}),
    Alias("bnez", "rs, target", "bne", {"rs1": "rs", "rs2": REG_ZERO, "target": "target"}),
    Alias("bltz", "rs, target", "blt", {"rs1": "rs", "rs2": REG_ZERO, "target": "target"}),
    Alias("bgez", "rs, target", "bge", {"rs1": "rs", "rs2": REG_ZERO, "target": "target"}),
    Alias("bgtz", "rs, target", "blt", {"rs1": REG_ZERO, "rs2": "rs", "target": "target"}),
    Alias("blez", "rs, target", "bge", {"rs1": REG_ZERO, "rs2": "rs", "target": "target"}),
    Alias("not", "rd, rs", "xori", {"rd": "rd", "rs1": "rs", "imm": -1}),
    Alias("neg", "rd, rs", "sub", {"rd": "rd", "rs1": REG_ZERO, "rs2": "rs"}),
)
ALIASES_OF: dict[str, tuple[Alias, ...]] = {
    real: tuple(alias for alias in ALIASES if alias.real == real) for real in {a.real for a in ALIASES}}


def alias_for(insn: Insn, operands: dict[str, int]) -> tuple[Alias, dict[str, int]] | None:
    """The first alias that the instruction `insn` with `operands` is, and the values of the
    alias's operands by its roles; None if it is none."""
    for alias in ALIASES_OF.get(insn.mnemonic, ()):
        values = {}
        for role, source in alias.operands.items():
            if type(source) is str:
                values[source] = operands[role]
            elif operands[role] != source:
                break
        else:
            return alias, values
    return None

# Immediates narrower than their field: the shift amounts (docs/isa.md "Immediates").  The
# assembler rejects other values and a word holding one does not decode (illegal instruction).
SHIFT_AMOUNT = (0, 31)
IMM_RANGES: dict[str, tuple[int, int]] = {"slli": SHIFT_AMOUNT, "srli": SHIFT_AMOUNT, "srai": SHIFT_AMOUNT}

# Every load's (width in bytes, sign-extended) and every store's width in bytes.
LOAD_WIDTHS: dict[str, tuple[int, bool]] = {"lw": (4, False), "lh": (2, True), "lhu": (2, False),
                                            "lb": (1, True), "lbu": (1, False)}
STORE_WIDTHS: dict[str, int] = {"sw": 4, "sh": 2, "sb": 1}
BY_OPCODE: dict[int, Insn] = {insn.opcode: insn for insn in INSTRUCTIONS}


# --- Encoding and decoding ------------------------------------------------------


class EncodeError(ValueError):
    """An operand value does not fit its field; the message names the range."""


def field_for(insn: Insn, role: str) -> Field:
    """The bit field that holds operand `role` of `insn`."""
    return FORMATS[insn.fmt][role]


def operand_range(insn: Insn, role: str) -> tuple[int, int]:
    """Inclusive range of values operand `role` of `insn` may take: its
    field's range, narrowed by IMM_RANGES for the immediate."""
    if role == "imm" and insn.mnemonic in IMM_RANGES:
        return IMM_RANGES[insn.mnemonic]
    if role == "cr":
        return 0, len(CR_NAMES) - 1
    return field_for(insn, role).range()


def check_fits(value: int, bounds: tuple[int, int], what: str) -> None:
    """Raise EncodeError unless low <= `value` <= high."""
    low, high = bounds
    if not low <= value <= high:
        raise EncodeError(f"{what} {value} out of range [{low}, {high}]")


def field_plan(insn: Insn) -> tuple[tuple, ...]:
    """Per operand of `insn`, in role order: (role, its field, the field's
    mask, operand_range, what an encoding error calls it), computed once."""
    plan = _PLANS.get(insn.opcode)
    if plan is None or plan[0] is not insn:
        plan = _PLANS[insn.opcode] = (insn, tuple(
            (role, field_for(insn, role), field_for(insn, role).mask, operand_range(insn, role),
             "control register" if role == "cr" else "register" if role in ("rd", "rs1", "rs2")
             else "immediate") for role in insn.roles))
    return plan[1]


_PLANS: dict[int, tuple] = {}


def encode(insn: Insn, operands: dict[str, int]) -> int:
    """Encode `insn` with operand values by role; returns the 32-bit word.

    Registers are numbers, `target` is a word offset (byte offset / 4), `cr`
    a control-register number.  Raises EncodeError if a value does not fit.
    """
    word = insn.opcode << OPCODE.shift
    for role, field, mask, bounds, what in field_plan(insn):
        value = operands[role]
        if not bounds[0] <= value <= bounds[1]:
            check_fits(value, bounds, what)
        word |= (value & mask) << field.shift
    return word


class Decoded(NamedTuple):
    insn: Insn
    operands: dict[str, int]


def extract(word: int, field: Field) -> int:
    """The value of `field` in `word`, sign-extended if the field is signed."""
    value = (word >> field.shift) & field.mask
    if field.signed and value >> (field.width - 1):
        value -= 1 << field.width
    return value


def decode(word: int) -> Decoded | None:
    """Decode a 32-bit word; None if it is not a valid Kite32 instruction.

    A word is valid only if its opcode is in the table, every bit outside
    the instruction's operand fields is zero and every operand is in its
    range (operand_range: a control register below 8, a shift amount 0..31),
    so decode(encode(x)) == x and every valid word has exactly one meaning.
    Each result has operands of its own; the words decoded are remembered.
    """
    found = _DECODED.get(word, _DECODED)
    if found is _DECODED:
        if len(_DECODED) >= MAX_DECODED:
            _DECODED.clear()
        found = _DECODED[word] = _decode(word)
    return None if found is None else Decoded(found.insn, dict(found.operands))


_DECODED: dict[int, Decoded | None] = {}
MAX_DECODED = 1 << 16


def _decode(word: int) -> Decoded | None:
    """decode(), computed."""
    insn = BY_OPCODE.get(word >> OPCODE.shift)
    if insn is None:
        return None
    used = OPCODE.mask << OPCODE.shift
    operands = {}
    for role, field, mask, _, _ in field_plan(insn):
        used |= mask << field.shift
        operands[role] = extract(word, field)
    if word & ~used & 0xFFFFFFFF:
        return None
    for role, value in operands.items():
        low, high = operand_range(insn, role)
        if not low <= value <= high:
            return None
    return Decoded(insn, operands)


def base_decode(word: int) -> Decoded | None:
    """decode() on a machine without the optional extensions (the machine
    simulator's): an extension instruction's opcode is unassigned there, so
    its words do not decode (illegal instruction, in either mode)."""
    found = decode(word)
    return None if found is None or found.insn.extension else found

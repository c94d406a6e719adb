"""The block translator: Kite32 code to Python functions, QEMU-style.

A block is straight-line code from one address up to and including the first
instruction that branches, traps, is privileged or sensitive, or does not
decode, or up to the end of the page (or MAX_BLOCK instructions).  Each
instruction becomes a few lines of Python from its template (ALU_R, ALU_I,
SHIFT_I, BRANCHES and the translate_* functions: the machine's ONE
implementation of its semantics; single-stepping uses blocks of length 1),
with registers, immediates, the pc and the privilege mode folded in, and
writes to r0 dropped.  Load and store widths come from the ISA table, and
the rules (load extension, status writes) from asm.arch.  The block compiles to

    def block(T, <the namespace bound to locals as defaults>):  ... return next_pc

where T is the tick at block start, so an instruction at index i that reaches
a device or traps knows its exact tick, T + i.  Loads and stores try the MMU's
fast table (one dict lookup) and fall back to the CPU's slow path (`LD`,
`ST`), which translates, reaches devices, and raises `BlockExit` after any
device access or code-page write so the run loop regains control right after
that instruction.  Exceptions are raised as `Trap`, naming the faulting pc
and tick; nothing of the faulting instruction has happened by then.

Blocks are cached by (virtual pc, physical address, user, paging, single) and
dropped when their physical page is written (PhysicalMemory.code_pages).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from asm.arch import extend_expression, with_interrupts, written_status
from asm.isa import (BRANCH, CR_PTB, CR_STATUS, EXC_BREAKPOINT, EXC_DIVIDE, EXC_ILLEGAL, EXC_MISALIGNED,
                     EXC_PRIVILEGED, EXC_SYSCALL, LOAD, LOAD_WIDTHS, PAGE_MASK, PAGE_SHIFT, PRIVILEGED,
                     SENSITIVE, STORE, STORE_WIDTHS, TRAP, Insn, decode)
from vmm.machine.memory import PhysicalMemory

MAX_BLOCK = 32
M32 = 0xFFFFFFFF
SIGN = 0x80000000
EXIT_HYPERCALL = 0x40   # cause handed to CPU.vm_exit for `hypercall` (not an exception code)


class Trap(Exception):
    """A guest exception raised while running a block.

    `cause` the cause value, `badaddr` the address for causes that set it
    (else None), `pc` the faulting instruction, `tick` the tick it started at
    (so tick - block start = instructions retired before it), `lookups` the
    TLB translations the faulting instruction made, `fetch` whether the
    instruction fetch itself failed."""

    def __init__(self, cause: int, badaddr: int | None, pc: int, tick: int, lookups: int,
                 fetch: bool = False):
        super().__init__(cause, badaddr, pc, tick)
        self.cause, self.badaddr, self.pc, self.tick = cause, badaddr, pc, tick
        self.lookups, self.fetch = lookups, fetch


class BlockExit(Exception):
    """Leave the block early after a completed instruction (device access,
    code-page write): continue at `pc`, `tick` = the tick after it."""

    def __init__(self, pc: int, tick: int):
        super().__init__(pc, tick)
        self.pc, self.tick = pc, tick


@dataclass(frozen=True)
class Context:
    """What a translation depends on besides the code: the mode and paging."""
    user: bool
    paging: bool

    @property
    def fetch_lookups(self) -> int:
        """TLB translations per instruction fetch."""
        return 1 if self.paging else 0


@dataclass
class Block:
    """A translated block.  `fn(T)` runs it and returns the next pc;
    `n` instructions; `lookups` TLB translations when it completes;
    `prefix[i]` the translations of its first i instructions; `ends` whether
    it may change the mode, paging, IE or the CPU state (the run loop
    must look again before going on); `words` the instruction words."""
    fn: Callable[[int], int]
    n: int
    lookups: int
    prefix: tuple[int, ...]
    ends: bool
    words: tuple[int, ...]
    source: str


# --- templates: one per mnemonic, each returns lines of Python -----------------

def reg(n: int) -> str:
    """The expression reading register n (r0 folds to 0)."""
    return f"R[{n}]" if n else "0"


def put(rd: int, expr: str) -> list[str]:
    """The statement writing `expr` to rd; nothing for r0."""
    return [f"R[{rd}] = {expr}"] if rd else []


def u32(value: int) -> str:
    """A 32-bit constant as a hex literal (negative values wrap)."""
    return hex(value & M32)


def trap(cause: int, badaddr: str, at: "Site", translated: int = 0) -> str:
    """A raise statement for an exception at this instruction."""
    return (f"raise Trap({cause}, {badaddr}, {hex(at.pc)}, T + {at.index}, "
            f"{at.ctx.fetch_lookups + translated})")


@dataclass(frozen=True)
class Site:
    """Where an instruction is translated: its pc, index in the block and context."""
    pc: int
    index: int
    ctx: Context

    @property
    def next(self) -> str:
        """The address of the following instruction, as a literal."""
        return u32(self.pc + 4)

    def target(self, offset: int) -> str:
        """A branch target pc + offset * 4, as a literal."""
        return u32(self.pc + offset * 4)


ALU_R = {
    "add": "({a} + {b}) & 0xFFFFFFFF",
    "sub": "({a} - {b}) & 0xFFFFFFFF",
    "and": "{a} & {b}",
    "or": "{a} | {b}",
    "xor": "{a} ^ {b}",
    "sll": "({a} << {b}) & 0xFFFFFFFF if {b} < 32 else 0",
    "srl": "{a} >> {b}",
    "sra": "((({a} ^ 0x80000000) - 0x80000000) >> {b}) & 0xFFFFFFFF",
    "slt": "1 if ({a} ^ 0x80000000) < ({b} ^ 0x80000000) else 0",
    "sltu": "1 if {a} < {b} else 0",
    "mul": "({a} * {b}) & 0xFFFFFFFF",
}
DIVISION = {"div": "DIVS", "rem": "REMS", "divu": "DIVU", "remu": "REMU"}
ALU_I = {
    "addi": lambda a, imm: f"({a} + {imm}) & 0xFFFFFFFF",
    "andi": lambda a, imm: f"{a} & {u32(imm)}",
    "ori": lambda a, imm: f"{a} | {u32(imm)}",
    "xori": lambda a, imm: f"{a} ^ {u32(imm)}",
    "slti": lambda a, imm: f"1 if ({a} ^ 0x80000000) < {u32(imm ^ SIGN)} else 0",
    "sltiu": lambda a, imm: f"1 if {a} < {u32(imm)} else 0",
}
SHIFT_I = {
    "slli": "({a} << {imm}) & 0xFFFFFFFF",
    "srli": "{a} >> {imm}",
    "srai": "((({a} ^ 0x80000000) - 0x80000000) >> {imm}) & 0xFFFFFFFF",
}
# the fast-path read of an unsigned `width`-byte value at physical address `a + o`
RAW_READS = {4: "U32(ram, a + o)[0]", 2: "U16(ram, a + o)[0]", 1: "ram[a + o]"}
# the fast-path store statement of `v` at physical address `a + o`, by width
RAW_WRITES = {4: "P32(ram, a + o, {v})", 2: "P16(ram, a + o, {v} & 0xFFFF)", 1: "ram[a + o] = {v} & 0xFF"}
BRANCHES = {
    "beq": "{a} == {b}",
    "bne": "{a} != {b}",
    "blt": "({a} ^ 0x80000000) < ({b} ^ 0x80000000)",
    "bge": "({a} ^ 0x80000000) >= ({b} ^ 0x80000000)",
    "bltu": "{a} < {b}",
    "bgeu": "{a} >= {b}",
}
TRAPS = {"syscall": EXC_SYSCALL, "break": EXC_BREAKPOINT, "hypercall": EXIT_HYPERCALL}


def effective_address(op: dict) -> str:
    """Statement computing the virtual address `a` of a load or store."""
    base = reg(op["rs1"])
    return f"a = ({base} + {op['imm']}) & 0xFFFFFFFF" if op["imm"] else f"a = {base}"


def alignment_check(width: int, at: Site) -> list[str]:
    """Raise the misaligned exception unless `a` is a multiple of `width`."""
    if width == 1:
        return []
    return [f"if a & {width - 1}:", f"    {trap(EXC_MISALIGNED, 'a', at)}"]


def translate_load(insn: Insn, op: dict, at: Site) -> list[str]:
    """Fast path through RD, else the CPU's LD (which also writes rd); the
    width and extension come from the ISA table, the extension rule from asm.arch."""
    width, signed = LOAD_WIDTHS[insn.mnemonic]
    fast = extend_expression(RAW_READS[width], width, signed)
    rd = op["rd"]
    slow = f"LD(a, {width}, {signed}, {rd}, {hex(at.pc)}, T + {at.index})"
    lines = [effective_address(op)] + alignment_check(width, at) + ["o = RD.get(a >> 12)"]
    if not rd:
        return lines + ["if o is None:", f"    {slow}"]
    return lines + ["if o is None:", f"    {slow}", "else:", f"    R[{rd}] = {fast}"]


def translate_store(insn: Insn, op: dict, at: Site) -> list[str]:
    """Fast path through WR (RAM pages without code), else the CPU's ST."""
    width = STORE_WIDTHS[insn.mnemonic]
    fast = RAW_WRITES[width]
    value = reg(op["rs2"])
    return ([effective_address(op)] + alignment_check(width, at) + [
        "o = WR.get(a >> 12)",
        "if o is None:",
        f"    ST(a, {width}, {value}, {hex(at.pc)}, T + {at.index})",
        "else:",
        "    " + fast.format(v=value)])


def translate_control(insn: Insn, op: dict, at: Site) -> list[str]:
    """Branches, jal, jalr: the block's last instruction, ending in `return`."""
    name = insn.mnemonic
    if name in BRANCHES:
        cond = BRANCHES[name].format(a=reg(op["rs1"]), b=reg(op["rs2"]))
        return [f"return {at.target(op['target'])} if {cond} else {at.next}"]
    if name == "jal":
        return put(op["rd"], at.next) + [f"return {at.target(op['target'])}"]
    return ([f"t = ({reg(op['rs1'])} + {op['imm']}) & 0xFFFFFFFF",
             "if t & 3:", f"    {trap(EXC_MISALIGNED, 't', at)}"]
            + put(op["rd"], at.next) + ["return t"])


def translate_system(insn: Insn, op: dict, at: Site) -> list[str]:
    """Sensitive and privileged instructions (privilege already checked)."""
    name = insn.mnemonic
    if name == "rdsr":
        return put(op["rd"], f"CR[{CR_STATUS}]")
    if name == "wrsr" and at.ctx.user:
        return [f"CR[{CR_STATUS}] = WRITTEN_STATUS(CR[{CR_STATUS}], {reg(op['rs1'])}, False)"]
    if name == "wrsr":
        return [f"WSTATUS({reg(op['rs1'])})"]
    if name == "mfcr":
        return put(op["rd"], f"CR[{op['cr']}]")
    if name == "mtcr":
        value = reg(op["rs1"])
        if op["cr"] == CR_STATUS:
            return [f"WSTATUS({value})"]
        if op["cr"] == CR_PTB:
            return [f"WPTB({value})"]
        return [f"CR[{op['cr']}] = {value}"]
    return {
        "rfe": ["return RFE()"],
        "halt": ["HALT()"],
        "wfi": ["WFI()"],
        "ei": [f"CR[{CR_STATUS}] = WITH_INTERRUPTS(CR[{CR_STATUS}], True)"],
        "di": [f"CR[{CR_STATUS}] = WITH_INTERRUPTS(CR[{CR_STATUS}], False)"],
        "tlbflush": ["FLUSH()"],
        "tlbinv": [f"INV({reg(op.get('rs1', 0))})"],
    }[name]


def translate_insn(word: int, at: Site) -> list[str]:
    """The lines for the instruction `word` at `at`; undefined encodings and,
    in user mode, privileged instructions become a raise."""
    decoded = decode(word)
    if decoded is None:
        return [trap(EXC_ILLEGAL, "None", at)]
    insn, op = decoded
    name = insn.mnemonic
    if insn.has(PRIVILEGED) and at.ctx.user:
        return [trap(EXC_PRIVILEGED, "None", at)]
    if name in ALU_R:
        return put(op["rd"], ALU_R[name].format(a=reg(op["rs1"]), b=reg(op["rs2"])))
    if name in DIVISION:
        return ([f"b = {reg(op['rs2'])}", "if b == 0:", f"    {trap(EXC_DIVIDE, 'None', at)}"]
                + put(op["rd"], f"{DIVISION[name]}({reg(op['rs1'])}, b)"))
    if name in ALU_I:
        if not op["rs1"] and name == "addi":
            return put(op["rd"], u32(op["imm"]))
        return put(op["rd"], ALU_I[name](reg(op["rs1"]), op["imm"]))
    if name in SHIFT_I:
        return put(op["rd"], SHIFT_I[name].format(a=reg(op["rs1"]), imm=op["imm"]))
    if name == "lui":
        return put(op["rd"], u32(op["imm"] << 12))
    if insn.has(LOAD):
        return translate_load(insn, op, at)
    if insn.has(STORE):
        return translate_store(insn, op, at)
    if name in TRAPS:
        return [trap(TRAPS[name], "None", at)]
    if insn.has(BRANCH) and not insn.has(PRIVILEGED):
        return translate_control(insn, op, at)
    return translate_system(insn, op, at)


def ends_block(word: int) -> bool:
    """Whether the instruction `word` is the last of its block."""
    decoded = decode(word)
    return decoded is None or bool(decoded.insn.flags & {BRANCH, TRAP, PRIVILEGED, SENSITIVE})


def changes_context(word: int) -> bool:
    """Whether the instruction may change the mode, paging, IE or CPU state."""
    decoded = decode(word)
    return decoded is not None and bool(decoded.insn.flags & {PRIVILEGED, SENSITIVE})


def lookups_of(word: int, ctx: Context) -> int:
    """TLB translations the instruction makes when it retires."""
    if not ctx.paging:
        return 0
    decoded = decode(word)
    return 1 + (decoded is not None and bool(decoded.insn.flags & {LOAD, STORE}))


# --- helpers bound into every block ----------------------------------------------

def signed(value: int) -> int:
    """A 32-bit value as a signed int."""
    return value - ((value & SIGN) << 1)


def div_signed(a: int, b: int) -> int:
    """Signed quotient toward zero, wrapped (so -2^31 / -1 = -2^31); b != 0."""
    sa, sb = signed(a), signed(b)
    quotient = abs(sa) // abs(sb)
    return (-quotient if (sa < 0) != (sb < 0) else quotient) & M32


def rem_signed(a: int, b: int) -> int:
    """Signed remainder with the sign of the dividend; b != 0."""
    sa, sb = signed(a), signed(b)
    remainder = abs(sa) % abs(sb)
    return (-remainder if sa < 0 else remainder) & M32


BASE_NAMESPACE = {
    "Trap": Trap, "WRITTEN_STATUS": written_status, "WITH_INTERRUPTS": with_interrupts,
    "DIVS": div_signed, "REMS": rem_signed,
    "DIVU": lambda a, b: a // b, "REMU": lambda a, b: a % b,
    "U32": struct.Struct("<I").unpack_from, "U16": struct.Struct("<H").unpack_from,
    "P32": struct.Struct("<I").pack_into, "P16": struct.Struct("<H").pack_into,
}
# names bound to locals (as default arguments) in every block function
BOUND = ("R", "ram", "CR", "RD", "WR", "LD", "ST", "U32", "U16", "P32", "P16", "Trap")


class Translator:
    """Translates and caches blocks for one CPU.  `hooks` maps the names the
    templates call (R, CR, LD, ST, WSTATUS, WPTB, RFE, HALT, WFI, FLUSH, INV)
    to the CPU's objects; `fast_read` / `fast_write` are the MMU's tables
    indexed by user.  Calls `on_invalidate()` after dropping blocks."""

    def __init__(self, memory: PhysicalMemory, hooks: dict, fast_read, fast_write,
                 on_new_code_page: Callable[[], None], on_invalidate: Callable[[], None]):
        self.memory = memory
        self._namespaces = [dict(BASE_NAMESPACE, ram=memory.ram, RD=fast_read[user],
                                 WR=fast_write[user], **hooks) for user in (0, 1)]
        self._blocks: dict[tuple, Block] = {}
        self._by_page: dict[int, list[tuple]] = {}
        self._on_new_code_page = on_new_code_page
        self._on_invalidate = on_invalidate
        memory.code_write_listeners.append(self.invalidate_page)

    def block(self, va: int, pa: int, ctx: Context, single: bool) -> Block:
        """The block at virtual `va` (physical `pa`, in RAM, 4-aligned) for
        `ctx`; one instruction long if `single`.  Cached until its page is written."""
        key = (va, pa, ctx, single)
        found = self._blocks.get(key)
        if found is None:
            found = self._translate(va, pa, ctx, single)
            ppn = pa >> PAGE_SHIFT
            if ppn not in self.memory.code_pages:
                self.memory.code_pages.add(ppn)
                self._on_new_code_page()
            self._blocks[key] = found
            self._by_page.setdefault(ppn, []).append(key)
        return found

    def invalidate_page(self, ppn: int) -> None:
        """Drop every block translated from physical page `ppn`."""
        for key in self._by_page.pop(ppn, ()):
            self._blocks.pop(key, None)
        self._on_invalidate()

    def _words(self, pa: int, single: bool) -> list[int]:
        """The block's instruction words from `pa` (see module doc for where it ends)."""
        page_end = (pa | PAGE_MASK) + 1
        words = []
        for address in range(pa, min(page_end, pa + 4 * (1 if single else MAX_BLOCK)), 4):
            word = int.from_bytes(self.memory.ram[address:address + 4], "little")
            words.append(word)
            if ends_block(word):
                break
        return words

    def _translate(self, va: int, pa: int, ctx: Context, single: bool) -> Block:
        """Generate, compile and wrap the block at `va`."""
        words = self._words(pa, single)
        body: list[str] = []
        prefix = [0]
        for index, word in enumerate(words):
            body.append(f"# {va + 4 * index:#010x}: {word:#010x}")
            body += translate_insn(word, Site(va + 4 * index, index, ctx))
            prefix.append(prefix[-1] + lookups_of(word, ctx))
        if not body[-1].startswith(("return", "raise")):
            body.append(f"return {u32(va + 4 * len(words))}")
        params = ", ".join(f"{name}={name}" for name in BOUND)
        source = f"def block(T, {params}):\n" + "".join(f"    {line}\n" for line in body)
        namespace = self._namespaces[ctx.user]
        exec(compile(source, f"<block {va:#010x}>", "exec"), namespace)
        fn = namespace.pop("block")
        return Block(fn, len(words), prefix[-1], tuple(prefix), changes_context(words[-1]),
                     tuple(words), source)

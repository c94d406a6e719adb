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

    def make(V, S0, S1):               # V: the context's blocks by pc; S*: chain cells
        def block(T, U, <the namespace bound to locals as defaults>):
            r5 = R[5]; ...             # registers live in locals inside the block
            ...
            R[5] = r5; ...             # written back before every exit
            return <the successor>
        return block

where T is the tick at block start, so an instruction at index i that reaches
a device or traps knows its exact tick, T + i, and U the tick the run loop
must not pass.  Loads and stores try the MMU's fast table (one dict lookup)
and fall back to the CPU's slow path (`LD`, `ST`), which translates, reaches
devices, and raises `BlockExit` after any device access or code-page write
so the run loop regains control right after that instruction.  Exceptions
are raised as `Trap`, naming the faulting pc and tick; nothing of the
faulting instruction has happened by then.  Before any raise and any slow
path call the locals assigned so far are written back to R (LD's result is
read back), so the CPU, its slow paths and the VMM always see R exact.

The successor a block returns is the entry (fn, n, lookups, Meta) of the next
block, or a marker with length BIG, which the run loop stops at:

    chain cell S*      a static successor on the block's own page: the cell
                       holds a LOOKUP marker until the run loop points it at
                       the successor's entry (chained; cut with the page,
                       since chains never leave it)
    V.get(pc) or       any other successor (another page, jalr): the
      LOOKUP marker    context's entry for that pc, else (None, BIG, 0, pc)
    STOP marker        after a block that may change the mode, paging, IE or
                       the CPU state: (False, BIG, 0, pc); the run loop looks
                       again in the new context
    LOOPED marker      from a block whose last instruction jumps back to its
                       start: such a block loops inside its function while
                       another whole round fits before U, and returns
                       (None, BIG, 0, (extra ticks, extra lookups, successor))
                       when it went round at all

In a guest-mode context (Context.guest, the virtualization extension) every
privileged or sensitive instruction first asks the CPU's GX whether the VMCS
makes it exit, and raises Trap(GUEST_EXIT | reason) if so; `vmenter` calls
the CPU's VMENTER, whose result is the block's exit pc.

Blocks are cached by (virtual pc, physical address, user, paging, guest, single) and
dropped when their physical page is written (PhysicalMemory.code_pages); the
compiled code is shared by content (virtual pc, context, single, words)
across pages and CPUs of the process (COMPILED), so a program loaded again,
or run again, is not compiled again.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

from asm.arch import extend_expression, with_interrupts, written_status
from asm.isa import (BRANCH, CR_PTB, CR_STATUS, EXC_BREAKPOINT, EXC_DIVIDE, EXC_ILLEGAL, EXC_MISALIGNED,
                     EXC_PRIVILEGED, EXC_SYSCALL, LOAD, LOAD_WIDTHS, PAGE_MASK, PAGE_SHIFT, PRIVILEGED,
                     SENSITIVE, STORE, STORE_WIDTHS, TRAP, Decoded, Insn, decode)
from vmm.machine.memory import PhysicalMemory

MAX_BLOCK = 32
MAX_REMEMBERED = 1 << 16       # decoded words, and a translator's blocks by content, kept at most
MAX_COMPILED = 1 << 13         # compiled blocks kept for the process (COMPILED), a few KiB each
M32 = 0xFFFFFFFF
SIGN = 0x80000000
BIG = 1 << 64      # the length of a marker: larger than any budget, so the run loop stops at it
EXIT_HYPERCALL = 0x40   # cause handed to CPU.vm_exit for `hypercall` (not an exception code)
GUEST_EXIT = 0x10000    # a Trap cause GUEST_EXIT | VMEXIT_*: a VM exit in guest mode (no real cause has bit 16)


class Trap(Exception):
    """A guest exception raised while running a block.

    `cause` the cause value, `badaddr` the address for causes that set it
    (else None), `pc` the faulting instruction, `tick` the tick it started at
    (so tick - block start = instructions retired before it), `lookups` the
    TLB translations the faulting instruction made, `fetch` whether the
    instruction fetch itself failed."""

    def __init__(self, cause: int, badaddr: int | None, pc: int, tick: int, lookups: int,
                 fetch: bool = False):
        # (no super().__init__: BaseException.__new__ has set args already; one is raised per exit)
        self.cause, self.badaddr, self.pc, self.tick = cause, badaddr, pc, tick
        self.lookups, self.fetch = lookups, fetch


class BlockExit(Exception):
    """Leave the block early after a completed instruction (device access,
    code-page write): continue at `pc`, `tick` = the tick after it."""

    def __init__(self, pc: int, tick: int):
        super().__init__(pc, tick)
        self.pc, self.tick = pc, tick


class Exited(Exception):
    """Leave the block after a VM exit the CPU took in place (a store's page
    fault under a VMM, CPU._exit_in_place) when the block cannot go on: the
    run loop continues from the pc and ticks the VMM left; `tick` the tick
    the store started at, `lookups` the TLB translations it made."""

    def __init__(self, tick: int, lookups: int):
        # (no super().__init__, as Trap)
        self.tick, self.lookups = tick, lookups


class Context(NamedTuple):
    """What a translation depends on besides the code: the mode, paging and
    guest mode of the virtualization extension (a tuple: it keys the block
    caches, and hashes at C speed)."""
    user: bool
    paging: bool
    guest: bool = False

    @property
    def fetch_lookups(self) -> int:
        """TLB translations per instruction fetch."""
        return 1 if self.paging else 0


@dataclass
class Block:
    """A translated block.  `make(V, *cells)` builds its function: `fn(T)`
    runs it and returns the successor (see the module doc); `n`
    instructions; `lookups` TLB translations when it completes; `prefix[i]`
    the translations of its first i instructions; `ends` whether it may
    change the mode, paging, IE or the CPU state (its exits are STOP
    markers); `cell_targets` the successor pc of each chain cell, in the
    function's closure order; `words` the instruction words."""
    make: Callable[..., Callable[[int], tuple]]
    n: int
    lookups: int
    prefix: tuple[int, ...]
    ends: bool
    cell_targets: tuple[int, ...]
    words: tuple[int, ...]
    source: str

    def retired_lookups(self, retired: int) -> int:
        """The translations of the first `retired` instructions run from the
        block's start (more than n for a block that looped on itself)."""
        rounds, rest = divmod(retired, self.n)
        return rounds * self.lookups + self.prefix[rest]


# --- templates: one per mnemonic, each returns lines of Python -----------------

DECODED: dict[int, "Decoded | None"] = {}     # isa.decode of every word translated so far
COMPILED: dict[tuple, tuple] = {}   # (va, ctx, single, words) -> (code, Block without make), for every CPU


def decoded_word(word: int) -> "Decoded | None":
    """isa.decode(word), remembered (a translation asks several times per word)."""
    found = DECODED.get(word, DECODED)
    if found is DECODED:
        if len(DECODED) >= MAX_REMEMBERED:
            DECODED.clear()
        found = DECODED[word] = decode(word)
    return found


def reg(n: int) -> str:
    """The expression reading register n: the block's local copy (r0 folds to 0)."""
    return f"r{n}" if n else "0"


def put(rd: int, expr: str) -> list[str]:
    """The statement writing `expr` to rd's local copy; nothing for r0."""
    return [f"r{rd} = {expr}"] if rd else []


def leave(target: str) -> str:
    """The block's exit to the pc `target` (an expression), as a placeholder
    the block compiler turns into the successor (see Translator._exit)."""
    return f"@{target}@"


def u32(value: int) -> str:
    """A 32-bit constant as a hex literal (negative values wrap)."""
    return hex(value & M32)


def trap(cause: int, badaddr: str, at: "Site", translated: int = 0) -> str:
    """A raise statement for an exception at this instruction."""
    return (f"raise Trap({cause}, {badaddr}, {hex(at.pc)}, T + {at.index}, "
            f"{at.ctx.fetch_lookups + translated})")


@dataclass(frozen=True)
class Site:
    """Where an instruction is translated: its pc, index in the block, context and word."""
    pc: int
    index: int
    ctx: Context
    word: int

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
    # LD wrote R[rd]: the local copy follows
    return lines + ["if o is None:", f"    {slow}", f"    r{rd} = R[{rd}]", "else:", f"    r{rd} = {fast}"]


def translate_store(insn: Insn, op: dict, at: Site) -> list[str]:
    """Fast path through WR (RAM pages without code), else the CPU's ST."""
    width = STORE_WIDTHS[insn.mnemonic]
    fast = RAW_WRITES[width]
    value = reg(op["rs2"])
    return ([effective_address(op)] + alignment_check(width, at) + [
        "o = WR.get(a >> 12)",
        "if o is None:",
        f"    ST(a, {width}, {value}, {hex(at.pc)}, T + {at.index}, {hex(at.word)})",
        "else:",
        "    " + fast.format(v=value)])


def translate_control(insn: Insn, op: dict, at: Site) -> list[str]:
    """Branches, jal, jalr: the block's last instruction, ending in `return`."""
    name = insn.mnemonic
    if name in BRANCHES:
        cond = BRANCHES[name].format(a=reg(op["rs1"]), b=reg(op["rs2"]))
        return [f"if {cond}:", f"    return {leave(at.target(op['target']))}", f"return {leave(at.next)}"]
    if name == "jal":
        return put(op["rd"], at.next) + [f"return {leave(at.target(op['target']))}"]
    return ([f"t = ({reg(op['rs1'])} + {op['imm']}) & 0xFFFFFFFF",
             "if t & 3:", f"    {trap(EXC_MISALIGNED, 't', at)}"]
            + put(op["rd"], at.next) + [f"return {leave('t')}"])


def guest_exit_check(insn: Insn, op: dict, at: Site) -> list[str]:
    """In guest mode, the lines raising the VM exit the instruction makes
    if the VMCS controls say so (asm.arch.guest_exit_reason, asked through
    the CPU's GX at run time); nothing outside guest mode."""
    if not at.ctx.guest:
        return []
    return [f"x = GX({insn.mnemonic!r}, {op.get('cr')})", "if x:",
            f"    raise Trap(x, None, {hex(at.pc)}, T + {at.index}, {at.ctx.fetch_lookups})"]


def translate_system(insn: Insn, op: dict, at: Site) -> list[str]:
    """Sensitive and privileged instructions (privilege already checked),
    after the guest-mode exit check (every one of them may exit)."""
    return guest_exit_check(insn, op, at) + _system(insn, op, at)


def _system(insn: Insn, op: dict, at: Site) -> list[str]:
    """translate_system's lines for the instruction itself."""
    name = insn.mnemonic
    if name == "vmenter":
        call = f"VMENTER({reg(op['rs1'])}, {hex(at.pc)}, T + {at.index}, {at.ctx.fetch_lookups})"
        return [f"return {leave(call)}"]
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
        "rfe": [f"return {leave('RFE()')}"],
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
    decoded = decoded_word(word)
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
    decoded = decoded_word(word)
    return decoded is None or bool(decoded.insn.flags & {BRANCH, TRAP, PRIVILEGED, SENSITIVE})


def jumps_to(word: int, pc: int, target: int) -> bool:
    """Whether the instruction `word` at `pc` is a branch or jal to `target`."""
    decoded = decoded_word(word)
    return (decoded is not None and decoded.insn.mnemonic in (*BRANCHES, "jal")
            and (pc + 4 * decoded.operands["target"]) & M32 == target)


def changes_context(word: int) -> bool:
    """Whether the instruction may change the mode, paging, IE or CPU state."""
    decoded = decoded_word(word)
    return decoded is not None and bool(decoded.insn.flags & {PRIVILEGED, SENSITIVE})


def lookups_of(word: int, ctx: Context) -> int:
    """TLB translations the instruction makes when it retires."""
    if not ctx.paging:
        return 0
    decoded = decoded_word(word)
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
# names bound to locals (as default arguments) in a block function that uses them
BOUND = ("R", "ram", "CR", "RD", "WR", "LD", "ST", "U32", "U16", "P32", "P16", "Trap", "V")
BOUND_NAME = re.compile(r"\b(" + "|".join(BOUND) + r")\b")
EXIT = re.compile(r"@([^@]+)@")  # a leave() placeholder
LEAVING = ("raise ", "LD(", "ST(")        # lines before which the registers are written back


def registers_of(word: int, ctx: Context) -> tuple[set[int], set[int]]:
    """(registers read, registers written) by the instruction `word`; none for
    one that only raises (undefined, or privileged in user mode)."""
    decoded = decoded_word(word)
    if decoded is None or (decoded.insn.has(PRIVILEGED) and ctx.user):
        return set(), set()
    op = decoded.operands
    reads = {op[role] for role in ("rs1", "rs2") if role in op} - {0}
    return reads, {op["rd"]} - {0} if "rd" in op else set()


def write_back(registers: set[int]) -> str:
    """The statement storing the local copies of `registers` into R ('' for none)."""
    return "; ".join(f"R[{n}] = r{n}" for n in sorted(registers))


class Translator:
    """Translates and caches blocks for one CPU.  `hooks` maps the names the
    templates call (R, CR, LD, ST, WSTATUS, WPTB, RFE, HALT, WFI, FLUSH, INV)
    to the CPU's objects; `fast_read` / `fast_write` are the MMU's tables
    indexed by user.  Calls `on_new_code_page(ppn)` when a page starts
    holding translated code, and `on_invalidate(ppn)` after dropping the
    blocks of a written page."""

    def __init__(self, memory: PhysicalMemory, hooks: dict, fast_read, fast_write,
                 on_new_code_page: Callable[[int], None], on_invalidate: Callable[[int], None]):
        self.memory = memory
        self._namespaces = [dict(BASE_NAMESPACE, ram=memory.ram, RD=fast_read[user],
                                 WR=fast_write[user], **hooks) for user in (0, 1)]
        self._blocks: dict[tuple, Block] = {}
        self._by_page: dict[int, list[tuple]] = {}
        self._by_content: dict[tuple, Block] = {}       # (va, ctx, single, words) -> Block
        self._on_new_code_page = on_new_code_page
        self._on_invalidate = on_invalidate
        memory.code_write_listeners.append(self.invalidate_page)

    def block(self, va: int, pa: int, ctx: Context, single: bool) -> Block:
        """The block at virtual `va` (physical `pa`, in RAM, 4-aligned) for
        `ctx`; one instruction long if `single`.  Cached until its page is written."""
        key = (va, pa, ctx, single)
        found = self._blocks.get(key)
        if found is None:
            words = self._words(pa, single)
            found = self._by_content.get((va, ctx, single, words))
            if found is None:
                found = self._instantiate(va, words, ctx, single)
            ppn = pa >> PAGE_SHIFT
            if ppn not in self.memory.code_pages:
                self.memory.code_pages.add(ppn)
                self._on_new_code_page(ppn)
            self._blocks[key] = found
            self._by_page.setdefault(ppn, []).append(key)
        return found

    def invalidate_page(self, ppn: int) -> None:
        """Drop every block translated from physical page `ppn`."""
        for key in self._by_page.pop(ppn, ()):
            self._blocks.pop(key, None)
        self._on_invalidate(ppn)

    def _instantiate(self, va: int, words: tuple[int, ...], ctx: Context, single: bool) -> Block:
        """The Block of these words at `va`, its `make` bound to this CPU: from
        the process's compiled blocks (COMPILED) when another CPU translated
        the same words at the same address before, else translated now."""
        content = (va, ctx, single, words)
        compiled = COMPILED.get(content)
        if compiled is None:
            if len(COMPILED) >= MAX_COMPILED:
                COMPILED.clear()
            compiled = COMPILED[content] = self._translate(va, words, ctx, single)
        code, prototype = compiled
        namespace = self._namespaces[ctx.user]
        exec(code, namespace)
        if len(self._by_content) >= MAX_REMEMBERED:
            self._by_content.clear()
        block = self._by_content[content] = replace(prototype, make=namespace.pop("make"))
        return block

    def _words(self, pa: int, single: bool) -> tuple[int, ...]:
        """The block's instruction words from `pa` (see module doc for where it ends)."""
        page_end = (pa | PAGE_MASK) + 1
        words = []
        for address in range(pa, min(page_end, pa + 4 * (1 if single else MAX_BLOCK)), 4):
            word = int.from_bytes(self.memory.ram[address:address + 4], "little")
            words.append(word)
            if ends_block(word):
                break
        return tuple(words)

    def _translate(self, va: int, words: tuple[int, ...], ctx: Context, single: bool) -> tuple:
        """Generate, compile and wrap the block at `va` (module doc): registers
        are loaded into locals first; every line that leaves the block
        (raise, return) or calls the CPU's slow path (LD, ST) is preceded by
        the write-back of the locals assigned so far.  A block whose last
        instruction jumps back to its start loops in its function while
        another round fits before U.  The result depends only on the
        arguments, so blocks of equal words at equal addresses share it.
        Returns (the code defining `make`, the Block with make None)."""
        ends = changes_context(words[-1])
        looping = not single and not ends and jumps_to(words[-1], va + 4 * (len(words) - 1), va)
        prefix = [0]
        for word in words:
            prefix.append(prefix[-1] + lookups_of(word, ctx))
        shape = Shape(va, len(words), prefix[-1], single, ends, looping, {})
        body: list[str] = []
        loaded, written = set(), set()
        effects = [registers_of(word, ctx) for word in words]
        every_write = set().union(*(writes for _, writes in effects))
        for index, (word, (reads, writes)) in enumerate(zip(words, effects)):
            loaded |= reads - written
            before, after = (every_write, every_write) if looping else (set(written), written | writes)
            body.append(f"# {va + 4 * index:#010x}: {word:#010x}")
            for line in translate_insn(word, Site(va + 4 * index, index, ctx, word)):
                body += self._line(line, before, after, shape)
            written |= writes
        if not body[-1].startswith(("return", "raise")):
            body += self._line(f"return {leave(u32(va + 4 * len(words)))}", written, written, shape)
        if looping:
            loaded |= every_write
            body = ["T0 = T", f"L = U - {2 * len(words)}", "while True:"] + [f"    {line}" for line in body]
        body = [f"r{n} = R[{n}]" for n in sorted(loaded)] + body
        return self._compile(body, shape, tuple(prefix), words)

    @staticmethod
    def _compile(body: list[str], shape: "Shape", prefix: tuple[int, ...], words: tuple[int, ...]) -> tuple:
        """Compile the block's lines: (the code defining its `make`, the Block
        with make None; module doc)."""
        text = "".join(f"        {line}\n" for line in body)
        bound = sorted(set(BOUND_NAME.findall(text)), key=BOUND.index)
        params = "".join(f", {name}={name}" for name in bound)
        names = sorted(shape.cells.values())
        source = (f"def make(V{''.join(', ' + name for name in names)}):\n"
                  f"    def block(T, U{params}):\n{text}    return block\n")
        code = compile(source, f"<block {shape.va:#010x}>", "exec")
        probe = dict.fromkeys(BOUND)
        exec(code, probe)
        order = probe["make"](None, *[None] * len(names)).__code__.co_freevars
        by_name = {name: target for target, name in shape.cells.items()}
        return code, Block(None, shape.n, shape.lookups, prefix, shape.ends,
                           tuple(by_name[name] for name in order), words, source)

    def _line(self, line: str, before: set[int], after: set[int], shape: "Shape") -> list[str]:
        """`line` as compiled: a return becomes the block's exit (with the
        round of a looping block); a raise or slow-path call gets the
        write-back of `before` first, a return that of `after`."""
        text = line.lstrip()
        indent = line[:len(line) - len(text)]
        if not text.startswith("return "):
            return ([indent + write_back(before)] if before and text.startswith(LEAVING) else []) + [line]
        target = EXIT.fullmatch(text[len("return "):]).group(1)
        lines = []
        if shape.looping and target == u32(shape.va):
            lines += [f"{indent}if T <= L:", f"{indent}    T += {shape.n}", f"{indent}    continue"]
        if after:
            lines.append(indent + write_back(after))
        successor = self._exit(target, shape)
        if shape.looping:
            successor = (f"{successor} if T == T0 else (None, {BIG:#x}, 0, "
                         f"(T - T0, (T - T0) // {shape.n} * {shape.lookups}, {successor}))")
        return lines + [f"{indent}return {successor}"]

    @staticmethod
    def _exit(target: str, shape: "Shape") -> str:
        """The successor expression for an exit to `target` (see module doc):
        a STOP marker after a block that may change the context, a chain
        cell for a known pc on the block's own page, else the lookup of
        `target` among the context's blocks or a LOOKUP marker."""
        if shape.ends:
            return f"(False, {BIG:#x}, 0, {target})"
        if (not shape.single and target.startswith("0x")
                and int(target, 16) >> PAGE_SHIFT == shape.va >> PAGE_SHIFT):
            return shape.cells.setdefault(int(target, 16), f"S{len(shape.cells)}")
        return f"(V.get({target}) or (None, {BIG:#x}, 0, {target}))"


@dataclass
class Shape:
    """What compiling a block's exits needs: its start, length, lookups,
    kind, and the chain cells named so far (successor pc -> cell name)."""
    va: int
    n: int
    lookups: int
    single: bool
    ends: bool
    looping: bool
    cells: dict[int, str]

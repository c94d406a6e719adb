"""The assembler directives: one handler per directive, called by the
lowerer (asm/lower.py) as handler(lowerer, unit, statement).

Each handler checks its operands, raises LowerError (or ExprError) for bad
ones, and appends IR items to the current section or updates the symbol
table.  .macro/.endm and the conditionals are handled by the lowerer itself
(they decide which statements are lowered at all); CONDITIONALS names them.
"""

from __future__ import annotations

from asm.diagnostics import decode_utf8, printable
from asm.files import read_limited
from asm.ir import (MAX_NESTING, MAX_SECTION_SIZE, SECTION_KINDS, Align, Bytes, Data, LowerError, Space,
                    SymbolInfo)
from asm.isa import REG_NUMBERS
from asm.lines import SECTION as LINE_SECTION
from asm.objfile import (
    MAX_ALIGN, SHT_NOBITS, STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_FUNC, STT_OBJECT,
)

CONDITIONALS = frozenset({".if", ".ifdef", ".ifndef", ".else", ".endif"})
DATA_WIDTHS = {".word": 4, ".half": 2, ".byte": 1}
BINDINGS = {".globl": STB_GLOBAL, ".global": STB_GLOBAL, ".local": STB_LOCAL, ".weak": STB_WEAK}
SYMBOL_TYPES = {"function": STT_FUNC, "object": STT_OBJECT}


# --- operand helpers -----------------------------------------------------------------------------

def count(st, low: int, high: int | None = None) -> None:
    """Raise unless `st` has between `low` and `high` (default: low) operands."""
    high = low if high is None else high
    if not low <= len(st.operands) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise LowerError(f"{st.name} takes {wanted} operand{'s' * (high != 1)}, got {len(st.operands)}")


def symbol_name(st, op) -> str:
    """A symbol-name operand (a plain name that is not a register)."""
    if type(op) is not str or op == ".":
        raise LowerError(f"{st.name} needs a symbol name, got {describe(op)}")
    if op in REG_NUMBERS:
        raise LowerError(f"{st.name}: '{op}' is a register name, not a symbol")
    return op


def string(st, op) -> bytes:
    """A string-literal operand's bytes."""
    if type(op) is not tuple or op[0] != "str":
        raise LowerError(f"{st.name} needs a string in double quotes, got {describe(op)}")
    return op[1]


def describe(op) -> str:
    """An operand as a short phrase for messages."""
    if type(op) in (int, str):
        return f"'{op}'"
    return {"mem": "a memory operand", "str": "a string", "attr": "an @attribute",
            "kw": "a keyword argument"}.get(op[0], "an expression")


def expression(st, op):
    """An expression operand (not a string, memory operand or attribute)."""
    if type(op) is tuple and op[0] in ("mem", "str", "attr", "kw"):
        raise LowerError(f"{st.name} needs an expression, got {describe(op)}")
    return op


def holds_data(lw, st) -> None:
    """Raise if the current section is NOBITS (it can only grow by .space/.align)."""
    if lw.section.sh_type == SHT_NOBITS:
        raise LowerError(f"{st.name} in section '{lw.section.name}', which holds no data "
                         "(use .space)")


# --- sections --------------------------------------------------------------------------------------

def standard_section(lw, unit, st) -> None:
    """.text .data .rodata .bss"""
    count(st, 0)
    lw.switch(st.name)


def section(lw, unit, st) -> None:
    """.section NAME[, "flags"[, @progbits|@nobits|@note]]"""
    count(st, 1, 3)
    name = st.operands[0]
    if type(name) is not str or name in REG_NUMBERS:
        raise LowerError(f".section needs a section name, got {describe(name)}")
    flags = string(st, st.operands[1]).decode() if len(st.operands) > 1 else None
    kind = None
    if len(st.operands) > 2:
        kind = st.operands[2][1] if type(st.operands[2]) is tuple and st.operands[2][0] == "attr" else None
        if kind not in SECTION_KINDS:
            raise LowerError(".section type must be @progbits, @nobits or @note")
    if name == LINE_SECTION:
        raise LowerError(f"section '{name}' is the line table kite-as writes; it cannot be written to")
    lw.switch(name, flags, kind)


# --- symbols ----------------------------------------------------------------------------------------

def symbol_info(lw, name: str) -> SymbolInfo:
    """The SymbolInfo of `name`, created as "extern" if it is new."""
    info = lw.symbols.get(name)
    if info is None:
        info = lw.symbols[name] = SymbolInfo(name, "extern")
    return info


def binding(lw, unit, st) -> None:
    """.globl/.global/.local/.weak NAME[, NAME...]"""
    if not st.operands:
        raise LowerError(f"{st.name} needs at least one symbol name")
    for op in st.operands:
        symbol_info(lw, symbol_name(st, op)).binding = BINDINGS[st.name]


def equ(lw, unit, st) -> None:
    """.equ/.set NAME, expr: a constant now if possible, else evaluated at encode time."""
    count(st, 2)
    name = symbol_name(st, st.operands[0])
    redefinable = st.name == ".set"
    lw.check_new(name, redefinable=redefinable)
    value_expr = lw.resolve_locals(lw.anchor_dot(expression(st, st.operands[1])))
    value = lw.try_constant(value_expr)
    info = symbol_info(lw, name)
    info.kind, info.section, info.redefinable = "equ", None, redefinable
    info.value, info.expr = value, (None if value is not None else value_expr)
    info.src = (unit, st.line, st.name_col)


def symbol_type(lw, unit, st) -> None:
    """.type NAME, @function|@object"""
    count(st, 2)
    name = symbol_name(st, st.operands[0])
    op = st.operands[1]
    kind = op[1] if type(op) is tuple and op[0] == "attr" else None
    if kind not in SYMBOL_TYPES:
        raise LowerError(".type needs @function or @object")
    symbol_info(lw, name).sym_type = SYMBOL_TYPES[kind]


def size(lw, unit, st) -> None:
    """.size NAME, expr (evaluated at encode time, so `. - NAME` works)."""
    count(st, 2)
    info = symbol_info(lw, symbol_name(st, st.operands[0]))
    info.size_expr = lw.resolve_locals(lw.anchor_dot(expression(st, st.operands[1])))
    info.size_src = (unit, st.line, st.name_col)


# --- data -----------------------------------------------------------------------------------------

def data(lw, unit, st) -> None:
    """.word/.half/.byte expr, ...  (values resolved at encode time)"""
    if not st.operands:
        raise LowerError(f"{st.name} needs at least one value")
    holds_data(lw, st)
    exprs = [lw.resolve_locals(expression(st, op)) for op in st.operands]
    lw.items.append(Data(DATA_WIDTHS[st.name], exprs, (unit, st.line, st.name_col)))


def ascii_(lw, unit, st) -> None:
    """.ascii/.asciz "text", ...  (.asciz adds a NUL after each string)"""
    if not st.operands:
        raise LowerError(f"{st.name} needs at least one string")
    holds_data(lw, st)
    end = b"\0" if st.name == ".asciz" else b""
    data = b"".join(string(st, op) + end for op in st.operands)
    lw.items.append(Bytes(data, (unit, st.line, st.name_col)))


def space(lw, unit, st) -> None:
    """.space N[, fill]: N bytes of fill (default 0)."""
    count(st, 1, 2)
    length = lw.constant(expression(st, st.operands[0]))
    if not 0 <= length <= MAX_SECTION_SIZE:
        raise LowerError(f".space size {length} out of range [0, {MAX_SECTION_SIZE}]")
    fill = lw.constant(expression(st, st.operands[1])) if len(st.operands) > 1 else 0
    if not -128 <= fill <= 255:
        raise LowerError(f".space fill {fill} out of range [-128, 255]")
    if fill and lw.section.sh_type == SHT_NOBITS:
        raise LowerError(f".space fill must be 0 in section '{lw.section.name}', which holds no data")
    lw.items.append(Space(length, fill & 0xFF, (unit, st.line, st.name_col)))


def align(lw, unit, st) -> None:
    """.align N (2^N bytes) and .balign N (N bytes, a power of two)."""
    count(st, 1)
    value = lw.constant(expression(st, st.operands[0]))
    if st.name == ".align":
        if not 0 <= value <= MAX_ALIGN.bit_length() - 1:
            raise LowerError(f".align {value} out of range [0, {MAX_ALIGN.bit_length() - 1}]")
        value = 1 << value
    elif not (0 < value <= MAX_ALIGN and value & (value - 1) == 0):
        raise LowerError(f".balign {value} is not a power of two in [1, {MAX_ALIGN}]")
    lw.section.sh_addralign = max(lw.section.sh_addralign, value)
    lw.items.append(Align(value, (unit, st.line, st.name_col)))


# --- files ------------------------------------------------------------------------------------------

def include(lw, unit, st) -> None:
    """.include "file": assemble the file's text here.  It counts toward the
    expansion limits of asm/ir.py (its text from its second inclusion on)."""
    from asm.lower import Unit
    count(st, 1)
    name = string(st, st.operands[0]).decode(errors="replace")
    path = lw.find_file(unit, name)
    if lw.depth >= MAX_NESTING:
        lw.abandon(unit, st, f".include nested too deeply (does '{printable(name)}' include itself?)")
    text = read_text(path, name)
    again = str(path.resolve()) in lw.included
    lw.included.add(str(path.resolve()))
    lw.charge(unit, st, len(text) if again else 0)
    lw.lower_text(Unit(str(path), text.split("\n")), text)


def read_text(path, name: str) -> str:
    """The text of an included file; LowerError if unreadable or not UTF-8."""
    text, problem = decode_utf8(read_file(path, name))
    if problem:
        line, col, message = problem
        raise LowerError(f"cannot include '{printable(name)}': {message} at line {line}, column {col}")
    return text


def read_file(path, name: str) -> bytes:
    """The bytes of the file `name` found at `path` (at most asm.files.MAX_INPUT_SIZE);
    LowerError if it cannot be read."""
    try:
        return read_limited(path)
    except OSError as error:
        raise LowerError(f"cannot read '{printable(name)}': {error.strerror}") from None


def incbin(lw, unit, st) -> None:
    """.incbin "file": the file's bytes, verbatim."""
    count(st, 1)
    holds_data(lw, st)
    name = string(st, st.operands[0]).decode(errors="replace")
    lw.items.append(Bytes(read_file(lw.find_file(unit, name), name), (unit, st.line, st.name_col)))


DIRECTIVES = {
    ".text": standard_section, ".data": standard_section, ".rodata": standard_section,
    ".bss": standard_section, ".section": section,
    ".globl": binding, ".global": binding, ".local": binding, ".weak": binding,
    ".word": data, ".half": data, ".byte": data, ".ascii": ascii_, ".asciz": ascii_,
    ".space": space, ".align": align, ".balign": align,
    ".equ": equ, ".set": equ, ".type": symbol_type, ".size": size,
    ".include": include, ".incbin": incbin,
}

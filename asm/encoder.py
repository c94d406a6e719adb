"""Stages 3 and 4: layout, encode (words + fixups), fixup resolution and the
ObjectFile.

    layout(program)                  -> Layout: item offsets, sizes checked; sets label values
    encode(program, layout)          -> Encoded: section bytes + fixups (unknown values as 0)
    resolve(program, encoded)        -> patches what the assembler can resolve,
                                        returns Relocations for the rest
    build_object(program, encoded, relocations, name) -> ObjectFile, with its line table
                                        (asm/lines.py) when it has instructions

A fixup is resolved here when its value is a constant, or a branch/jal
target in the same section; otherwise it becomes a Relocation against the
section's STT_SECTION symbol (local labels) or the symbol itself (global,
weak and undefined symbols).  Errors are collected as Diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asm import isa, lines
from asm import expr as X
from asm.diagnostics import Diagnostic
from asm.ir import (MAX_SECTION_SIZE, Align, Bytes, Data, Instr, Label, Program, Space, SymbolInfo,
                    is_internal)
from asm.objfile import (
    SHF_EXECINSTR, SHT_NOBITS, SHT_PROGBITS, STB_GLOBAL, STB_LOCAL, STB_WEAK, ObjectFile, Relocation, Section,
    Symbol,
)

ABS_SECTION = "*ABS*"
NOP_WORD = isa.encode(isa.BY_MNEMONIC["addi"], {"rd": 0, "rs1": 0, "imm": 0})
# what each data width holds, signed or unsigned (a .word holds every 32-bit value)
DATA_RANGES = {4: (-(1 << 31), (1 << 32) - 1), 2: (-(1 << 15), (1 << 16) - 1), 1: (-128, 255)}
DATA_RELOCS = {4: isa.R_KITE_32, 2: isa.R_KITE_16, 1: isa.R_KITE_8}
DATA_NAMES = {4: ".word", 2: ".half", 1: ".byte"}
BRANCH_RELOCS = {"B": isa.R_KITE_BRANCH18, "J": isa.R_KITE_JUMP22}


# --- layout ------------------------------------------------------------------------------------------

@dataclass
class Layout:
    """Offsets of every item in each section (parallel to SectionIR.items), section sizes, the
    sections too large to encode, and the errors saying so."""
    offsets: dict[str, list[int]]
    sizes: dict[str, int]
    too_large: set[str] = field(default_factory=set)
    errors: list[Diagnostic] = field(default_factory=list)


def layout(program: Program) -> Layout:
    """Assign each item its offset in its section and each label its value
    (SymbolInfo.value = offset).  A section may grow to MAX_SECTION_SIZE bytes,
    and the sections with contents to as much in all; the item that goes past
    is reported.  Assumes items are as lower made them."""
    out = Layout({}, {})
    contents = 0          # bytes of the sections with contents laid out so far
    for section in program.sections.values():
        room = MAX_SECTION_SIZE - (0 if section.sh_type == SHT_NOBITS else contents)
        places, pos, past = [], 0, None
        for item in section.items:
            places.append(pos)
            pos += item_size(item, pos, program.symbols)
            if pos > room and past is None:
                past = item
        out.offsets[section.name], out.sizes[section.name] = places, pos
        if past is not None:
            out.too_large.add(section.name)
            what = f"section '{section.name}'" if pos > MAX_SECTION_SIZE else "the sections with contents"
            out.errors.append(src_error(past.src, f"{what} would hold more than {MAX_SECTION_SIZE} bytes"))
        if section.sh_type != SHT_NOBITS:
            contents += pos
    return out


def item_size(item, pos: int, symbols: dict[str, SymbolInfo]) -> int:
    """The size of `item` placed at offset `pos`; a Label gets the value `pos`."""
    kind = type(item)
    if kind is Instr:
        return 4
    if kind is Label:
        symbols[item.name].value = pos
        return 0
    if kind is Data:
        return item.width * len(item.exprs)
    if kind is Bytes:
        return len(item.data)
    if kind is Space:
        return item.size
    return -pos % item.alignment


# --- encode ------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Fixup:
    """A value not known when encoding: `expr` for operand `role` of an
    Instr (or element `role` of a Data item) at byte `offset` of `section`;
    `pc` is the address of the statement (the value of `.`)."""
    section: str
    offset: int
    item: object
    role: object
    expr: object
    pc: int


@dataclass
class Encoded:
    """encode()'s output: section contents (empty for NOBITS), fixups, errors."""
    contents: dict[str, bytearray]
    fixups: list[Fixup] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)


def src_error(src, message: str) -> Diagnostic:
    """A Diagnostic at an item's source position (unit, line, col)."""
    unit, line, col = src
    return unit.diagnostic(line, col, message)


def encode(program: Program, places: Layout) -> Encoded:
    """Encode every section: instruction words, data and padding (nothing for a
    section too large).  Values still unknown are encoded as 0 with a Fixup."""
    out = Encoded({})
    for section in program.sections.values():
        if section.sh_type == SHT_NOBITS or section.name in places.too_large:
            out.contents[section.name] = bytearray()
            continue
        code = bool(section.sh_flags & SHF_EXECINSTR)
        chunks = []
        for item, offset in zip(section.items, places.offsets[section.name]):
            chunks.append(encode_item(section.name, code, item, offset, out))
        out.contents[section.name] = bytearray(b"".join(chunks))
    return out


def encode_item(section: str, code: bool, item, offset: int, out: Encoded) -> bytes:
    """The bytes of one item at `offset`; records fixups and errors in `out`."""
    kind = type(item)
    if kind is Instr:
        return encode_instr(section, item, offset, out)
    if kind is Data:
        return b"".join(encode_datum(section, item, index, expr, offset, out)
                        for index, expr in enumerate(item.exprs))
    if kind is Bytes:
        return item.data
    if kind is Space:
        return bytes([item.fill]) * item.size
    if kind is Align:
        pad = -offset % item.alignment
        if code and offset % 4 == 0:
            return NOP_WORD.to_bytes(4, "little") * (pad // 4)
        return bytes(pad)
    return b""


def encode_instr(section: str, item: Instr, offset: int, out: Encoded) -> bytes:
    """The word of one instruction; 0 in the expression field plus a Fixup if it is unknown."""
    if offset % 4:
        out.errors.append(src_error(item.src, f"instruction at offset {offset} of '{section}' "
                                              "is not a multiple of 4 (add .align 2)"))
        return bytes(4)
    operands = item.operands
    if item.xrole is not None:
        out.fixups.append(Fixup(section, offset, item, item.xrole, item.xexpr, offset))
        operands = dict(operands)
        operands[item.xrole] = 0
    try:
        return isa.encode(item.insn, operands).to_bytes(4, "little")
    except isa.EncodeError as error:
        out.errors.append(src_error(item.src, str(error)))
        return bytes(4)


def encode_datum(section: str, item: Data, index: int, expr, offset: int, out: Encoded) -> bytes:
    """One element of .word/.half/.byte: its bytes, or zeros plus a Fixup."""
    width = item.width
    if type(expr) is not int:
        out.fixups.append(Fixup(section, offset + index * width, item, index, expr, offset))
        return bytes(width)
    try:
        return datum_bytes(width, X.wrap32(expr))
    except X.ExprError as error:
        out.errors.append(src_error(item.src, str(error)))
        return bytes(width)


def datum_bytes(width: int, value: int) -> bytes:
    """The `width` little-endian bytes of a .word/.half/.byte value (a signed
    32-bit number, as expressions give); ExprError if it does not fit."""
    low, high = DATA_RANGES[width]
    if not low <= value <= high:
        raise X.ExprError(f"{DATA_NAMES[width]} value {value} out of range [{low}, {high}]")
    return (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


# --- resolve -------------------------------------------------------------------------------------------

class Unsettled(Exception):
    """An .equ symbol whose value is not known yet was needed (Resolver.equ)."""

    def __init__(self, info: SymbolInfo):
        super().__init__(info.name)
        self.info = info


class Resolver:
    """Evaluates fixup expressions with every label placed.  Symbol lookups
    see `.` as `self.pc` in `self.section`, and record referenced undefined
    symbols in `self.referenced`."""

    def __init__(self, program: Program):
        self.symbols = program.symbols
        self.pc, self.section = 0, None
        self.referenced: set[str] = set()
        self.equ_values: dict[str, X.Value] = {}

    def lookup(self, name: str) -> X.Value:
        info = self.symbols.get(name)
        if info is not None and info.kind == "equ":
            return self.equ(info)
        return self.settled(name)

    def settled(self, name: str) -> X.Value:
        """lookup() for .equ evaluation: raises Unsettled for an .equ symbol
        whose value is not known yet instead of evaluating it."""
        if name == ".":
            return X.Value(self.pc, self.section)
        info = self.symbols.get(name)
        if info is None or info.kind == "extern":
            return self.external(name, info)
        if info.kind == "label":
            exported = info.binding in (STB_GLOBAL, STB_WEAK)
            return X.Value(info.value, info.section, name if exported else None)
        if info.value is not None:
            return X.Value(info.value)
        if info.name not in self.equ_values:
            raise Unsettled(info)
        return self.equ_values[info.name]

    def external(self, name: str, info: SymbolInfo | None) -> X.Value:
        """The Value of a symbol not defined in this file."""
        if is_internal(name):
            number = name.split("$")[0]
            raise X.ExprError(f"no local label '{number}:' after '{number}f'")
        if info is None:
            info = self.symbols[name] = SymbolInfo(name, "extern")
        elif info.binding == STB_LOCAL:
            raise X.ExprError(f"undefined symbol '{name}' (declared .local)")
        self.referenced.add(name)
        return X.Value(0, None, name)

    def equ(self, info: SymbolInfo) -> X.Value:
        """The Value of an .equ/.set symbol, evaluated once.  The symbols it
        needs first are evaluated from a stack of their own, not by recursion,
        so a chain of forward .equ symbols may be of any length."""
        pending, names = [info], {info.name}
        while pending:
            top = pending[-1]
            if top.value is not None or top.name in self.equ_values:
                names.discard(pending.pop().name)
                continue
            try:
                value = X.evaluate(top.expr, self.settled)
            except Unsettled as needed:
                if needed.info.name in names:
                    raise X.ExprError(f"symbol '{needed.info.name}' is defined in terms of itself") \
                        from None
                pending.append(needed.info)
                names.add(needed.info.name)
                continue
            if value.symbol and value.section is None:
                raise X.NotConstant(value.symbol)
            self.equ_values[top.name] = value
        return self.settled(info.name)

    def evaluate(self, expr, pc: int, section: str | None) -> X.Value:
        self.pc, self.section = pc, section
        return X.evaluate(expr, self.lookup)

    def reloc_target(self, value: X.Value) -> tuple[str, int]:
        """(symbol, r_addend) for a relocation to `value`: the symbol itself
        when it is global, weak or undefined, else its section."""
        if value.symbol:
            info = self.symbols.get(value.symbol)
            base = info.value if info is not None and info.kind == "label" else 0
            return value.symbol, value.offset - base
        return value.section, value.offset


def resolve(program: Program, encoded: Encoded) -> tuple[list[Relocation], Resolver]:
    """Check deferred .equ values, then patch every fixup the assembler can
    resolve into encoded.contents; returns the Relocations for the others
    and the Resolver (which knows the referenced undefined symbols).
    Errors go to encoded.errors."""
    resolver = Resolver(program)
    for info in list(program.symbols.values()):
        if info.kind == "equ" and info.value is None:
            try:
                resolver.equ(info)
            except X.ExprError as error:
                encoded.errors.append(src_error(info.src, str(error)))
                info.value = 0
    relocations = []
    for fixup in encoded.fixups:
        item = fixup.item
        try:
            value = resolver.evaluate(fixup.expr, fixup.pc, fixup.section)
            if type(item) is Instr:
                reloc = resolve_instr(resolver, fixup, item, value, encoded.contents[fixup.section])
            else:
                reloc = resolve_datum(resolver, fixup, item, value, encoded.contents[fixup.section])
        except (X.ExprError, isa.EncodeError) as error:
            encoded.errors.append(src_error(item.src, str(error)))
            continue
        if reloc:
            relocations.append(reloc)
    return relocations, resolver


def resolve_instr(resolver: Resolver, fixup: Fixup, item: Instr, value: X.Value,
                  data: bytearray) -> Relocation | None:
    """Patch an instruction's expression field, or return its Relocation."""
    insn, role = item.insn, fixup.role
    if role == "target":
        if value.modifier:
            raise X.ExprError(f"a branch target cannot be %{value.modifier}(...)")
        if value.section == fixup.section and value.section is not None:
            number = branch_offset(value.offset - fixup.offset, isa.field_for(insn, "target"))
            return patch(data, fixup.offset, insn, item.operands, role, number)
        if value.is_const:
            raise X.ExprError(f"branch target {value.offset} is a number, not an address "
                              "(use a label or '.')")
        r_type = BRANCH_RELOCS[insn.fmt]
    elif value.is_const:
        return patch(data, fixup.offset, insn, item.operands, role, value.offset)
    elif value.modifier == "hi" and insn.fmt == "U":
        r_type = isa.R_KITE_HI20
    elif value.modifier == "lo" and insn.fmt in ("I", "S"):
        r_type = isa.R_KITE_LO12
    elif value.modifier:
        raise X.ExprError(f"%{value.modifier}(address) cannot be used with '{insn.mnemonic}'")
    else:
        raise X.ExprError(f"immediate must be a constant, not the address '{value.describe()}' "
                          "(use %hi()/%lo(), or la)")
    symbol, addend = resolver.reloc_target(value)
    return Relocation(fixup.section, fixup.offset, r_type, symbol, addend)


def branch_offset(displacement: int, target_field: isa.Field) -> int:
    """The word offset stored for a branch `displacement` bytes away;
    ExprError if it is not a multiple of 4 or does not fit."""
    if displacement % 4:
        raise X.ExprError(f"branch target offset {displacement} is not a multiple of 4")
    low, high = target_field.range()
    if not low <= displacement // 4 <= high:
        raise X.ExprError(f"branch target out of range: offset {displacement} bytes, "
                          f"must be within [{low * 4}, {high * 4}]")
    return displacement // 4


def patch(data: bytearray, offset: int, insn: isa.Insn, operands: dict, role: str, value: int) -> None:
    """Re-encode the instruction at `offset` with operand `role` = `value`."""
    word = isa.encode(insn, {**operands, role: value})
    data[offset:offset + 4] = word.to_bytes(4, "little")


def resolve_datum(resolver: Resolver, fixup: Fixup, item: Data, value: X.Value,
                  data: bytearray) -> Relocation | None:
    """Patch one .word/.half/.byte element, or return its Relocation."""
    width = item.width
    if value.modifier:
        raise X.ExprError(f"%{value.modifier}(address) cannot be used in {DATA_NAMES[width]}")
    if not value.is_const:
        symbol, addend = resolver.reloc_target(value)
        return Relocation(fixup.section, fixup.offset, DATA_RELOCS[width], symbol, addend)
    data[fixup.offset:fixup.offset + width] = datum_bytes(width, value.offset)
    return None


# --- the object ------------------------------------------------------------------------------------------

def build_object(program: Program, places: Layout, encoded: Encoded, relocations: list[Relocation],
                 resolver: Resolver, source_name: str) -> ObjectFile:
    """The ObjectFile: sections in creation order, the symbol table (labels,
    exported .equ symbols, undefined symbols that are referenced or declared
    global/weak; never numeric local labels) and the relocations."""
    sections = [Section(s.name, s.sh_type, s.sh_flags, s.sh_addralign, encoded.contents[s.name],
                        places.sizes[s.name] if s.sh_type == SHT_NOBITS else 0)
                for s in program.sections.values()]
    symbols = []
    for info in list(program.symbols.values()):
        symbol = make_symbol(info, resolver, encoded)
        if symbol is not None:
            symbols.append(symbol)
    rows = line_rows(program, places)
    if rows:
        sections.append(Section(lines.SECTION, SHT_PROGBITS, 0, 1,
                                bytearray(lines.write_line_table(source_name, rows))))
    return ObjectFile(sections, symbols, relocations, source_name)


def line_rows(program: Program, places: Layout) -> dict[str, tuple[list[lines.Row], int]]:
    """Section name -> (a Row for every instruction where file:line changes, in offset order,
    the offset past its last instruction); a macro expansion's instructions are at the line of
    its outermost invocation.  Sections without instructions are left out."""
    rows: dict[str, tuple[list[lines.Row], int]] = {}
    for section in program.sections.values():
        found, last, end = [], None, 0
        for item, offset in zip(section.items, places.offsets[section.name]):
            if type(item) is Instr:
                end = offset + 4
                unit, line, _ = item.src
                if unit.origin:
                    unit, line, _, _ = unit.outermost(line, 0)
                if (unit.filename, line) != last:
                    last = (unit.filename, line)
                    found.append(lines.Row(offset, lines.SourceLine(*last)))
        if found:
            rows[section.name] = found, end
    return rows


def make_symbol(info: SymbolInfo, resolver: Resolver, encoded: Encoded) -> Symbol | None:
    """The Symbol for `info`, or None if it does not go into the object."""
    if is_internal(info.name):
        return None
    binding = STB_LOCAL if info.binding is None else info.binding
    size = symbol_size(info, resolver, encoded)
    if info.kind == "label":
        return Symbol(info.name, info.value, info.section, binding, info.sym_type, size)
    if info.kind == "equ":
        if binding == STB_LOCAL:
            return None
        value = resolver.equ(info)
        return Symbol(info.name, value.offset, value.section or ABS_SECTION, binding, info.sym_type, size)
    if info.name in resolver.referenced or binding in (STB_GLOBAL, STB_WEAK):
        return Symbol(info.name, 0, None, STB_WEAK if binding == STB_WEAK else STB_GLOBAL,
                      info.sym_type, size)
    return None


def symbol_size(info: SymbolInfo, resolver: Resolver, encoded: Encoded) -> int:
    """The value of the symbol's .size expression (0 if none)."""
    if info.size_expr is None:
        return 0
    try:
        value = resolver.evaluate(info.size_expr, 0, None)
        if not value.is_const or value.offset < 0:
            raise X.ExprError(f".size of '{info.name}' must be a non-negative constant")
        return value.offset
    except X.ExprError as error:
        encoded.errors.append(src_error(info.size_src, str(error)))
        return 0

"""Stage 2, lower: Statements -> IR items per section, plus the symbol table.

Lowering handles everything that depends on source order: sections,
labels (numeric local labels get unique internal names), conditionals,
macros (textual substitution, then parse + lower of the expansion),
.include/.incbin, .equ/.set, and pseudo-instruction expansion.  It decides
every item's size, so layout (asm/encoder.py) never has to iterate.

A macro expansion or an included file is a Unit lowered from a stack of
Frames, not by recursion, and every one counts toward the limits of
asm/ir.py; past one, the expansions in progress are abandoned.

Errors are collected as Diagnostics; a bad statement is dropped and lowering
goes on with the next one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from asm import isa
from asm import expr as X
from asm.diagnostics import Diagnostic, printable, source_line
from asm.directives import CONDITIONALS, DIRECTIVES, describe
from asm.objfile import (
    SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_PROGBITS, STANDARD_SECTIONS,
)
from asm.ir import (MAX_EXPANDED_TEXT, MAX_EXPANSIONS, MAX_NESTING, SECTION_KINDS, Instr, Label,
                    LowerError, Program, SectionIR, Src, SymbolInfo)
from asm.parser import MACRO_LINE, Statement, parse, split_operands

# --- Units: where statements come from ------------------------------------------------------------


@dataclass(eq=False)
class Unit:
    """A text being lowered: a file, or a macro expansion whose errors are
    reported at the invocation (`origin` = (unit, line, col, macro name))."""
    filename: str
    lines: list[str]
    origin: tuple | None = None

    def diagnostic(self, line: int, col: int, message: str) -> Diagnostic:
        """An error at `line`, `col` of this text; in a macro expansion, at the
        line of the file that used the (outermost) macro, with the macros named:
        "(in expansion of macro 'inc', from macro 'twice')"."""
        unit, line, col, names = self.outermost(line, col)
        if names:
            message = f"{message} (in expansion of macro {expansion_chain(names)})"
        return Diagnostic(unit.filename, line, col, message, source_line(unit.lines, line))

    def outermost(self, line: int, col: int) -> tuple[Unit, int, int, list[str]]:
        """(the file's unit, line, col) that `line`, `col` of this text stands for (in a macro
        expansion: the outermost invocation), and the macros in between, innermost first."""
        unit, names = self, []
        while unit.origin:
            unit, line, col, name = unit.origin
            names.append(name)
        return unit, line, col, names

    @property
    def directory(self) -> Path | None:
        """Directory of the file this text comes from, if it is a file."""
        if self.origin:
            return self.origin[0].directory
        return None if self.filename.startswith("<") else Path(self.filename).resolve().parent


def expansion_chain(names: list[str]) -> str:
    """Macro names, innermost first, for a message: "'inc', from macro 'twice'";
    a macro nested in itself shows once with its depth: "'m' (64 levels)"."""
    runs: list[list] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return ", from macro ".join(f"'{name}'" + (f" ({levels} levels)" if levels > 1 else "")
                                for name, levels in runs)


class ExpansionAbandoned(Exception):
    """A limit on macro expansion or .include (see asm/ir.py) was hit and
    reported; lowering abandons every expansion in progress and goes on
    after the statement of the source file that started them."""


# --- Operand specifications ----------------------------------------------------------------------

REG, CR, EXPR, MEM = "reg", "cr", "expr", "mem"


def operand_specs(syntax: str) -> tuple[tuple, ...]:
    """The operands of an Insn.syntax string as (kind, role...) tuples:
    "rd, imm(rs1)" -> ((REG, "rd"), (MEM, "imm", "rs1"))."""
    specs = []
    for part in filter(None, (p.strip() for p in syntax.split(","))):
        if "(" in part:
            imm, base = part.rstrip(")").split("(")
            specs.append((MEM, imm, base))
        elif part in ("rd", "rs", "rs1", "rs2"):
            specs.append((REG, part))
        elif part == "cr":
            specs.append((CR, part))
        else:
            specs.append((EXPR, part))
    return tuple(specs)


INSN_SPECS = {insn.mnemonic: (insn, operand_specs(insn.syntax)) for insn in isa.INSTRUCTIONS}

# pseudo-instruction -> operand syntax (see docs/assembler.md for the expansions): the
# one-instruction ones are isa.ALIASES, the others are expanded by Lowerer.expand_pseudo
ALIAS_BY_NAME = {alias.mnemonic: alias for alias in isa.ALIASES}
PSEUDO_SYNTAX = {"li": "rd, imm", "la": "rd, imm", "push": "rs", "pop": "rd",
                 **{alias.mnemonic: alias.syntax for alias in isa.ALIASES}}
PSEUDO_SPECS = {name: operand_specs(syntax) for name, syntax in PSEUDO_SYNTAX.items()}
# what an unknown mnemonic may have meant
MNEMONICS = sorted([*INSN_SPECS, *PSEUDO_SPECS])

_IDENT = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*$")
# in a macro body: `\name` (a parameter), `\()` (nothing) and `\\` (kept as it is)
_MACRO_REF = re.compile(r"\\([A-Za-z_][A-Za-z0-9_]*|\(\)|\\)")
_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*+"|\'(?:[^\'\\\n]|\\.)*+\'')
_KEYWORD_ARG = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)(.*)$", re.S)


# --- The lowerer ---------------------------------------------------------------------------------


@dataclass
class Frame:
    """A unit being lowered: its statements (the next one at `next`) and its
    open conditionals, each [enclosing active, this branch active, seen .else,
    statement]."""
    unit: Unit
    statements: list[Statement]
    next: int = 0
    conds: list[list] = field(default_factory=list)
    active: bool = True


@dataclass
class Macro:
    """A macro: parameter names with default texts (None: required) and body lines."""
    name: str
    params: list[tuple[str, str | None]]
    body: list[str]
    unit: Unit


class Lowerer:
    """Lowers units into one Program; see lower()."""

    def __init__(self, defines: dict[str, int], include_dirs: list[str]):
        self.sections: dict[str, SectionIR] = {}
        self.symbols: dict[str, SymbolInfo] = {}
        self.macros: dict[str, Macro] = {}
        self.errors: list[Diagnostic] = []
        self.include_dirs = [Path(d) for d in include_dirs]
        self.local_counts: dict[str, int] = {}
        self.anchor_count = 0
        self.frames: list[Frame] = []   # the source file's, then one per expansion in progress
        self.expansions = 0          # macro expansions and included files so far
        self.expanded_text = 0       # characters of text they made
        self.included: set[str] = set()      # the resolved paths of the files included so far
        for name, value in defines.items():
            self.symbols[name] = SymbolInfo(name, "equ", value=X.wrap32(value), redefinable=True)
        self.switch(".text")

    # -- sections

    def switch(self, name: str, flags: str | None = None, kind: str | None = None) -> None:
        """Make `name` the current section, creating it on first use."""
        section = self.sections.get(name)
        if section is None:
            sh_type, sh_flags, align = section_attributes(name, flags, kind)
            section = self.sections[name] = SectionIR(name, sh_type, sh_flags, align)
        self.section = section
        self.items = section.items

    # -- units

    @property
    def depth(self) -> int:
        """How many macro expansions and included files the current statement is inside."""
        return len(self.frames) - 1

    def lower_unit(self, unit: Unit, statements: list[Statement]) -> None:
        """Lower every statement of the source file `unit` and of the
        expansions they make.  An expansion (lower_text) pushes a Frame that is
        lowered before the rest of the one below, so nesting costs no
        recursion; an abandoned expansion drops every frame above the file's."""
        self.frames.append(Frame(unit, statements))
        while self.frames:
            frame = self.frames[-1]
            if frame.next == len(frame.statements):
                self.close(self.frames.pop())
                continue
            frame.next += 1
            try:
                self.step(frame, frame.statements[frame.next - 1])
            except ExpansionAbandoned:
                del self.frames[1:]

    def step(self, frame: Frame, st: Statement) -> None:
        """Lower one statement of `frame`: a conditional, or (in a branch
        taken) a macro definition or any other statement."""
        if st.name in CONDITIONALS:
            frame.active = self.conditional(frame.unit, st, frame.conds, frame.active)
        elif not frame.active:
            return
        elif st.name == ".macro":
            self.define_macro(frame.unit, st)
        else:
            self.statement(frame.unit, st)

    def close(self, frame: Frame) -> None:
        """Report the conditionals `frame` left open at its end."""
        for cond in frame.conds:
            st = cond[3]
            self.errors.append(frame.unit.diagnostic(st.line, st.name_col,
                                                     f"unterminated {st.name} (missing .endif)"))

    def statement(self, unit: Unit, st: Statement) -> None:
        """Lower one active statement, reporting (not raising) its errors."""
        try:
            for label, col in st.labels:
                self.define_label(unit, st, label, col)
            if st.name is not None:
                self.dispatch(unit, st)
        except (LowerError, X.ExprError) as error:
            col = getattr(error, "col", None) or st.name_col
            self.errors.append(unit.diagnostic(st.line, col, str(error)))

    def dispatch(self, unit: Unit, st: Statement) -> None:
        """Lower the named part of a statement (directive, macro, pseudo or instruction)."""
        name = st.name
        if name in self.macros:
            self.expand_macro(unit, st, self.macros[name])
            return
        if name not in INSN_SPECS and name not in PSEUDO_SPECS and not name.startswith("."):
            name = name.lower()       # mnemonics are case-insensitive, as in GNU as
        if name in INSN_SPECS:
            insn, specs = INSN_SPECS[name]
            values, xrole, xexpr = self.operands(unit, st, specs)
            self.emit(insn, values, xrole, xexpr, (unit, st.line, st.name_col))
        elif name in PSEUDO_SPECS:
            values, _, xexpr = self.operands(unit, st, PSEUDO_SPECS[name])
            for mnemonic, ops, xrole, x in self.expand_pseudo(name, values, xexpr):
                self.emit(isa.BY_MNEMONIC[mnemonic], ops, xrole, x, (unit, st.line, st.name_col))
        elif name in DIRECTIVES:
            DIRECTIVES[name](self, unit, st)
        elif name == ".endm":
            raise LowerError(".endm without .macro")
        elif name.startswith("."):
            known = [*DIRECTIVES, *CONDITIONALS, ".macro", ".endm"]
            raise LowerError(f"unknown directive '{name}'{suggestion(name, known)}")
        else:
            known = MNEMONICS + sorted(self.macros)
            raise LowerError(f"unknown mnemonic '{st.name}'{suggestion(name, known)}")

    def emit(self, insn: isa.Insn, values: dict, xrole, xexpr, src: Src) -> None:
        """Append an instruction; a constant expression operand is folded in."""
        if self.section.sh_type == SHT_NOBITS:
            raise LowerError(f"instruction in section '{self.section.name}', which holds no data")
        if xrole is not None:
            xexpr = self.resolve_locals(xexpr)
            if type(xexpr) is int and xrole != "target":
                values[xrole] = X.wrap32(xexpr)
                xrole = xexpr = None
        self.items.append(Instr(insn, values, xrole, xexpr, src))

    # -- operands

    def operands(self, unit: Unit, st: Statement, specs: tuple) -> tuple[dict, str | None, object]:
        """Check a statement's operands against `specs`; returns (register and
        control-register numbers by role, the expression role or None, its expression)."""
        ops = st.operands
        if len(ops) != len(specs):
            wanted = ", ".join(spec_text(s) for s in specs) or "no operands"
            raise LowerError(f"'{st.name}' takes {len(specs)} operand{'s' * (len(specs) != 1)} "
                             f"({wanted}), got {len(ops)}")
        values, xrole, xexpr = {}, None, None
        for position, (spec, op) in enumerate(zip(specs, ops)):
            kind = spec[0]
            if kind == REG:
                values[spec[1]] = self.register(unit, st, position, op)
            elif kind == EXPR:
                xrole, xexpr = spec[1], self.expression(unit, st, position, op)
            elif kind == CR:
                number = isa.CR_NUMBERS.get(op) if type(op) is str else None
                if number is None:
                    self.bad_operand(unit, st, position, op, "a control register ("
                                     + ", ".join(isa.CR_NAMES) + ")")
                values[spec[1]] = number
            else:
                xrole, xexpr = spec[1], self.memory(unit, st, position, op, spec, values)
        return values, xrole, xexpr

    def register(self, unit: Unit, st: Statement, position: int, op) -> int:
        """The number of a register operand."""
        number = isa.REG_NUMBERS.get(op) if type(op) is str else None
        if number is None:
            self.bad_operand(unit, st, position, op, "a register")
        return number

    def expression(self, unit: Unit, st: Statement, position: int, op):
        """An expression operand (not a register, string or memory operand)."""
        if type(op) is int:
            return op
        if (type(op) is str and op in isa.REG_NUMBERS) or \
                (type(op) is tuple and op[0] in ("mem", "str", "attr", "kw")):
            self.bad_operand(unit, st, position, op, "an expression")
        return op

    def memory(self, unit: Unit, st: Statement, position: int, op, spec, values) -> object:
        """A memory operand `imm(base)` or `(base)`; stores the base register
        in `values` and returns the offset expression."""
        if type(op) is tuple and op[0] == "paren":
            op = ("mem", 0, op[1])
        if type(op) is not tuple or op[0] != "mem":
            self.bad_operand(unit, st, position, op, "a memory operand like 8(sp)")
        values[spec[2]] = self.register(unit, st, position, op[2])
        return op[1]

    def bad_operand(self, unit: Unit, st: Statement, position: int, op, wanted: str):
        """Raise a LowerError saying operand `position` should be `wanted`."""
        col, text = operand_position(unit, st, position)
        shown = f"'{text}'" if text else describe(op)
        raise LowerError(f"operand {position + 1} of '{st.name}' must be {wanted}, got {shown}", col)

    # -- pseudo-instructions

    def expand_pseudo(self, name: str, v: dict, x) -> list[tuple]:
        """The instructions a pseudo-instruction stands for, as
        (mnemonic, register operands, expression role, expression)."""
        if name in ALIAS_BY_NAME:
            return [expand_alias(ALIAS_BY_NAME[name], v, x)]
        if name == "li":
            return self.expand_li(v["rd"], x)
        if name == "la":
            return hi_lo(v["rd"], x)
        if name == "push":
            return [("addi", {"rd": isa.REG_SP, "rs1": isa.REG_SP, "imm": -4}, None, None),
                    ("sw", {"rs2": v["rs"], "rs1": isa.REG_SP, "imm": 0}, None, None)]
        return [("lw", {"rd": v["rd"], "rs1": isa.REG_SP, "imm": 0}, None, None),
                ("addi", {"rd": isa.REG_SP, "rs1": isa.REG_SP, "imm": 4}, None, None)]

    def expand_li(self, rd: int, x) -> list[tuple]:
        """`li rd, x`: one addi or lui when x is a constant known here that
        allows it, otherwise lui %hi + ori %lo."""
        x = self.resolve_locals(x)
        value = self.try_constant(x)
        if value is not None:
            low, high = isa.IMM18.range()
            if low <= value <= high:
                return [("addi", {"rd": rd, "rs1": 0, "imm": value}, None, None)]
            if value & 0xFFF == 0:
                return [("lui", {"rd": rd, "imm": (value & 0xFFFFFFFF) >> 12}, None, None)]
        return hi_lo(rd, x)

    # -- constants known during lowering

    def constant_lookup(self, name: str) -> X.Value:
        """Symbol lookup for constants known at this point: .equ/.set/-D values."""
        info = self.symbols.get(name)
        if info is None or info.kind != "equ" or info.value is None:
            if info is not None and info.kind == "label":
                raise X.ExprError(f"'{name}' is an address, not a constant known here")
            raise X.NotConstant(name)
        return X.Value(info.value)

    def constant(self, expr) -> int:
        """The value of `expr`, which must be a constant known at this point."""
        value = X.evaluate(self.resolve_locals(expr), self.constant_lookup)
        if not value.is_const or value.modifier:
            raise X.ExprError(f"expression must be a constant, not the address '{value.describe()}'")
        return value.offset

    def try_constant(self, expr) -> int | None:
        """constant(expr), or None if it is not one yet."""
        if type(expr) is int:
            return X.wrap32(expr)
        try:
            return self.constant(expr)
        except X.ExprError:
            return None

    # -- labels and numeric local labels

    def define_label(self, unit: Unit, st: Statement, name: str, col: int) -> None:
        """Define `name` at the current position of the current section."""
        if name[0].isdigit():
            count = self.local_counts.get(name, 0) + 1
            self.local_counts[name] = count
            name = f"{name}${count}"
        else:
            self.check_new(name, col)
        info = self.symbols.get(name)
        if info is None:
            info = self.symbols[name] = SymbolInfo(name, "label")
        info.kind, info.section, info.src = "label", self.section.name, (unit, st.line, col)
        self.items.append(Label(name))

    def check_new(self, name: str, col: int | None = None, redefinable: bool = False) -> None:
        """Raise a duplicate-symbol error if `name` is already defined
        (a .set symbol may be set again with .set)."""
        info = self.symbols.get(name)
        if info is None or info.kind == "extern":
            return
        if redefinable and info.kind == "equ" and info.redefinable:
            return
        where = ""
        if info.src:
            unit, line, _ = info.src
            where = f" (first defined at {unit.filename}:{line})"
        elif info.kind == "equ":
            where = " (defined with -D)"
        raise LowerError(f"duplicate symbol '{name}'{where}", col)

    def resolve_locals(self, expr):
        """`expr` with `1b`/`1f` references replaced by internal label names."""
        if type(expr) is not tuple:
            return expr
        return X.fold(expr, self.local_name, X.rebuild)

    def local_name(self, leaf):
        """The internal label name of a `1b`/`1f` reference; any other leaf unchanged."""
        if type(leaf) is not tuple or leaf[0] != "local":
            return leaf
        _, number, direction = leaf
        count = self.local_counts.get(number, 0)
        if direction == "b":
            if count == 0:
                raise X.ExprError(f"no local label '{number}:' before '{number}b'")
            return f"{number}${count}"
        return f"{number}${count + 1}"

    def anchor_dot(self, expr):
        """`expr` with `.` replaced by a label placed here, for expressions
        evaluated later (.equ, .size) that must see this position."""
        if not mentions(expr, "."):
            return expr
        self.anchor_count += 1
        name = f".:{self.anchor_count}"
        self.symbols[name] = SymbolInfo(name, "label", self.section.name)
        self.items.append(Label(name))
        return substitute(expr, ".", name)

    # -- conditionals

    def conditional(self, unit: Unit, st: Statement, conds: list, active: bool) -> bool:
        """Handle .if/.ifdef/.ifndef/.else/.endif; returns the new active state."""
        try:
            if st.name in (".if", ".ifdef", ".ifndef"):
                conds.append([active, False, False, st])
                conds[-1][1] = active and self.condition(st)
                return conds[-1][1]
            if not conds:
                raise LowerError(f"{st.name} without .if")
            frame = conds[-1]
            if st.name == ".endif":
                conds.pop()
                return frame[0]
            if frame[2]:
                raise LowerError(".else after .else")
            frame[1:3] = [frame[0] and not frame[1], True]
            return frame[1]
        except (LowerError, X.ExprError) as error:
            self.errors.append(unit.diagnostic(st.line, st.name_col, str(error)))
            return False if st.name in (".if", ".ifdef", ".ifndef") else active

    def condition(self, st: Statement) -> bool:
        """Whether an .if/.ifdef/.ifndef statement's block is taken."""
        if st.name == ".if":
            if len(st.operands) != 1:
                raise LowerError(".if takes one expression")
            return self.constant(st.operands[0]) != 0
        if len(st.operands) != 1 or type(st.operands[0]) is not str:
            raise LowerError(f"{st.name} takes one symbol name")
        info = self.symbols.get(st.operands[0])
        defined = info is not None and info.kind != "extern"
        return defined if st.name == ".ifdef" else not defined

    # -- macros

    def define_macro(self, unit: Unit, st: Statement) -> None:
        """Record the macro that the .macro statement `st` defines (its body
        was set aside by the parser)."""
        if st.body is None:
            self.errors.append(unit.diagnostic(st.line, st.name_col,
                                               f"missing .endm for macro '{st.operands[0]}'"))
            return
        try:
            macro = Macro(st.operands[0], macro_params(unit, st), st.body, unit)
            self.check_body(unit, st.line, macro)
            self.macros[macro.name] = macro
        except LowerError as error:
            self.errors.append(unit.diagnostic(st.line, error.col or st.name_col, str(error)))

    def check_body(self, unit: Unit, line: int, macro: Macro) -> None:
        """Report `\\name` outside string and character literals in the body
        that names no parameter (of this macro or of one defined in its body)."""
        names = {name for name, _ in macro.params} | nested_params(macro.body)
        for offset, text in enumerate(macro.body, start=line + 1):
            for match in _MACRO_REF.finditer(outside_literals(text)):
                if match.group(1) not in ("()", "\\") and match.group(1) not in names:
                    self.errors.append(unit.diagnostic(
                        offset, match.start() + 1,
                        f"unknown macro argument '\\{match.group(1)}' in macro '{macro.name}'"))

    def expand_macro(self, unit: Unit, st: Statement, macro: Macro) -> None:
        """Substitute the arguments of `st` into `macro`'s body, then parse and
        lower it; abandons the expansion past the limits of asm/ir.py."""
        if self.depth >= MAX_NESTING:
            self.abandon(unit, st, f"macro expansion nested too deeply (is '{macro.name}' recursive?)")
        values = macro_arguments(unit, st, macro)
        text = substitute_arguments(macro.body, values, MAX_EXPANDED_TEXT - self.expanded_text)
        self.charge(unit, st, MAX_EXPANDED_TEXT + 1 if text is None else len(text))
        expansion = Unit(macro.unit.filename, text.split("\n"), (unit, st.line, st.name_col, macro.name))
        self.lower_text(expansion, text)

    def charge(self, unit: Unit, st: Statement, size: int) -> None:
        """Count one expansion (a macro use or an included file, used by `st`)
        of `size` characters.  Past MAX_EXPANSIONS or MAX_EXPANDED_TEXT in all,
        report that (the first time only) and abandon the expansion."""
        already_over = self.expansions > MAX_EXPANSIONS or self.expanded_text > MAX_EXPANDED_TEXT
        self.expansions += 1
        self.expanded_text += size
        if already_over:
            raise ExpansionAbandoned
        if self.expansions > MAX_EXPANSIONS:
            self.abandon(unit, st, f"more than {MAX_EXPANSIONS} macro expansions and included files "
                                   "in one assembly (is a macro recursive?)")
        if self.expanded_text > MAX_EXPANDED_TEXT:
            self.abandon(unit, st, f"macro expansions and included files make more than "
                                   f"{MAX_EXPANDED_TEXT} characters of text in one assembly")

    def abandon(self, unit: Unit, st: Statement, message: str) -> None:
        """Report `message` at `st` and abandon the expansion (ExpansionAbandoned)."""
        self.errors.append(unit.diagnostic(st.line, st.name_col, message))
        raise ExpansionAbandoned

    def lower_text(self, unit: Unit, text: str) -> None:
        """Parse `text` (the whole of `unit`) and lower it next, one level deeper."""
        statements, errors = parse(text, unit.filename)
        self.errors += [unit.diagnostic(e.line, e.col, e.message) for e in errors]
        self.frames.append(Frame(unit, statements))

    # -- files

    def find_file(self, unit: Unit, name: str) -> Path:
        """The file `name` names: relative to the including file's directory,
        then each -I directory.  Raises LowerError naming the file if none."""
        path = Path(name)
        bases = ([unit.directory] if unit.directory else [Path.cwd()]) + self.include_dirs
        candidates = [path] if path.is_absolute() else [base / path for base in bases]
        for candidate in candidates:
            try:
                if candidate.is_file():
                    return candidate
            except OSError as error:      # a name too long for the system, for one
                raise LowerError(f"cannot read '{printable(name)}': {error.strerror}") from None
        raise LowerError(f"cannot find file '{printable(name)}' (searched: "
                         + ", ".join(str(c.parent) for c in candidates) + ")")


def expand_alias(alias: isa.Alias, v: dict, x) -> tuple:
    """The instruction an isa.Alias stands for, as (mnemonic, register and fixed operands,
    expression role or None, its expression), from the alias's register operands `v` and its
    expression operand `x`."""
    ops, xrole = {}, None
    for role, source in alias.operands.items():
        if type(source) is int:
            ops[role] = source
        elif source in v:
            ops[role] = v[source]
        else:
            xrole = role
    return alias.real, ops, xrole, x if xrole else None


def suggestion(name: str, candidates) -> str:
    """` (did you mean 'add'?)` for the candidate closest to `name`, or "" if none is close."""
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def hi_lo(rd: int, x) -> list[tuple]:
    """`lui rd, %hi(x); ori rd, rd, %lo(x)`."""
    return [("lui", {"rd": rd}, "imm", ("hi", x)), ("ori", {"rd": rd, "rs1": rd}, "imm", ("lo", x))]


def spec_text(spec: tuple) -> str:
    """An operand spec as written in the syntax: "imm(rs1)", "rd"."""
    return f"{spec[1]}({spec[2]})" if spec[0] == MEM else spec[1]


def operand_position(unit: Unit, st: Statement, position: int) -> tuple[int | None, str]:
    """(column, text) of operand `position` of `st`, read from the source line."""
    line = source_line(unit.lines, st.line)
    start = st.name_col - 1 + len(st.name)
    parts = split_operands(line[start:])
    if position >= len(parts):
        return None, ""
    offset, text = parts[position]
    return start + offset + 1, text


def mentions(expr, name: str) -> bool:
    """Whether the expression tree `expr` uses the symbol `name`."""
    return X.fold(expr, lambda leaf: leaf == name, lambda tree, parts: any(parts))


def substitute(expr, name: str, replacement: str):
    """`expr` with the symbol `name` replaced by `replacement`."""
    return X.fold(expr, lambda leaf: replacement if leaf == name else leaf, X.rebuild)


def outside_literals(text: str) -> str:
    """`text` with string and character literals blanked and any comment cut."""
    return _LITERAL.sub(lambda m: " " * len(m.group(0)), text).split("#")[0]


def substitute_arguments(body: list[str], values: dict[str, str], room: int) -> str | None:
    """The text of a macro body with `\\name` replaced by the argument of the
    parameter `name` anywhere in a line (in literals too; other names are
    left as they are), `\\()` by nothing and `\\\\` kept; None if it would be
    longer than `room` characters (it is then not built)."""
    text = "\n".join(body)
    pieces, size, start = [], 0, 0
    for match in _MACRO_REF.finditer(text):
        reference = match.group(1)
        replacement = "" if reference == "()" else values.get(reference, match.group(0))
        pieces += [text[start:match.start()], replacement]
        size += match.start() - start + len(replacement)
        if size > room:
            return None
        start = match.end()
    pieces.append(text[start:])
    return None if size + len(text) - start > room else "".join(pieces)


def nested_params(body: list[str]) -> set[str]:
    """The parameter names of the macros defined inside a macro body (a
    .macro line there that does not lex names none: it is reported when the
    body is expanded)."""
    from lark.exceptions import UnexpectedInput
    names = set()
    for line in body:
        nested = MACRO_LINE.match(outside_literals(line))
        if nested and nested.group(1) == "macro":
            try:
                names |= {text.partition("=")[0].strip() for _, text in split_operands(nested.group(3))}
            except UnexpectedInput:
                continue
    return names


def macro_params(unit: Unit, st: Statement) -> list[tuple[str, str | None]]:
    """The parameters written on a .macro line: (name, default text or None)."""
    line = source_line(unit.lines, st.line)
    rest = line[st.name_col - 1 + len(".macro"):].lstrip()
    rest = rest[len(st.operands[0]):]
    params = []
    for offset, text in split_operands(rest):
        name, _, default = text.partition("=")
        name = name.strip()
        if not _IDENT.match(name) or any(name == seen for seen, _ in params):
            raise LowerError(f"bad macro parameter '{text}'")
        params.append((name, default.strip() if "=" in text else None))
    return params


def macro_arguments(unit: Unit, st: Statement, macro: Macro) -> dict[str, str]:
    """Parameter name -> argument text for an invocation of `macro`, from
    positional and name=value arguments and the defaults."""
    line = source_line(unit.lines, st.line)
    args = split_operands(line[st.name_col - 1 + len(st.name):])
    names = [name for name, _ in macro.params]
    values: dict[str, str] = {}
    for position, (_, text) in enumerate(args):
        keyword = _KEYWORD_ARG.match(text)
        if keyword:
            name, text = keyword.group(1), keyword.group(2).strip()
            if name not in names:
                raise LowerError(f"macro '{macro.name}' has no argument '{name}'")
        elif position >= len(names):
            raise LowerError(f"macro '{macro.name}' takes {len(names)} argument"
                             f"{'s' * (len(names) != 1)}, got {len(args)}")
        else:
            name = names[position]
        values[name] = text
    for name, default in macro.params:
        if name not in values:
            if default is None:
                raise LowerError(f"macro '{macro.name}': missing value for argument '{name}'")
            values[name] = default
    return values


def section_attributes(name: str, flags: str | None, kind: str | None) -> tuple[int, int, int]:
    """(sh_type, sh_flags, sh_addralign) of a section: the standard ones by
    name (and `.text.foo` like `.text`), others from the flags string
    ("a" alloc, "w" write, "x" exec) and kind (a SECTION_KINDS key)."""
    base = name if name in STANDARD_SECTIONS else "." + name.split(".")[1] if name.count(".") > 1 else None
    sh_type, sh_flags, align = STANDARD_SECTIONS.get(base, (SHT_PROGBITS, SHF_ALLOC, 1))
    if flags is not None:
        unknown = set(flags) - set("awx")
        if unknown:
            raise LowerError(f"unknown section flag '{sorted(unknown)[0]}' (use a, w, x)")
        sh_flags = ((SHF_ALLOC if "a" in flags else 0) | (SHF_WRITE if "w" in flags else 0)
                    | (SHF_EXECINSTR if "x" in flags else 0))
    if kind is not None:
        sh_type = SECTION_KINDS[kind]
    if sh_flags & SHF_EXECINSTR:
        align = max(align, 4)
    return sh_type, sh_flags, align


def lower(statements: list[Statement], text: str, filename: str = "<input>",
          defines: dict[str, int] | None = None,
          include_dirs=()) -> tuple[Program, list[Diagnostic]]:
    """Lower parsed `statements` of `text` (from `filename`); returns the
    Program and the errors found (the Program leaves out bad statements)."""
    lowerer = Lowerer(dict(defines or {}), list(include_dirs))
    lowerer.lower_unit(Unit(filename, text.split("\n")), statements)
    return Program(lowerer.sections, lowerer.symbols), lowerer.errors

"""Stage 1, parse: source text -> Statements with line and column.

The Lark grammar lives in grammar.lark next to this module.  The parser is
LALR with the contextual lexer and builds no tree: the Transformer below runs
inside the parser and produces Statements directly, with expressions in the
plain form described in asm/expr.py.  Lark is imported on first use so that
`kite-as --version` does not pay for it.

A macro body is text, not statements, until the macro is used (its lines may
hold `\\param` anywhere, even as the mnemonic): split_macro_bodies takes each
body out before parsing and parse() hands it over with its .macro statement.

A file with a syntax error is parsed again line by line (the grammar has no
construct spanning lines), so every bad line is reported, not just the first.
The same property lets a text be parsed one distinct line at a time (a
repeated line costs nothing more), and a text met again in the process (an
included file, a macro expansion) is not parsed again.

The grammar's terminals are the one tokenizer: split_operands uses lark's
lexer on them to find operand and macro-argument boundaries.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from asm import expr as X
from asm.diagnostics import Diagnostic, source_line

GRAMMAR_FILE = Path(__file__).with_name("grammar.lark")

# how syntax errors name the grammar's terminals
TERMINAL_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "CHAR": "a character literal",
    "STRING": "a string", "ATTR": "an @attribute", "MACROARG": "a macro argument",
    "PERCENT": "%hi/%lo", "BINOP": "an operator", "_NL": "end of line", "$END": "end of file",
    "MACRO": ".macro", "COMMA": "','", "COLON": "':'", "LPAR": "'('", "RPAR": "')'",
    "EQUAL": "'='", "MINUS": "'-'", "PLUS": "'+'", "TILDE": "'~'",
}

# a line whose statement, after any labels, is .macro or .endm: (directive, name, parameters)
MACRO_LINE = re.compile(r"[ \t\f\r]*(?:[A-Za-z0-9_.$]+[ \t\f\r]*:[ \t\f\r]*)*\.(macro|endm)"
                        r"(?![A-Za-z0-9_.$])[ \t\f\r]*([^ \t\f\r,]*)(.*)")


@dataclass(slots=True)
class Statement:
    """One source line that holds something: its labels (name, col) in
    order, then an optional `name` (mnemonic, directive or macro, at
    `name_col`) with its operands.  Operands are expressions (asm/expr.py)
    or one of ("mem", offset_or_None, base), ("str", bytes), ("attr", word),
    ("kw", name, expr).  A .macro statement's `body` holds the lines up to its
    .endm (None: no .endm closes it)."""
    line: int
    labels: list[tuple[str, int]] = field(default_factory=list)
    name: str | None = None
    name_col: int = 1
    operands: list = field(default_factory=list)
    body: list[str] | None = None

    @property
    def col(self) -> int:
        """Column where the statement starts."""
        return self.labels[0][1] if self.labels else self.name_col


class LiteralError(X.ExprError):
    """A bad string or character literal, at token `token`."""

    def __init__(self, message: str, token):
        super().__init__(message)
        self.line, self.col = token.line, token.column


def _literal(function, token):
    """function(token), turning an ExprError into a LiteralError at `token`."""
    try:
        return function(token)
    except X.ExprError as error:
        raise LiteralError(str(error), token) from None


class _ToStatements:
    """Parser callbacks (used as a lark Transformer): one method per rule
    alias of grammar.lark; each returns the plain value for its rule."""

    def start(self, children):
        return children

    def statement(self, children):
        *labels, name, operands = children
        return Statement(name.line, [label[:2] for label in labels], str(name), name.column,
                         operands or [])

    def labels_only(self, labels):
        return Statement(labels[0][2], [label[:2] for label in labels])

    def macro_def(self, children):
        *labels, keyword, name, operands = children
        return Statement(keyword.line, [label[:2] for label in labels], ".macro",
                         keyword.column, [str(name)] + (operands or []))

    def label(self, children):
        token = children[0]
        return str(token), token.column, token.line

    local_label = label

    def operands(self, children):
        return children

    def mem(self, children):
        return ("mem", children[0], children[1])

    def string(self, children):
        return ("str", _literal(lambda t: X.unescape(t[1:-1]), children[0]))

    def attr(self, children):
        return ("attr", str(children[0])[1:])

    def keyword(self, children):
        return ("kw", str(children[0]), children[1])

    def expr(self, children):
        return X.build(children)

    def number(self, children):
        text = str(children[0])
        if text[-1] in "bf" and text[:-1].isdigit():
            return ("local", text[:-1], text[-1])
        return _literal(X.parse_number, children[0])

    def symbol(self, children):
        return str(children[0])

    def char(self, children):
        return _literal(X.char_value, children[0])

    def macro_arg(self, children):
        return ("marg", str(children[0])[1:])

    def neg(self, children):
        value = children[0]
        return -value if type(value) is int else ("neg", value)

    def invert(self, children):
        value = children[0]
        return ~value if type(value) is int else ("inv", value)

    def paren(self, children):
        return ("paren", children[0])

    def percent(self, children):
        return (str(children[0])[1:], children[1])


@functools.cache
def _parser():
    """The Lark parser with the callbacks built in (cached on disk by lark)."""
    from lark import Lark
    return Lark(GRAMMAR_FILE.read_text(), parser="lalr", lexer="contextual",
                transformer=_ToStatements(), cache=True, maybe_placeholders=True)


def parse(text: str, filename: str = "<input>") -> tuple[list[Statement], list[Diagnostic]]:
    """Parse a whole source text; returns (statements in line order, syntax
    errors).  Lines with syntax errors are left out of the statements; the
    lines of macro bodies are not parsed (see split_macro_bodies).  The
    statements are shared with every other parse of the same text (an
    included file, a macro expansion met again): nothing changes them."""
    key = (text, filename)
    found = PARSED.get(key)
    if found is None:
        if len(PARSED) >= MAX_PARSED:
            del PARSED[next(iter(PARSED))]
        found = PARSED[key] = _parse(text, filename)
    return list(found[0]), list(found[1])


PARSED: dict[tuple[str, str], tuple[list[Statement], list[Diagnostic]]] = {}   # (text, filename) -> parse
MAX_PARSED = 256


def _parse(text: str, filename: str) -> tuple[list[Statement], list[Diagnostic]]:
    """parse(), computed."""
    from lark.exceptions import UnexpectedInput
    lines, bodies = split_macro_bodies(text.split("\n"))
    try:
        statements, errors = _parse_distinct(lines), []
    except (UnexpectedInput, LiteralError):
        statements, errors = _parse_by_line(lines, filename)
    for statement in statements:
        if statement.name == ".macro":
            statement.body = bodies.get(statement.line)
    return statements, errors


def _parse_distinct(lines: list[str]) -> list[Statement]:
    """The statements of `lines`, each distinct line parsed once: no
    construct of the grammar spans lines, so a line parses the same wherever
    it is, and only its line number differs.  The copies of a statement share
    its labels and operands (nothing changes them after parsing).  Raises
    what the parser raises."""
    distinct = {line: number for number, line in enumerate(dict.fromkeys(lines), start=1)}
    parsed = {statement.line: statement for statement in _parser().parse("\n".join(distinct) + "\n")}
    statements = []
    for number, line in enumerate(lines, start=1):
        statement = parsed.get(distinct[line])
        if statement is not None:
            statements.append(Statement(number, statement.labels, statement.name, statement.name_col,
                                        statement.operands))
    return statements


def split_operands(text: str) -> list[tuple[int, str]]:
    """Split the operand text of a statement (what follows its name) at its
    top-level commas, with the grammar's own terminals (lark's lexer: string
    and character literals and comments as the parser sees them); returns
    (offset in text, text) per operand, [] if there is none.  Raises lark's
    UnexpectedCharacters for text that does not lex."""
    parts, depth, start, first, last = [], 0, 0, None, None
    for token in _parser().lex(text):
        if token.type == "COMMA" and depth == 0:
            parts.append(_operand_text(text, start, first, last))
            start, first = token.end_pos, None
            continue
        depth += {"LPAR": 1, "RPAR": -1}.get(token.type, 0)
        first, last = first or token, token
    if first is None and not parts:
        return []
    return parts + [_operand_text(text, start, first, last)]


def _operand_text(text: str, start: int, first, last) -> tuple[int, str]:
    """(offset, text) of the operand from tokens `first` to `last`; an empty
    one is where the text after `start` does."""
    if first is None:
        rest = text[start:]
        return start + len(rest) - len(rest.lstrip()), ""
    return first.start_pos, text[first.start_pos:last.end_pos]


def split_macro_bodies(lines: list[str]) -> tuple[list[str], dict[int, list[str] | None]]:
    """(`lines` with every macro body and the .endm closing it blanked, {line
    number of each outermost .macro: its body lines, or None if no .endm
    closes it}).  A definition nested in a body stays part of that body."""
    bodies: dict[int, list[str] | None] = {}
    opened, depth = 0, 0          # opened: line number of the open .macro, 0 if none
    for number, line in enumerate(lines, start=1):
        match = MACRO_LINE.match(line) if ".macro" in line or ".endm" in line else None
        kind = match.group(1) if match else None
        if not opened:
            opened, depth = (number, 0) if kind == "macro" else (0, 0)
        elif kind == "macro":
            depth += 1
        elif kind == "endm" and depth:
            depth -= 1
        elif kind == "endm":
            bodies[opened] = lines[opened:number - 1]
            opened = 0
    if opened:
        bodies[opened] = None
    if not bodies:
        return lines, bodies
    masked = list(lines)
    for start, body in bodies.items():
        end = len(lines) if body is None else start + len(body) + 1
        masked[start:end] = [""] * (end - start)
    return masked, bodies


def _parse_by_line(lines: list[str], filename: str) -> tuple[list[Statement], list[Diagnostic]]:
    """parse() for the lines of a text known to hold errors: each line on its own."""
    from lark.exceptions import UnexpectedInput
    statements, errors = [], []
    for number, line in enumerate(lines, start=1):
        try:
            parsed = _parser().parse(line + "\n")
        except (UnexpectedInput, LiteralError) as error:
            col = error.column if isinstance(error, UnexpectedInput) else error.col
            errors.append(Diagnostic(filename, number, max(col, 1), syntax_message(error),
                                     source_line(lines, number)))
            continue
        for statement in parsed:
            statement.line = number
        statements += parsed
    return statements, errors


def syntax_message(error) -> str:
    """A one-line description of a lark parse error or a LiteralError."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken
    if isinstance(error, LiteralError):
        return str(error)
    if isinstance(error, UnexpectedCharacters):
        char = error.char
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        return f"syntax error: unexpected character {shown}"
    if isinstance(error, UnexpectedToken):
        token = error.token
        found = TERMINAL_NAMES[token.type] if token.type in ("_NL", "$END") else f"'{token}'"
        expected = sorted({TERMINAL_NAMES.get(name, name) for name in error.expected})
        hint = f"; expected {' or '.join(expected)}" if len(expected) <= 4 else ""
        return f"syntax error: unexpected {found}{hint}"
    return "syntax error"

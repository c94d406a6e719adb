"""Assembler expressions: their tree form, literal decoding and evaluation.

The parser hands over expression trees made of plain Python values so the
common case stays cheap:

    int                      a number or character literal
    str                      a symbol name (registers are names too; asm/lower.py tells them apart)
    ("neg", e) ("inv", e)    unary minus, bitwise not
    ("paren", e)             parentheses (kept so `lw a0, (a1)` can be told from `lw a0, a1`)
    ("hi", e) ("lo", e)      %hi(e) = e >> 12 and %lo(e) = e & 0xFFF
    ("bin", op, a, b)        a binary operator: * / % + - << >> & ^ |
    ("local", "1", "b")      a numeric local label reference, `1b` / `1f`
    ("marg", "name")         `\\name` outside a macro body (always an error)

Every walk over a tree goes through `fold`, which keeps its own stack, so an
expression may be as long or as deeply nested as the input allows.

Evaluation gives a Value: a constant, or an address relative to a section or
an external symbol, optionally wrapped in %hi/%lo, which the encoder turns
into a relocation.  Every value is 32 bits: a number literal must fit in 32
bits (parse_number), results are wrapped to a signed 32-bit number, and `>>`
is a logical shift of the 32-bit pattern.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

# binding strength of each binary operator (C precedence)
PRECEDENCE = {"*": 10, "/": 10, "%": 10, "+": 9, "-": 9, "<<": 8, ">>": 8,
              "&": 7, "^": 6, "|": 5}

_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39,
            "a": 7, "b": 8, "f": 12, "v": 11, "e": 27}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.?)", re.S)

# the operator nodes: kind -> positions of their sub-expressions in the tuple
OPERANDS = {"bin": (2, 3), "neg": (1,), "inv": (1,), "paren": (1,), "hi": (1,), "lo": (1,)}


class ExprError(ValueError):
    """An expression cannot be evaluated; the message says why."""


class NotConstant(ExprError):
    """A constant was required but the expression uses `name`, which is not
    (yet) a known constant."""

    def __init__(self, name: str):
        super().__init__(f"undefined symbol '{name}'")
        self.name = name


class Value(NamedTuple):
    """The value of an expression: `offset` plus the address of `section`
    (a section defined in this file) or of `symbol` (a global, weak or
    undefined symbol the relocation must name), or neither for a constant.
    `modifier` is "hi" or "lo" when %hi/%lo was applied to an address."""
    offset: int
    section: str | None = None
    symbol: str | None = None
    modifier: str | None = None

    @property
    def is_const(self) -> bool:
        return self.section is None and self.symbol is None

    def describe(self) -> str:
        """The address part, for messages: a symbol or section name."""
        return self.symbol or self.section or str(self.offset)


def wrap32(value: int) -> int:
    """`value` reduced to 32 bits, as a signed number."""
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def parse_number(text: str) -> int:
    """The value of a NUMBER token (decimal, 0x hex, 0b binary); assumes it
    is not a local label reference like `1b`.  Raises ExprError for a number
    that does not fit in 32 bits (more than 0xFFFFFFFF), however long."""
    try:
        value = int(text, 0) if text[:2].lower() in ("0x", "0b") else int(text, 10)
    except ValueError:          # more decimal digits than Python converts
        value = None
    if value is None or value > 0xFFFFFFFF:
        shown = text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"
        raise ExprError(f"number {shown} does not fit in 32 bits (at most 0xFFFFFFFF)")
    return value


def unescape(body: str) -> bytes:
    """The bytes of a string or character literal body (quotes removed),
    with C escapes: \\n \\t \\r \\0 \\\\ \\" \\' \\a \\b \\f \\v \\e, \\xHH and \\ooo octal.
    Other characters are encoded as UTF-8.  Raises ExprError on a bad escape.
    Linear in the length of `body`."""
    if "\\" not in body:
        return body.encode()
    out, start = bytearray(), 0
    for match in _ESCAPE.finditer(body):
        out += body[start:match.start()].encode()
        out.append(_escape_byte(match.group(1)))
        start = match.end()
    out += body[start:].encode()
    return bytes(out)


def _escape_byte(escape: str) -> int:
    """The byte of the escape `escape` (what follows the backslash)."""
    if not escape:
        raise ExprError("a string cannot end with a backslash")
    if escape[0] == "x":
        if len(escape) == 1:
            raise ExprError("\\x needs hexadecimal digits")
        return int(escape[1:], 16)
    if escape[0] in "01234567":
        return int(escape, 8) & 0xFF
    if escape in _ESCAPES:
        return _ESCAPES[escape]
    raise ExprError(f"unknown escape sequence '\\{escape}'")


def char_value(token: str) -> int:
    """The value of a character literal token such as 'a' or '\\n'."""
    data = unescape(token[1:-1])
    text = token[1:-1]
    if len(text) == 1:
        return ord(text)
    if len(data) != 1:
        raise ExprError(f"character literal {token} must hold exactly one character")
    return data[0]


def build(children: list) -> object:
    """The tree of a flat operand list [a, op, b, op, c, ...] with C
    precedence, all operators left-associative (precedence climbing)."""
    tree, _ = _climb(children, 0, 0)
    return tree


def _climb(items: list, pos: int, min_prec: int) -> tuple[object, int]:
    """Parse items[pos:] while operators bind at least `min_prec`; returns
    (tree, position after it)."""
    left = items[pos]
    pos += 1
    while pos < len(items) and PRECEDENCE[str(items[pos])] >= min_prec:
        op = str(items[pos])
        right, pos = _climb(items, pos + 1, PRECEDENCE[op] + 1)
        left = ("bin", op, left, right)
    return left, pos


def fold(expr: object, leaf: Callable[[object], object],
         node: Callable[[tuple, list], object]) -> object:
    """`expr` reduced bottom-up: leaf(x) for every part that is not an operator
    node (a number, a name, ("local", ...), ("marg", ...), an operand tuple),
    node(tree, results of its sub-expressions) for every operator node
    (OPERANDS).  Leaves are visited left to right.  Uses its own stack, not
    recursion, so no expression is too deep."""
    results: list = []
    pending: list = [(expr, False)]
    while pending:
        tree, reduced = pending.pop()
        positions = OPERANDS.get(tree[0]) if type(tree) is tuple else None
        if positions is None:
            results.append(leaf(tree))
        elif reduced:
            parts = results[len(results) - len(positions):]
            del results[len(results) - len(positions):]
            results.append(node(tree, parts))
        else:
            pending.append((tree, True))
            pending.extend((tree[position], False) for position in reversed(positions))
    return results[0]


def rebuild(tree: tuple, parts: list) -> tuple:
    """The operator node `tree` with its sub-expressions replaced by `parts`
    (a `node` function for fold() that maps an expression to another)."""
    rebuilt = list(tree)
    for position, part in zip(OPERANDS[tree[0]], parts):
        rebuilt[position] = part
    return tuple(rebuilt)


Lookup = Callable[[str], Value]


def evaluate(expr: object, lookup: Lookup) -> Value:
    """The Value of `expr`; `lookup(name)` gives a symbol's Value (and raises
    NotConstant or ExprError if it cannot).  Raises ExprError for operations
    that are not defined on addresses, and for division by zero.  Numeric
    local labels must already be replaced by names (asm/lower.py does it)."""
    if type(expr) is int:
        return Value(wrap32(expr))
    if type(expr) is str:
        return lookup(expr)
    return fold(expr, lambda part: _leaf_value(part, lookup), _operation)


def _leaf_value(leaf: object, lookup: Lookup) -> Value:
    """The Value of a part of an expression that is not an operator."""
    if type(leaf) is int:
        return Value(wrap32(leaf))
    if type(leaf) is str:
        return lookup(leaf)
    if leaf[0] == "marg":
        raise ExprError(f"macro argument '\\{leaf[1]}' used outside a macro")
    shown = {"mem": "a memory operand", "str": "a string", "attr": "an @attribute",
             "kw": "a name=value argument"}.get(leaf[0], repr(leaf[0]))
    raise ExprError(f"expected an expression, got {shown}")


def _operation(tree: tuple, values: list[Value]) -> Value:
    """The Value of the operator node `tree` whose operands have `values`."""
    kind = tree[0]
    if kind == "bin":
        return _binary(tree[1], *values)
    if kind == "paren":
        return values[0]
    if kind in ("hi", "lo"):
        return _percent(kind, values[0])
    value = _const(values[0], "-" if kind == "neg" else "~")
    return Value(wrap32(-value if kind == "neg" else ~value))


def _percent(kind: str, value: Value) -> Value:
    """%hi / %lo of `value`: computed for a constant, kept as a modifier for
    an address (the encoder makes it a relocation)."""
    if value.modifier:
        raise ExprError(f"%{kind} cannot be applied to %{value.modifier}(...)")
    if not value.is_const:
        return value._replace(modifier=kind)
    pattern = value.offset & 0xFFFFFFFF
    return Value(pattern >> 12 if kind == "hi" else pattern & 0xFFF)


def _const(value: Value, op: str) -> int:
    """The constant in `value`; ExprError if it is an address."""
    if value.modifier:
        raise ExprError(f"%{value.modifier}(...) of an address must be the whole operand")
    if not value.is_const:
        raise ExprError(f"operator '{op}' cannot be applied to the address '{value.describe()}'")
    return value.offset


def _binary(op: str, a: Value, b: Value) -> Value:
    """`a op b`.  An address may be added to or have a constant subtracted,
    and two addresses in the same section subtract to a constant."""
    if op == "+" and not (a.is_const and b.is_const):
        if a.is_const:
            a, b = b, a
        return a._replace(offset=wrap32(a.offset + _const(b, "+")))
    if op == "-" and not a.is_const:
        if not b.is_const:
            return _difference(a, b)
        return a._replace(offset=wrap32(a.offset - _const(b, "-")))
    return Value(wrap32(_arith(op, _const(a, op), _const(b, op))))


def _difference(a: Value, b: Value) -> Value:
    """`a - b` for two addresses: a constant if both are in one section of this file."""
    if a.modifier or b.modifier:
        _const(a if a.modifier else b, "-")
    if a.section is None or a.section != b.section:
        raise ExprError(f"cannot subtract '{b.describe()}' from '{a.describe()}': "
                        "they are not in the same section of this file")
    return Value(wrap32(a.offset - b.offset))


def _arith(op: str, x: int, y: int) -> int:
    """`x op y` on constants, C semantics (division truncates toward zero)."""
    if op in "/%" and y == 0:
        raise ExprError("division by zero in expression")
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        return abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
    if op == "%":
        return x - _arith("/", x, y) * y
    if op == "<<":
        return x << y if 0 <= y < 32 else 0
    if op == ">>":
        return (x & 0xFFFFFFFF) >> y if 0 <= y < 32 else 0
    return {"&": x & y, "|": x | y, "^": x ^ y}[op]

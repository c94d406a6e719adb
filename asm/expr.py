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

Evaluation gives a Value: a constant, or an address relative to a section or
an external symbol, optionally wrapped in %hi/%lo, which the encoder turns
into a relocation.  Arithmetic is 32-bit: results are wrapped to a signed
32-bit number, and `>>` is a logical shift of the 32-bit pattern.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

# binding strength of each binary operator (C precedence)
PRECEDENCE = {"*": 10, "/": 10, "%": 10, "+": 9, "-": 9, "<<": 8, ">>": 8,
              "&": 7, "^": 6, "|": 5}

_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39,
            "a": 7, "b": 8, "f": 12, "v": 11, "e": 27}


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
    too long for Python to convert."""
    try:
        return int(text, 0) if text[:2].lower() in ("0x", "0b") else int(text, 10)
    except ValueError:
        raise ExprError(f"number too long ({len(text)} digits)") from None


def unescape(body: str) -> bytes:
    """The bytes of a string or character literal body (quotes removed),
    with C escapes: \\n \\t \\r \\0 \\\\ \\" \\' \\a \\b \\f \\v \\e, \\xHH and \\ooo octal.
    Other characters are encoded as UTF-8.  Raises ExprError on a bad escape."""
    if "\\" not in body:
        return body.encode()
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        i, byte = _escape(body, i + 1)
        out.append(byte)
    return bytes(out)


def _escape(body: str, i: int) -> tuple[int, int]:
    """Decode the escape whose letter is at body[i]; returns (next index, byte)."""
    if i >= len(body):
        raise ExprError("a string cannot end with a backslash")
    ch = body[i]
    if ch == "x":
        digits = ""
        while i + 1 + len(digits) < len(body) and len(digits) < 2 and \
                body[i + 1 + len(digits)] in "0123456789abcdefABCDEF":
            digits += body[i + 1 + len(digits)]
        if not digits:
            raise ExprError("\\x needs hexadecimal digits")
        return i + 1 + len(digits), int(digits, 16)
    if ch in "01234567":
        digits = ch
        while len(digits) < 3 and i + len(digits) < len(body) and body[i + len(digits)] in "01234567":
            digits += body[i + len(digits)]
        return i + len(digits), int(digits, 8) & 0xFF
    if ch in _ESCAPES:
        return i + 1, _ESCAPES[ch]
    raise ExprError(f"unknown escape sequence '\\{ch}'")


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
    kind = expr[0]
    if kind == "bin":
        return _binary(expr[1], evaluate(expr[2], lookup), evaluate(expr[3], lookup))
    if kind == "paren":
        return evaluate(expr[1], lookup)
    if kind in ("hi", "lo"):
        return _percent(kind, evaluate(expr[1], lookup))
    if kind == "marg":
        raise ExprError(f"macro argument '\\{expr[1]}' used outside a macro")
    if kind in ("neg", "inv"):
        value = _const(evaluate(expr[1], lookup), "-" if kind == "neg" else "~")
        return Value(wrap32(-value if kind == "neg" else ~value))
    shown = {"mem": "a memory operand", "str": "a string", "attr": "an @attribute",
             "kw": "a name=value argument"}.get(kind, repr(kind))
    raise ExprError(f"expected an expression, got {shown}")


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

"""The assembler's intermediate representation: what lower (asm/lower.py)
hands to layout and encode (asm/encoder.py).

Items are appended to a SectionIR in source order; every item's size is
fixed when it is made, except Align, whose padding layout computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asm import isa
from asm.objfile import SHT_NOBITS, SHT_NOTE, SHT_PROGBITS, STT_NOTYPE

# Limits on one assembly (docs/assembler.md "Limits"), so that no input runs for long
MAX_NESTING = 64                  # include and macro-expansion depth
MAX_EXPANSIONS = 50_000           # macro expansions and included files in all
MAX_EXPANDED_TEXT = 1 << 20       # characters of text they make (a file's first inclusion is free)
MAX_SECTION_SIZE = 64 << 20       # bytes in a section; also in all the sections with contents

# .section's @type -> sh_type
SECTION_KINDS = {"progbits": SHT_PROGBITS, "nobits": SHT_NOBITS, "note": SHT_NOTE}


class LowerError(Exception):
    """A statement is wrong; `col` is where (None: the statement's name)."""

    def __init__(self, message: str, col: int | None = None):
        super().__init__(message)
        self.col = col


# --- IR ------------------------------------------------------------------------------------------

Src = tuple  # (asm.lower.Unit, line, col): where an item came from, for encode-time errors


@dataclass(slots=True)
class Instr:
    """One instruction word.  `operands` maps roles to numbers; the role
    `xrole` (if any) still holds the expression `xexpr`, resolved by encode."""
    insn: isa.Insn
    operands: dict
    xrole: str | None
    xexpr: object
    src: Src


@dataclass(slots=True)
class Data:
    """`.word`/`.half`/`.byte`: one `width`-byte little-endian value per expression."""
    width: int
    exprs: list
    src: Src


@dataclass(slots=True)
class Bytes:
    """Literal bytes (.ascii, .asciz, .incbin)."""
    data: bytes
    src: Src


@dataclass(slots=True)
class Space:
    """`size` bytes of `fill` (.space)."""
    size: int
    fill: int
    src: Src


@dataclass(slots=True)
class Align:
    """Padding up to a multiple of `alignment` bytes (with nop words in code)."""
    alignment: int
    src: Src


@dataclass(slots=True)
class Label:
    """Defines the label `name` at this point."""
    name: str


@dataclass
class SectionIR:
    """A section being assembled: attributes and items in order."""
    name: str
    sh_type: int
    sh_flags: int
    sh_addralign: int
    items: list = field(default_factory=list)


@dataclass
class SymbolInfo:
    """What the assembler knows about a name.  kind: "label" (value set by
    layout), "equ" (`expr`, or `value` once known), or "extern" (only
    named by .globl/.weak/.type/.size or referenced)."""
    name: str
    kind: str
    section: str | None = None
    value: int | None = None
    expr: object = None
    binding: int | None = None
    sym_type: int = STT_NOTYPE
    size_expr: object = None
    src: Src | None = None
    redefinable: bool = False
    size_src: Src | None = None


@dataclass
class Program:
    """Lower's output: sections in creation order and the symbol table."""
    sections: dict[str, SectionIR]
    symbols: dict[str, SymbolInfo]


def is_internal(name: str) -> bool:
    """True for assembler-made names (numeric local labels, `.` anchors):
    they never go into the object's symbol table."""
    return name[0].isdigit() or ":" in name

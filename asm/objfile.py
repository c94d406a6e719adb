"""The in-memory object model shared by the assembler, the ELF writer and the linker.

Field names follow the ELF specification (sh_type, st_value, r_addend) so the
model maps one-to-one onto an ELF32 relocatable object.  This module holds data
only: no parsing, no encoding, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ELF section types and flags used by Kite (values from the ELF specification)
SHT_PROGBITS = 1
SHT_NOBITS = 8
SHT_NOTE = 7
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

# symbol bindings and types
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3

# The largest section alignment the toolchain makes or accepts (kite-as's .balign limit)
MAX_ALIGN = 1 << 16

# The standard sections and their attributes: name -> (sh_type, sh_flags, sh_addralign)
STANDARD_SECTIONS = {
    ".text": (SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 4),
    ".data": (SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 4),
    ".rodata": (SHT_PROGBITS, SHF_ALLOC, 4),
    ".bss": (SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 4),
}


@dataclass
class Section:
    """One section of an object.  For SHT_NOBITS, `data` stays empty and
    `nobits_size` holds the size."""
    name: str
    sh_type: int = SHT_PROGBITS
    sh_flags: int = SHF_ALLOC
    sh_addralign: int = 1
    data: bytearray = field(default_factory=bytearray)
    nobits_size: int = 0

    @property
    def size(self) -> int:
        return self.nobits_size if self.sh_type == SHT_NOBITS else len(self.data)


@dataclass
class Symbol:
    """A symbol.  `section` is a section name, or None for an undefined
    symbol, or "*ABS*" for an absolute value (from .equ made global)."""
    name: str
    value: int = 0
    section: str | None = None
    binding: int = STB_LOCAL
    sym_type: int = STT_NOTYPE
    size: int = 0

    @property
    def defined(self) -> bool:
        return self.section is not None


@dataclass
class Relocation:
    """Patch `r_type` at `r_offset` of section `section`, using `symbol` + `r_addend`.
    `symbol` is a symbol name (a local label keeps its own name)."""
    section: str
    r_offset: int
    r_type: int
    symbol: str
    r_addend: int = 0


@dataclass
class ObjectFile:
    """A relocatable object: what `kite-as` produces and `kite-ld` consumes."""
    sections: list[Section] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)
    relocations: list[Relocation] = field(default_factory=list)
    source_name: str = ""

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

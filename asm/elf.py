"""ELF32 little-endian files for Kite32: relocatable objects (write and read) and executable images (write).

Layout constants and struct formats come first, then small record packers, then the two writers and
the reader.  Writing is hand-written struct packing (pyelftools cannot write); reading goes through
pyelftools and turns every way a file can be wrong into one ElfFormatError naming the file.

A written object has the sections, in this order:

    0 null | the object's sections | .rela<section> ... | .symtab | .strtab | .shstrtab

Its symbol table holds the null symbol, one STT_SECTION symbol per section, the local symbols, then
the global and weak ones (sh_info = index of the first non-local).  A Relocation whose `symbol` is a
section name refers to that section's STT_SECTION symbol.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

from elftools.elf.elffile import ELFFile

from asm.diagnostics import printable
from asm.files import read_limited
from asm.isa import EM_KITE32, PAGE_SIZE
from asm.objfile import (
    MAX_ALIGN, SHF_ALLOC, SHT_NOBITS, STB_LOCAL, STT_SECTION, ObjectFile, Relocation, Section, Symbol,
)

# --- Layout constants (ELF specification names) -------------------------------------------

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELFDATA2LSB = 1
EV_CURRENT = 1
ET_REL = 1
ET_EXEC = 2

SHT_NULL = 0
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHF_INFO_LINK = 0x40
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
SHN_LORESERVE = 0xFF00

PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
SEGMENT_ALIGN = PAGE_SIZE

ABS_SECTION = "*ABS*"          # Symbol.section of an absolute symbol

EHDR = struct.Struct("<16sHHIIIIIHHHHHH")   # Elf32_Ehdr
SHDR = struct.Struct("<10I")                # Elf32_Shdr
PHDR = struct.Struct("<8I")                 # Elf32_Phdr
SYM = struct.Struct("<IIIBBH")              # Elf32_Sym
RELA = struct.Struct("<IIi")                # Elf32_Rela


class ElfFormatError(ValueError):
    """A file is not a Kite32 ELF file of the expected kind; str() is `name: message`."""


# --- Records and packers ------------------------------------------------------------------


@dataclass
class _Shdr:
    """One section header plus its bytes, before file layout."""
    name: str
    sh_type: int
    sh_flags: int = 0
    data: bytes = b""
    sh_addr: int = 0
    sh_addralign: int = 1
    sh_link: int = 0
    sh_info: int = 0
    sh_entsize: int = 0
    sh_size: int | None = None      # None: len(data); set for SHT_NOBITS
    sh_offset: int = 0


class StringTable:
    """An ELF string table under construction: offset 0 is the empty string."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._offsets: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        """The offset of `text`, appended on first use."""
        if text not in self._offsets:
            self._offsets[text] = len(self.data)
            self.data += text.encode("utf-8") + b"\0"
        return self._offsets[text]


def st_info(binding: int, sym_type: int) -> int:
    """ELF32_ST_INFO."""
    return (binding << 4) | (sym_type & 0xF)


def r_info(sym: int, r_type: int) -> int:
    """ELF32_R_INFO: (sym << 8) | type."""
    return (sym << 8) | (r_type & 0xFF)


def align_up(value: int, alignment: int) -> int:
    """`value` rounded up to a multiple of `alignment` (0 or 1: unchanged)."""
    return value if alignment <= 1 else (value + alignment - 1) // alignment * alignment


def _pack_ehdr(e_type: int, e_entry: int, e_phoff: int, e_phnum: int, e_shoff: int,
               e_shnum: int, e_shstrndx: int) -> bytes:
    """The 52-byte ELF header."""
    ident = ELF_MAGIC + bytes([ELFCLASS32, ELFDATA2LSB, EV_CURRENT]) + bytes(9)
    return EHDR.pack(ident, e_type, EM_KITE32, EV_CURRENT, e_entry, e_phoff, e_shoff, 0,
                     EHDR.size, PHDR.size if e_phnum else 0, e_phnum, SHDR.size, e_shnum,
                     e_shstrndx)


def _pack_shdr(header: _Shdr, sh_name: int) -> bytes:
    size = len(header.data) if header.sh_size is None else header.sh_size
    return SHDR.pack(sh_name, header.sh_type, header.sh_flags, header.sh_addr, header.sh_offset,
                     size, header.sh_link, header.sh_info, header.sh_addralign, header.sh_entsize)


def _finish(e_type: int, e_entry: int, headers: list[_Shdr], phdrs: bytes, body: bytearray) -> bytes:
    """Append .shstrtab and the section header table to `body` (which already starts with room
    for the ELF header and `phdrs`, and holds every section's bytes at its sh_offset); returns the
    whole file.  `headers` excludes the null section."""
    shstrtab = StringTable()
    names = [shstrtab.add(h.name) for h in headers]
    shstr_header = _Shdr(".shstrtab", SHT_STRTAB)
    shstr_name = shstrtab.add(".shstrtab")
    shstr_header.data = bytes(shstrtab.data)
    shstr_header.sh_offset = len(body)
    body += shstr_header.data
    body += bytes(-len(body) % 4)
    e_shoff = len(body)
    body += bytes(SHDR.size)
    for header, name in zip(headers + [shstr_header], names + [shstr_name]):
        body += _pack_shdr(header, name)
    e_phnum = len(phdrs) // PHDR.size
    body[:EHDR.size] = _pack_ehdr(e_type, e_entry, EHDR.size if e_phnum else 0, e_phnum, e_shoff,
                                  len(headers) + 2, len(headers) + 1)
    body[EHDR.size:EHDR.size + len(phdrs)] = phdrs
    return bytes(body)


def _place_plain(headers: list[_Shdr], body: bytearray) -> None:
    """Give each header without a file position one after `body`'s end (aligned), appending its bytes."""
    for header in headers:
        body += bytes(-len(body) % max(header.sh_addralign, 1))
        header.sh_offset = len(body)
        if header.sh_size is None:
            body += header.data


# --- Symbol tables --------------------------------------------------------------------------


@dataclass
class SymbolEntry:
    """One Elf32_Sym with its name (st_shndx already resolved)."""
    name: str
    st_value: int
    st_size: int
    binding: int
    sym_type: int
    st_shndx: int


def _symtab_headers(entries: list[SymbolEntry], symtab_index: int) -> list[_Shdr]:
    """.symtab and .strtab for `entries` (null symbol added; locals must come first).
    .symtab gets index `symtab_index`, .strtab the next one."""
    strtab = StringTable()
    data = bytearray(SYM.size)
    for entry in entries:
        data += SYM.pack(strtab.add(entry.name), entry.st_value & 0xFFFFFFFF, entry.st_size,
                         st_info(entry.binding, entry.sym_type), 0, entry.st_shndx)
    first_global = 1 + sum(1 for entry in entries if entry.binding == STB_LOCAL)
    return [_Shdr(".symtab", SHT_SYMTAB, data=bytes(data), sh_link=symtab_index + 1,
                  sh_info=first_global, sh_addralign=4, sh_entsize=SYM.size),
            _Shdr(".strtab", SHT_STRTAB, data=bytes(strtab.data))]


def _shndx(section: str | None, index_of: dict[str, int]) -> int:
    """st_shndx for a Symbol.section value."""
    if section is None:
        return SHN_UNDEF
    return SHN_ABS if section == ABS_SECTION else index_of[section]


# --- Relocatable objects: writing -----------------------------------------------------------


def _object_symbols(obj: ObjectFile, index_of: dict[str, int]) -> list[SymbolEntry]:
    """Section symbols, then locals, then globals/weaks; a relocation naming a symbol the
    object does not list adds it as an undefined global (as GNU as does)."""
    sections = [SymbolEntry("", 0, 0, STB_LOCAL, STT_SECTION, index_of[s.name]) for s in obj.sections]
    symbols = list(obj.symbols)
    known = {s.name for s in symbols} | set(index_of)
    for reloc in obj.relocations:
        if reloc.symbol not in known:
            symbols.append(Symbol(reloc.symbol, binding=1))
            known.add(reloc.symbol)
    ordered = sorted(symbols, key=lambda s: s.binding != STB_LOCAL)
    return sections + [SymbolEntry(s.name, s.value, s.size, s.binding, s.sym_type,
                                   _shndx(s.section, index_of)) for s in ordered]


def _symbol_indexes(entries: list[SymbolEntry], index_of: dict[str, int]) -> dict[str, int]:
    """Relocation symbol name -> symbol table index (section names -> their STT_SECTION symbol)."""
    indexes: dict[str, int] = {}
    for position, entry in enumerate(entries, start=1):
        if entry.sym_type != STT_SECTION:
            indexes.setdefault(entry.name, position)
    indexes.update(index_of)   # the STT_SECTION symbol of section i is symbol i
    return indexes


def _rela_headers(obj: ObjectFile, index_of: dict[str, int], sym_index: dict[str, int],
                  symtab_index: int) -> list[_Shdr]:
    """One .rela<section> per section with relocations, in section order."""
    headers = []
    for section in obj.sections:
        relocs = [r for r in obj.relocations if r.section == section.name]
        if relocs:
            data = b"".join(RELA.pack(r.r_offset, r_info(sym_index[r.symbol], r.r_type), r.r_addend)
                            for r in relocs)
            headers.append(_Shdr(".rela" + section.name, SHT_RELA, SHF_INFO_LINK, data,
                                 sh_addralign=4, sh_link=symtab_index,
                                 sh_info=index_of[section.name], sh_entsize=RELA.size))
    return headers


def write_object(obj: ObjectFile) -> bytes:
    """The ELF32 ET_REL bytes of `obj`.  Assumes the object is consistent: relocations name
    sections of the object, symbols name sections of the object, "*ABS*" or None."""
    index_of = {section.name: index for index, section in enumerate(obj.sections, start=1)}
    entries = _object_symbols(obj, index_of)
    sym_index = _symbol_indexes(entries, index_of)
    content = [_Shdr(s.name, s.sh_type, s.sh_flags, bytes(s.data), sh_addralign=s.sh_addralign,
                     sh_size=s.nobits_size if s.sh_type == SHT_NOBITS else None)
               for s in obj.sections]
    relas_count = len({r.section for r in obj.relocations})
    symtab_index = 1 + len(content) + relas_count
    relas = _rela_headers(obj, index_of, sym_index, symtab_index)
    headers = content + relas + _symtab_headers(entries, symtab_index)
    body = bytearray(EHDR.size)
    _place_plain(headers, body)
    return _finish(ET_REL, 0, headers, b"", body)


# --- Executable images: writing -------------------------------------------------------------


@dataclass
class ImageSection:
    """An output section of an image: `data` holds its bytes (empty for SHT_NOBITS)."""
    name: str
    sh_type: int
    sh_flags: int
    sh_addr: int
    sh_addralign: int
    data: bytes = b""
    size: int = 0


@dataclass
class ImageSegment:
    """A PT_LOAD segment: `sections` in address order, SHT_NOBITS ones last."""
    p_vaddr: int
    p_paddr: int
    p_flags: int
    sections: list[ImageSection] = field(default_factory=list)

    @property
    def p_filesz(self) -> int:
        ends = [s.sh_addr + s.size for s in self.sections if s.sh_type != SHT_NOBITS]
        return max(ends, default=self.p_vaddr) - self.p_vaddr

    @property
    def p_memsz(self) -> int:
        return max((s.sh_addr + s.size for s in self.sections), default=self.p_vaddr) - self.p_vaddr


@dataclass
class ImageSymbol:
    """A symbol of an image; `section` is an output section name, "*ABS*" or None (undefined)."""
    name: str
    st_value: int
    st_size: int
    binding: int
    sym_type: int
    section: str | None


def _segment_bytes(segment: ImageSegment) -> bytes:
    """The file image of a segment: its PROGBITS sections at their offsets, gaps zero."""
    blob = bytearray(segment.p_filesz)
    for section in segment.sections:
        if section.sh_type != SHT_NOBITS:
            start = section.sh_addr - segment.p_vaddr
            blob[start:start + len(section.data)] = section.data
    return bytes(blob)


def _place_segments(segments: list[ImageSegment], body: bytearray,
                    header_of: dict[str, _Shdr]) -> bytes:
    """Append each segment's bytes at an offset congruent to p_vaddr mod SEGMENT_ALIGN, set its
    sections' sh_offset; returns the packed program headers."""
    phdrs = bytearray()
    for segment in segments:
        offset = len(body) + (segment.p_vaddr - len(body)) % SEGMENT_ALIGN
        body += bytes(offset - len(body)) + _segment_bytes(segment)
        for section in segment.sections:
            header_of[section.name].sh_offset = offset + section.sh_addr - segment.p_vaddr
        phdrs += PHDR.pack(PT_LOAD, offset, segment.p_vaddr, segment.p_paddr, segment.p_filesz,
                           segment.p_memsz, segment.p_flags, SEGMENT_ALIGN)
    return bytes(phdrs)


def write_executable(e_entry: int, sections: list[ImageSection], segments: list[ImageSegment],
                     symbols: list[ImageSymbol]) -> bytes:
    """The ELF32 ET_EXEC bytes of an image.  `sections` lists every output section in header
    order; `segments` groups the allocated ones (empty segments are dropped; a section in no
    non-empty segment gets no file bytes unless it is not allocated).  `symbols` must list
    locals first."""
    index_of = {s.name: index for index, s in enumerate(sections, start=1)}
    content = [_Shdr(s.name, s.sh_type, s.sh_flags, s.data, s.sh_addr, s.sh_addralign,
                     sh_size=s.size if s.sh_type == SHT_NOBITS else None) for s in sections]
    header_of = {h.name: h for h in content}
    entries = [SymbolEntry(s.name, s.st_value, s.st_size, s.binding, s.sym_type,
                           _shndx(s.section, index_of)) for s in symbols]
    table = _symtab_headers(entries, len(content) + 1)
    segments = [segment for segment in segments if segment.p_memsz]
    body = bytearray(EHDR.size + PHDR.size * len(segments))
    phdrs = _place_segments(segments, body, header_of)
    in_segment = {section.name for segment in segments for section in segment.sections}
    for header in content:
        if header.name not in in_segment:
            header.sh_offset = len(body)
    _place_plain([h for h in content if not h.sh_flags & SHF_ALLOC] + table, body)
    return _finish(ET_EXEC, e_entry, content + table, phdrs, body)


# --- Relocatable objects: reading -----------------------------------------------------------


def _fail(name: str, message: str) -> ElfFormatError:
    return ElfFormatError(f"{name}: {message}")


def read_file(path: str) -> bytes:
    """The bytes of the input file `path` (at most asm.files.MAX_INPUT_SIZE);
    ElfFormatError, one line naming the file, if it cannot be read."""
    try:
        return read_limited(path)
    except OSError as error:
        raise _fail(path, f"cannot read: {error.strerror}") from None


def check_ident(data: bytes, name: str) -> None:
    """Raise ElfFormatError unless `data` starts like a 32-bit little-endian ELF file."""
    if data[:4] != ELF_MAGIC:
        raise _fail(name, "not an ELF file (bad magic)")
    if len(data) < EHDR.size:
        raise _fail(name, f"truncated ELF header ({len(data)} bytes)")
    if data[4] != ELFCLASS32:
        raise _fail(name, f"not a 32-bit ELF file (EI_CLASS {data[4]})")
    if data[5] != ELFDATA2LSB:
        raise _fail(name, f"not a little-endian ELF file (EI_DATA {data[5]})")


def open_elf(data: bytes, name: str) -> ELFFile:
    """A pyelftools ELFFile over `data`, checked to be a Kite32 ELF32 LE file."""
    check_ident(data, name)
    elf = guarded(name, lambda: ELFFile(io.BytesIO(data)))
    machine = elf["e_machine"]
    if machine != EM_KITE32:
        shown = machine if isinstance(machine, str) else f"{machine:#x}"
        raise _fail(name, f"not a Kite32 file (e_machine {shown}, expected {EM_KITE32:#x})")
    return elf


def guarded(name: str, action):
    """action(), with whatever pyelftools raises on a damaged file turned into ElfFormatError.
    pyelftools has no single exception type for bad input, so this catches Exception."""
    try:
        return action()
    except ElfFormatError:
        raise
    except Exception as error:
        raise _fail(name, f"malformed ELF file ({error or type(error).__name__})") from None


def _read_sections(elf: ELFFile, name: str) -> tuple[list[Section], dict[int, str]]:
    """The content sections (not symtab/strtab/rela/null) and index -> name for them."""
    sections, names = [], {}
    for index, sec in enumerate(elf.iter_sections()):
        kind = sec["sh_type"]
        if kind in ("SHT_NULL", "SHT_SYMTAB", "SHT_STRTAB", "SHT_RELA"):
            continue
        if not isinstance(kind, int) and kind not in ("SHT_PROGBITS", "SHT_NOBITS", "SHT_NOTE"):
            raise _fail(name, f"section '{printable(sec.name)}' has unsupported type {kind}")
        header = sec.header
        align = header["sh_addralign"]
        if align > MAX_ALIGN or align & (align - 1):
            raise _fail(name, f"section '{printable(sec.name)}' has alignment {align:#x} "
                              f"(a power of two up to {MAX_ALIGN:#x} expected)")
        sh_type = _SHT_VALUES.get(kind, kind)
        section = Section(sec.name, sh_type, header["sh_flags"], header["sh_addralign"])
        if sh_type == SHT_NOBITS:
            section.nobits_size = header["sh_size"]
        else:
            section.data = bytearray(sec.data())
            if len(section.data) != header["sh_size"]:
                raise _fail(name, f"section '{printable(sec.name)}' extends past the end of the file")
        sections.append(section)
        names[index] = sec.name
    return sections, names


_SHT_VALUES = {"SHT_PROGBITS": 1, "SHT_NOBITS": SHT_NOBITS, "SHT_NOTE": 7}
_BINDINGS = {"STB_LOCAL": 0, "STB_GLOBAL": 1, "STB_WEAK": 2}
_TYPES = {"STT_NOTYPE": 0, "STT_OBJECT": 1, "STT_FUNC": 2, "STT_SECTION": 3}


def _symbol_section(sym, names: dict[int, str], name: str) -> str | None:
    """Symbol.section for a pyelftools symbol's st_shndx."""
    shndx = sym["st_shndx"]
    if shndx == "SHN_UNDEF":
        return None
    if shndx == "SHN_ABS":
        return ABS_SECTION
    if shndx not in names:
        raise _fail(name, f"symbol '{printable(sym.name)}' has bad section index {shndx}")
    return names[shndx]


def _enum(table: dict[str, int], value, what: str, name: str) -> int:
    if value not in table:
        raise _fail(name, f"unsupported {what} {value}")
    return table[value]


def _read_symbols(symtab, names: dict[int, str], name: str) -> tuple[list[Symbol], list[str]]:
    """The named symbols, and for every symbol table index the name a Relocation uses."""
    symbols, reloc_names = [], []
    for sym in symtab.iter_symbols():
        info = sym["st_info"]
        sym_type = _enum(_TYPES, info["type"], "symbol type", name)
        section = _symbol_section(sym, names, name)
        if sym_type == STT_SECTION:
            reloc_names.append(section or "")
            continue
        reloc_names.append(sym.name)
        if sym.name:
            symbols.append(Symbol(sym.name, sym["st_value"], section,
                                  _enum(_BINDINGS, info["bind"], "symbol binding", name),
                                  sym_type, sym["st_size"]))
    return symbols, reloc_names


def _read_relocations(elf: ELFFile, names: dict[int, str], reloc_names: list[str],
                      symtab_index: int, name: str) -> list[Relocation]:
    """Every SHT_RELA section's entries as Relocations."""
    relocations = []
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_RELA":
            continue
        if sec["sh_info"] not in names or sec["sh_link"] != symtab_index:
            raise _fail(name, f"relocation section '{printable(sec.name)}' has bad sh_info/sh_link")
        for rel in sec.iter_relocations():
            sym = rel["r_info_sym"]
            if not 0 < sym < len(reloc_names) or not reloc_names[sym]:
                raise _fail(name, f"relocation in '{printable(sec.name)}' has bad symbol index {sym}")
            relocations.append(Relocation(names[sec["sh_info"]], rel["r_offset"],
                                          rel["r_info_type"], reloc_names[sym], rel["r_addend"]))
    return relocations


def _read_object(elf: ELFFile, name: str) -> ObjectFile:
    if elf["e_type"] != "ET_REL":
        raise _fail(name, f"not a relocatable object (e_type {elf['e_type']}, expected ET_REL)")
    sections, names = _read_sections(elf, name)
    symtab_index = next((i for i, s in enumerate(elf.iter_sections()) if s["sh_type"] == "SHT_SYMTAB"), None)
    if symtab_index is None:
        raise _fail(name, "no symbol table")
    symbols, reloc_names = _read_symbols(elf.get_section(symtab_index), names, name)
    relocations = _read_relocations(elf, names, reloc_names, symtab_index, name)
    return ObjectFile(sections, symbols, relocations, name)


def read_object(data: bytes, name: str) -> ObjectFile:
    """The ObjectFile in the ELF32 ET_REL bytes `data`; `name` names the file in errors and
    becomes source_name.  Raises ElfFormatError on anything that is not a valid Kite32 object."""
    elf = open_elf(data, name)
    return guarded(name, lambda: _read_object(elf, name))

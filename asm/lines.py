"""Source lines: the DWARF 5 line table (`.debug_line`) kite-as writes and every tool reads.

kite-as records, for every instruction, the file and line it came from (a macro expansion: the line
of the outermost invocation; an included file: that file).  The table is one DWARF 5 line-program
unit per object, with one sequence per section holding instructions:

    header: version 5, address size 4, minimum instruction length 4, line_base -5, line_range 14,
            opcode_base 13; directory 0 "."; file 0 and file 1 the main source, then the others
            (names inline, DW_FORM_string, as the assembler's diagnostics print them)
    each sequence: DW_LNE_KITE_section "name", DW_LNE_set_address, rows (special opcodes, or
            advance_line / advance_pc / copy), advance_pc to one past the last instruction,
            DW_LNE_end_sequence

A row is written where file:line changes; an address belongs to the row at or before it in its
sequence.  In an object the DW_LNE_set_address operand is the offset in the section the vendor
opcode DW_LNE_KITE_section names, and the section carries no relocations: GNU readelf cannot apply
EM_KITE32 relocation types to DWARF sections and reports every one, while a vendor opcode it prints
as "user defined".  kite-ld relocates each sequence itself (`address_sites` says where), so in an
image the operand is the final address.

The reader: `read_line_table(elf bytes)` -> LineTable (`lookup(address)` for an image,
`lookup(offset, section)` for an object), `address_lines(image bytes)` -> {address: SourceLine}
for every instruction word, and `object_line_table(ObjectFile)` for the linker.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

SECTION = ".debug_line"
VERSION = 5
ADDRESS_SIZE = 4
MIN_INSN_LENGTH = 4
LINE_BASE, LINE_RANGE, OPCODE_BASE = -5, 14, 13
STANDARD_LENGTHS = (0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1)     # operands of standard opcodes 1..12

DW_LNS_copy, DW_LNS_advance_pc, DW_LNS_advance_line, DW_LNS_set_file = 1, 2, 3, 4
DW_LNS_const_add_pc, DW_LNS_fixed_advance_pc = 8, 9
DW_LNE_end_sequence, DW_LNE_set_address = 1, 2
DW_LNE_KITE_section = 0x81      # vendor (DW_LNE_lo_user 0x80 is HP's): the sequence's section name
DW_LNCT_path, DW_LNCT_directory_index = 1, 2
DW_FORM_string, DW_FORM_udata = 0x08, 0x0F
COMP_DIR = "."


class SourceLine(NamedTuple):
    """Where an instruction came from: a file name as diagnostics print it, and a 1-based line."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Row(NamedTuple):
    """One row to write: an instruction's offset in its section and its source line."""
    offset: int
    source: SourceLine


class LineTableError(ValueError):
    """A .debug_line section this module cannot read; the message says what is wrong."""


# --- Writing ---------------------------------------------------------------------------------


def uleb(value: int) -> bytes:
    """ULEB128 of a non-negative integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    """SLEB128 of an integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def write_line_table(main_file: str, sequences: dict[str, tuple[list[Row], int]]) -> bytes:
    """The .debug_line bytes for `sequences` (section name -> (its rows in offset order, none
    empty; the offset just past its last instruction)), addresses relative to each section.
    File 0 and 1 are `main_file`."""
    names = list(dict.fromkeys([main_file] + [row.source.file for rows, _ in sequences.values()
                                              for row in rows]))
    index = {name: number for number, name in enumerate(names, start=1)}
    program = b"".join(_sequence(section, rows, end, index)
                       for section, (rows, end) in sequences.items())
    header = _header([names[0], *names])
    body = struct.pack("<HBBI", VERSION, ADDRESS_SIZE, 0, len(header)) + header + program
    return struct.pack("<I", len(body)) + body


def _header(files: list[str]) -> bytes:
    """The header after header_length: the fixed fields, then the directory and file tables."""
    out = bytearray(struct.pack("<BBBbBB", MIN_INSN_LENGTH, 1, 1, LINE_BASE, LINE_RANGE, OPCODE_BASE))
    out += bytes(STANDARD_LENGTHS)
    out += bytes([1]) + uleb(DW_LNCT_path) + uleb(DW_FORM_string) + uleb(1) + _string(COMP_DIR)
    out += bytes([2]) + uleb(DW_LNCT_path) + uleb(DW_FORM_string)
    out += uleb(DW_LNCT_directory_index) + uleb(DW_FORM_udata) + uleb(len(files))
    for name in files:
        out += _string(name) + uleb(0)
    return bytes(out)


def _string(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape") + b"\0"


def _extended(opcode: int, operand: bytes) -> bytes:
    """An extended opcode: 0, the length, the opcode, its operand."""
    return b"\0" + uleb(1 + len(operand)) + bytes([opcode]) + operand


def _sequence(section: str, rows: list[Row], end: int, index: dict[str, int]) -> bytes:
    """One sequence: the section, its start, the rows, and its `end` (past the last instruction)."""
    out = bytearray(_extended(DW_LNE_KITE_section, _string(section)))
    out += _extended(DW_LNE_set_address, struct.pack("<I", rows[0].offset))
    address, file, line = rows[0].offset, 1, 1
    for row in rows:
        if index[row.source.file] != file:
            file = index[row.source.file]
            out += bytes([DW_LNS_set_file]) + uleb(file)
        out += _advance(row.source.line - line, (row.offset - address) // MIN_INSN_LENGTH)
        address, line = row.offset, row.source.line
    out += bytes([DW_LNS_advance_pc]) + uleb((end - address) // MIN_INSN_LENGTH)
    return bytes(out + _extended(DW_LNE_end_sequence, b""))


def _advance(lines: int, words: int) -> bytes:
    """A row `lines` lines and `words` instructions on: a special opcode when one fits."""
    special = (lines - LINE_BASE) + LINE_RANGE * words + OPCODE_BASE
    if 0 <= lines - LINE_BASE < LINE_RANGE and special <= 255:
        return bytes([special])
    out = bytearray()
    if lines:
        out += bytes([DW_LNS_advance_line]) + sleb(lines)
    if words:
        out += bytes([DW_LNS_advance_pc]) + uleb(words)
    return bytes(out + bytes([DW_LNS_copy]))


# --- Reading ---------------------------------------------------------------------------------


@dataclass
class Sequence:
    """A decoded sequence: its section (from DW_LNE_KITE_section, "" if none), its rows
    (address, SourceLine) in order, its end address, and the offsets in the section data of
    its DW_LNE_set_address operands (what kite-ld relocates)."""
    section: str = ""
    rows: list[tuple[int, SourceLine]] = field(default_factory=list)
    end: int = 0
    sites: list[int] = field(default_factory=list)


class _Reader:
    """A cursor over .debug_line bytes; every read past the end raises LineTableError."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise LineTableError(f"truncated at offset {self.pos:#x}")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def uleb(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def sleb(self) -> int:
        start = self.pos
        value = self.uleb()
        bits = 7 * (self.pos - start)
        return value - (1 << bits) if value >> (bits - 1) & 1 else value

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise LineTableError(f"unterminated string at offset {self.pos:#x}")
        text = self.data[self.pos:end].decode("utf-8", errors="surrogateescape")
        self.pos = end + 1
        return text


def read_sequences(data: bytes) -> list[Sequence]:
    """Every sequence of every unit in the .debug_line bytes `data` (DWARF 5, 32-bit format, the
    forms kite-as writes).  Raises LineTableError on anything else or on damage."""
    reader, sequences = _Reader(data), []
    while reader.pos < len(data):
        (length,) = reader.unpack("I")
        end = reader.pos + length
        if length >= 0xFFFFFFF0 or end > len(data):
            raise LineTableError(f"bad unit length {length:#x} at offset {reader.pos - 4:#x}")
        files, opcode_base, lengths = _read_header(reader)
        sequences += _run_program(reader, end, files, opcode_base, lengths)
        reader.pos = end
    return sequences


def _read_header(reader: _Reader) -> tuple[list[str], int, tuple[int, ...]]:
    """(file names by index, opcode_base, standard opcode operand counts) of a unit's header."""
    version, address_size, _, header_length = reader.unpack("HBBI")
    if version != VERSION or address_size != ADDRESS_SIZE:
        raise LineTableError(f"unsupported line table (DWARF version {version}, "
                             f"address size {address_size}; version 5, size 4 expected)")
    program = reader.pos + header_length
    min_length, _, _, _, line_range, opcode_base = reader.unpack("BBBbBB")
    if (min_length, line_range) != (MIN_INSN_LENGTH, LINE_RANGE) or opcode_base < 1:
        raise LineTableError("unsupported line table parameters")
    lengths = tuple(reader.take(opcode_base - 1))
    directories = _read_entries(reader)
    files = []
    for entry in _read_entries(reader):
        path, directory = entry.get(DW_LNCT_path, ""), entry.get(DW_LNCT_directory_index, 0)
        if directory and 0 <= directory < len(directories) and not path.startswith("/"):
            path = f"{directories[directory].get(DW_LNCT_path, '')}/{path}"
        files.append(path)
    reader.pos = program
    return files, opcode_base, lengths


def _read_entries(reader: _Reader) -> list[dict[int, object]]:
    """A DWARF 5 entry table (directories or files): each entry as {content type: value}."""
    formats = [(reader.uleb(), reader.uleb()) for _ in range(reader.take(1)[0])]
    entries = []
    for _ in range(reader.uleb()):
        entry = {}
        for content, form in formats:
            if form == DW_FORM_string:
                entry[content] = reader.string()
            elif form == DW_FORM_udata:
                entry[content] = reader.uleb()
            else:
                raise LineTableError(f"unsupported form {form:#x} in the line table header")
        entries.append(entry)
    return entries


def _run_program(reader: _Reader, end: int, files: list[str], opcode_base: int,
                 lengths: tuple[int, ...]) -> list[Sequence]:
    """Run a unit's line program up to `end`; returns its sequences."""
    sequences, current = [], Sequence()
    address, file, line = 0, 1, 1
    while reader.pos < end:
        opcode = reader.take(1)[0]
        if opcode >= opcode_base:
            adjusted = opcode - opcode_base
            address += (adjusted // LINE_RANGE) * MIN_INSN_LENGTH
            line += LINE_BASE + adjusted % LINE_RANGE
            current.rows.append((address, _source(files, file, line)))
        elif opcode == 0:
            size = reader.uleb()
            operand_end = reader.pos + size
            extended = reader.take(1)[0] if size else None
            if extended == DW_LNE_end_sequence:
                current.end = address
                sequences.append(current)
                current, address, file, line = Sequence(), 0, 1, 1
            elif extended == DW_LNE_set_address:
                current.sites.append(reader.pos)
                (address,) = reader.unpack("I")
            elif extended == DW_LNE_KITE_section:
                current.section = reader.string()
            reader.pos = operand_end
        elif opcode == DW_LNS_copy:
            current.rows.append((address, _source(files, file, line)))
        elif opcode == DW_LNS_advance_pc:
            address += reader.uleb() * MIN_INSN_LENGTH
        elif opcode == DW_LNS_advance_line:
            line += reader.sleb()
        elif opcode == DW_LNS_set_file:
            file = reader.uleb()
        elif opcode == DW_LNS_const_add_pc:
            address += ((255 - opcode_base) // LINE_RANGE) * MIN_INSN_LENGTH
        elif opcode == DW_LNS_fixed_advance_pc:
            address += reader.unpack("H")[0]
        else:
            for _ in range(lengths[opcode - 1]):
                reader.uleb()
    return sequences


def _source(files: list[str], file: int, line: int) -> SourceLine:
    if not 0 <= file < len(files):
        raise LineTableError(f"row names file {file}, the table has {len(files)}")
    return SourceLine(files[file], line)


# --- Lookup ------------------------------------------------------------------------------------


class LineRange(NamedTuple):
    """The addresses [start, end) of `section` that came from `source`."""
    section: str
    start: int
    end: int
    source: SourceLine


class LineTable:
    """Address -> source line.  For an image addresses are final and `section` is ignored; for an
    object (`relocatable`) an address is an offset in the named section."""

    def __init__(self, sequences: list[Sequence], relocatable: bool):
        self.relocatable = relocatable
        self.ranges = [LineRange(seq.section, start, next_start, source)
                       for seq in sequences
                       for (start, source), next_start in zip(seq.rows, [a for a, _ in seq.rows[1:]] + [seq.end])
                       if start < next_start]
        self._index: dict[str | None, tuple[list[int], list[LineRange]]] = {}
        for item in sorted(self.ranges, key=lambda r: r.start):
            starts, ranges = self._index.setdefault(self._key(item.section), ([], []))
            starts.append(item.start)
            ranges.append(item)

    def _key(self, section: str | None) -> str | None:
        return section if self.relocatable else None

    def lookup(self, address: int, section: str | None = None) -> SourceLine | None:
        """The source line of the instruction at `address` (in `section` for an object), None if
        the table does not cover it."""
        starts, ranges = self._index.get(self._key(section), ([], []))
        position = bisect.bisect_right(starts, address) - 1
        if position < 0 or address >= ranges[position].end:
            return None
        return ranges[position].source


def read_line_table(data: bytes, name: str = "<image>") -> LineTable:
    """The line table of the ELF file `data` (image or object); empty if it has none.  Raises
    asm.elf.ElfFormatError (naming `name`) for a bad file or a bad .debug_line."""
    from asm.elf import ElfFormatError, guarded, open_elf
    elf = open_elf(data, name)
    section = guarded(name, lambda: elf.get_section_by_name(SECTION))
    contents = b"" if section is None else guarded(name, section.data)
    try:
        return LineTable(read_sequences(contents), elf["e_type"] == "ET_REL")
    except LineTableError as error:
        raise ElfFormatError(f"{name}: {SECTION}: {error}") from None


def address_lines(data: bytes, name: str = "<image>") -> dict[int, SourceLine]:
    """Every instruction address of the image `data` that its line table covers -> its source
    line: what a debugger or tracer looks a pc up in."""
    return {address: item.source for item in read_line_table(data, name).ranges
            for address in range(item.start, item.end, MIN_INSN_LENGTH)}


def object_line_table(obj) -> LineTable:
    """The line table of an asm.objfile.ObjectFile (section offsets); empty if it has none.
    Raises LineTableError for a damaged one."""
    section = obj.section(SECTION)
    return LineTable(read_sequences(bytes(section.data)) if section else [], relocatable=True)

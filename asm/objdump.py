"""kite-objdump's report for one file, in GNU objdump's order and formats (docs/linker.md):

    -f file header, -p program headers, -h section headers, -t symbols, -r relocations,
    -s section contents, -d/-D disassembly (with -l file:line and -S source lines)

`--start-address`/`--stop-address` limit -r, -s and the disassembly to [start, stop) (section
offsets in an object, addresses in an image).  Disassembly prints the pseudo-instructions of
isa.ALIASES (`ret`, `mov`) unless `-M no-aliases`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from asm import isa
from asm.diagnostics import printable
from asm.disasm import disassemble_word
from asm.elf import open_elf
from asm.elfview import content_sections, file_symbols, flags_text, load_address, section_name
from asm.files import read_limited
from asm.lines import SourceLine, read_line_table
from asm.objfile import SHF_EXECINSTR

CONTEXT_LINES = 5      # -S: lines shown before the first one met in a file, as GNU objdump does
BFD_FLAGS = (("HAS_RELOC", 0x1), ("EXEC_P", 0x2), ("HAS_SYMS", 0x10), ("D_PAGED", 0x100))


@dataclass
class DumpOptions:
    """What to show; see the module docstring.  `stop` is exclusive; None: no limit."""
    file_header: bool = False
    private: bool = False
    headers: bool = False
    syms: bool = False
    relocs: bool = False
    contents: bool = False
    disassemble: bool = False
    disassemble_all: bool = False
    source: bool = False
    line_numbers: bool = False
    aliases: bool = True
    start: int = 0
    stop: int | None = None

    def wanted(self, address: int) -> bool:
        return self.start <= address and (self.stop is None or address < self.stop)

    @property
    def disassembling(self) -> bool:
        return self.disassemble or self.disassemble_all or self.source


# --- headers ---------------------------------------------------------------------------------


def file_header_lines(elf) -> list[str]:
    """objdump -f: architecture, BFD flags, start address."""
    relocatable = elf["e_type"] == "ET_REL"
    has_relocs = any(sec["sh_type"] == "SHT_RELA" for sec in elf.iter_sections())
    present = {"HAS_RELOC": relocatable and has_relocs, "EXEC_P": not relocatable,
               "HAS_SYMS": elf.get_section_by_name(".symtab") is not None, "D_PAGED": not relocatable}
    names = [name for name, _ in BFD_FLAGS if present[name]]
    value = sum(bit for name, bit in BFD_FLAGS if present[name])
    return [f"architecture: kite32, flags {value:#010x}:", ", ".join(names),
            f"start address {elf['e_entry']:#010x}"]


def program_header_lines(elf) -> list[str]:
    """objdump -p: one two-line entry per PT_LOAD segment (nothing for an object)."""
    lines = []
    for seg in elf.iter_segments():
        flags = "".join(letter if seg["p_flags"] & bit else "-" for bit, letter in ((4, "r"), (2, "w"), (1, "x")))
        align = max(seg["p_align"], 1).bit_length() - 1
        lines += [f"    LOAD off    {seg['p_offset']:#010x} vaddr {seg['p_vaddr']:#010x} "
                  f"paddr {seg['p_paddr']:#010x} align 2**{align}",
                  f"         filesz {seg['p_filesz']:#010x} memsz {seg['p_memsz']:#010x} flags {flags}"]
    return ["Program Header:", *lines] if lines else []


def headers_lines(elf) -> list[str]:
    """objdump -h."""
    lines = ["Sections:", "Idx Name          Size      VMA       LMA       File off  Algn  Flags"]
    for number, (_, sec) in enumerate(content_sections(elf)):
        align = max(sec["sh_addralign"], 1).bit_length() - 1
        lines.append(f"{number:3d} {sec.name:<13} {sec['sh_size']:08x}  {sec['sh_addr']:08x}  "
                     f"{load_address(elf, sec):08x}  {sec['sh_offset']:08x}  2**{align:<3} "
                     f"{flags_text(sec['sh_flags'])}")
    return lines


def symbol_table_lines(elf) -> list[str]:
    """objdump -t: `00100000 g     F .text\t00000010 _start`."""
    lines = ["SYMBOL TABLE:"]
    for sym in file_symbols(elf):
        bind = {"STB_LOCAL": "l", "STB_GLOBAL": "g"}.get(sym.bind, " ")
        weak = "w" if sym.bind == "STB_WEAK" else " "
        kind = {"STT_FUNC": "F", "STT_OBJECT": "O"}.get(sym.type, " ")
        lines.append(f"{sym.value:08x} {bind}{weak}    {kind} {section_name(elf, sym.shndx)}\t"
                     f"{sym.size:08x} {sym.name}")
    return lines


def relocation_records(elf) -> dict[str, list[tuple[int, str, str]]]:
    """Target section name -> [(r_offset, type name, `symbol+0x4`)] for every SHT_RELA section."""
    records = {}
    symtab = elf.get_section_by_name(".symtab")
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_RELA":
            continue
        entries = []
        for rel in sec.iter_relocations():
            sym = symtab.get_symbol(rel["r_info_sym"])
            name = sym.name or section_name(elf, sym["st_shndx"])
            addend = rel["r_addend"]
            value = name + (f"+{addend:#x}" if addend > 0 else f"-{-addend:#x}" if addend else "")
            type_name = isa.RELOC_NAMES.get(rel["r_info_type"], str(rel["r_info_type"]))
            entries.append((rel["r_offset"], type_name, value))
        records[elf.get_section(sec["sh_info"]).name] = entries
    return records


def relocation_lines(elf, options: DumpOptions) -> list[str]:
    """objdump -r (the entries within the address range)."""
    lines = []
    for target, entries in relocation_records(elf).items():
        lines += [f"RELOCATION RECORDS FOR [{target}]:", "OFFSET   TYPE              VALUE"]
        lines += [f"{offset:08x} {type_name:<17} {value}" for offset, type_name, value in entries
                  if options.wanted(offset)]
        lines.append("")
    return lines[:-1]


# --- contents ------------------------------------------------------------------------------------


def contents_lines(elf, options: DumpOptions) -> list[str]:
    """objdump -s: every section with contents, 16 bytes a line as hex words and characters."""
    lines = []
    for _, sec in content_sections(elf):
        base, data = sec["sh_addr"], b"" if sec["sh_type"] == "SHT_NOBITS" else sec.data()
        start = max(options.start, base)
        stop = base + len(data) if options.stop is None else min(options.stop, base + len(data))
        if not data or start >= stop:
            continue
        width = max(4, len(f"{stop:x}"))
        lines.append(f"Contents of section {sec.name}:")
        lines += [_contents_line(address, data[address - base:min(address + 16, stop) - base], width)
                  for address in range(start, stop, 16)]
    return lines


def _contents_line(address: int, chunk: bytes, width: int) -> str:
    """` 0010 0000204a 000040a0 000004a4           .. J..@.....    `."""
    hexes = "".join(f"{chunk[i]:02x}" if i < len(chunk) else "  " for i in range(16))
    groups = " ".join(hexes[i:i + 8] for i in range(0, 32, 8))
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
    return f" {address:0{width}x} {groups}  {text:<16}"


# --- disassembly -----------------------------------------------------------------------------------


class Labels:
    """Symbol names by address for one section: labels at an address, and `name+0x8` lookup."""

    def __init__(self, pairs: list[tuple[int, str]]):
        self.at: dict[int, list[str]] = {}
        for address, name in sorted(pairs):
            self.at.setdefault(address, []).append(name)
        self.addresses = sorted(self.at)

    def __call__(self, address: int) -> str | None:
        index = bisect.bisect_right(self.addresses, address) - 1
        if index < 0:
            return None
        base = self.addresses[index]
        name = self.at[base][0]
        return f"{name}+{address - base:#x}" if address != base else name


def section_labels(elf, index: int) -> Labels:
    """Labels of the symbols defined in section `index` (objects) or anywhere (images)."""
    relocatable = elf["e_type"] == "ET_REL"
    return Labels([(sym.value, sym.name) for sym in file_symbols(elf)
                   if sym.shndx == index or (not relocatable and isinstance(sym.shndx, int))])


@dataclass
class SourceShower:
    """-l and -S: the lines printed before an instruction whose source line differs from the
    last one's.  -S shows the source, from up to CONTEXT_LINES lines before the first line met
    in a file, then the lines after the last one shown (a line already shown: just that line).
    A source file that cannot be read shows nothing and is named once in `warnings`."""
    with_names: bool
    with_source: bool
    last: SourceLine | None = None
    texts: dict[str, list[str] | None] = field(default_factory=dict)
    shown_up_to: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def before(self, source: SourceLine | None) -> list[str]:
        """What to print before an instruction from `source` (None: not in the line table)."""
        if source is None or source == self.last:
            return []
        self.last = source
        lines = [printable(str(source))] if self.with_names else []
        return lines + (self._source_lines(source) if self.with_source else [])

    def _source_lines(self, source: SourceLine) -> list[str]:
        text = self._text(source.file)
        if text is None:
            return []
        shown = self.shown_up_to.get(source.file, 0)
        first = max(1, source.line - CONTEXT_LINES)
        if shown >= first:
            first = shown + 1 if shown < source.line else source.line
        self.shown_up_to[source.file] = max(shown, source.line)
        return text[first - 1:source.line]

    def _text(self, name: str) -> list[str] | None:
        if name not in self.texts:
            try:
                self.texts[name] = read_limited(name).decode("utf-8", errors="replace").split("\n")
            except OSError as error:
                self.texts[name] = None
                self.warnings.append(f"warning: cannot read source file '{printable(name)}': {error.strerror}")
        return self.texts[name]


def disassembly_lines(elf, data: bytes, path: str, options: DumpOptions, shower: SourceShower) -> list[str]:
    """objdump -d (executable sections) or -D (every section with contents)."""
    relocations = relocation_records(elf)
    table = read_line_table(data, path) if shower.with_names or shower.with_source else None
    lines = []
    for index, sec in content_sections(elf):
        code = sec["sh_flags"] & SHF_EXECINSTR or options.disassemble_all
        if not code or sec["sh_type"] == "SHT_NOBITS":
            continue
        lookup = (lambda address, name=sec.name: table.lookup(address, name)) if table else None
        body = _section_disassembly(sec, section_labels(elf, index), relocations.get(sec.name, []),
                                    options, lookup, shower)
        lines += [f"Disassembly of section {sec.name}:", *body, ""]
    return lines[:-1]


def _section_disassembly(sec, labels: Labels, relocations: list[tuple[int, str, str]],
                         options: DumpOptions, lookup, shower: SourceShower) -> list[str]:
    """One section's words in the address range: labels, -l/-S lines, the words, relocations."""
    base, data = sec["sh_addr"], sec.data()
    by_offset: dict[int, list[tuple[str, str]]] = {}
    for offset, type_name, value in relocations:
        by_offset.setdefault(offset, []).append((type_name, value))
    lines = []
    for offset in range(0, len(data), 4):
        address = base + offset
        if not options.wanted(address):
            continue
        for name in labels.at.get(address, []):
            lines += ["", f"{address:08x} <{name}>:"]
        if lookup:
            lines += shower.before(lookup(address))
        lines.append(_word_line(address, data[offset:offset + 4], labels, options.aliases))
        lines += [f"\t\t\t{address:x}: {type_name}\t{value}" for type_name, value in by_offset.get(offset, [])]
    return lines


def _word_line(address: int, chunk: bytes, labels: Labels, aliases: bool) -> str:
    """`  100004:\ta0400005\tcall . + 20  # ...`, or `.byte` for a last piece under 4 bytes."""
    if len(chunk) < 4:
        text = ".byte " + ", ".join(f"{byte:#04x}" for byte in chunk)
        return f"{address:8x}:\t{chunk.hex():<8}\t{text}"
    word = int.from_bytes(chunk, "little")
    return f"{address:8x}:\t{word:08x}\t{disassemble_word(word, address, labels, aliases)}"


# --- the report ------------------------------------------------------------------------------------


def objdump_lines(data: bytes, path: str, options: DumpOptions) -> tuple[list[str], list[str]]:
    """The whole report for one file, and the warnings to print on stderr."""
    elf = open_elf(data, path)
    shower = SourceShower(options.line_numbers, options.source)
    lines = ["", f"{path}:     file format elf32-kite32"]
    if options.file_header:
        lines += file_header_lines(elf)
    lines.append("")
    sections = ((options.private, lambda: program_header_lines(elf)),
                (options.headers, lambda: headers_lines(elf)),
                (options.syms, lambda: symbol_table_lines(elf)),
                (options.relocs, lambda: relocation_lines(elf, options)),
                (options.contents, lambda: contents_lines(elf, options)),
                (options.disassembling, lambda: disassembly_lines(elf, data, path, options, shower)))
    for wanted, render in sections:
        if wanted:
            part = render()
            lines += part + [""] if part else []
    return lines, shower.warnings

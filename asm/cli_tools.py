"""The kite-ld, kite-objdump and kite-nm commands (also `kite ld`, `kite objdump`, `kite nm`).

objdump and nm read ELF files through pyelftools (asm.elf.open_elf) and work on objects and
images alike.  Output formats are documented in docs/linker.md.  Every bad input is one line
`kite-TOOL: FILE: message` on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import bisect
import os

import click

from asm import isa
from asm.disasm import disassemble_word
from asm.elf import ElfFormatError, guarded, open_elf, read_file
from asm.files import write_atomically
from asm.linker import (
    DEFAULT_TEXT_ADDRESS, LayoutError, LinkError, LinkOptions, apply_layout, link_with_warnings,
    read_objects,
)
from asm.objfile import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE

CONTEXT = {"help_option_names": ["-h", "--help"]}
OBJDUMP_CONTEXT = {"help_option_names": ["--help"]}   # -h is --section-headers, as in GNU objdump


class Address(click.ParamType):
    """An integer in C notation (0x100000, 1048576, 0b1...), 0 to 0xFFFFFFFF."""
    name = "ADDR"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            number = int(value, 0)
        except ValueError:
            self.fail(f"{value!r} is not a number (use 0x... for hex)", param, ctx)
        if not 0 <= number <= 0xFFFFFFFF:
            self.fail(f"{value!r} is not a 32-bit address", param, ctx)
        return number


ADDRESS = Address()


def fail(tool: str, message: str) -> None:
    """Print `tool: message` to stderr and exit 1."""
    click.echo(f"{tool}: {message}", err=True)
    raise SystemExit(1)


# --- kite-ld ---------------------------------------------------------------------------------


def _section_start(text: str) -> tuple[str, int]:
    """NAME=ADDR from --section-start."""
    name, _, address = text.partition("=")
    if not name or not address:
        raise click.BadParameter(f"{text!r} is not NAME=ADDR", param_hint="--section-start")
    return name, ADDRESS.convert(address, None, None)


def _link_options(text_address, section_starts, entry, layout, load_offset) -> LinkOptions:
    """LinkOptions from the command line; the layout file first, command-line options over it."""
    options = LinkOptions()
    if layout:
        try:
            apply_layout(options, read_file(layout).decode("utf-8", errors="replace"), layout)
        except (ElfFormatError, LayoutError) as error:
            fail("kite-ld", str(error))
    if text_address is not None:
        options.text_address = options.section_starts[".text"] = text_address
    options.section_starts.update(_section_start(item) for item in section_starts)
    options.entry = entry or options.entry
    if load_offset is not None:
        options.load_offset, options.load_address = load_offset, None
    return options


@click.command("ld", context_settings=CONTEXT, epilog="""\b
Examples:
  kite-ld -o hello.elf hello.o
  kite-ld -Ttext 0xC0100000 --load-offset 0xC0000000 -o kernel.elf entry.o main.o
  kite-ld -T layout.toml -e kmain -o kernel.elf *.o""")
@click.option("-o", "output", default="a.out", show_default=True, metavar="OUT", help="The image to write.")
@click.option("-Ttext", "text_address", type=ADDRESS, default=None,
              help=f"Address of .text (default {DEFAULT_TEXT_ADDRESS:#010x}).")
@click.option("--section-start", "section_starts", multiple=True, metavar="NAME=ADDR",
              help="Address of output section NAME (repeatable).")
@click.option("-e", "entry", metavar="SYM", help="Entry symbol (default _start; must exist if given).")
@click.option("-T", "layout", metavar="LAYOUT.toml", help="Layout file (docs/linker.md).")
@click.option("--load-offset", type=ADDRESS, default=None,
              help="Link address minus load address: p_paddr = p_vaddr - N.")
@click.argument("objects", nargs=-1, required=True, metavar="OBJ...")
def ld_main(output, text_address, section_starts, entry, layout, load_offset, objects):
    """Link Kite32 objects into an ELF32 executable image."""
    inputs = [*objects, *([layout] if layout else [])]
    if any(os.path.realpath(output) == os.path.realpath(path) for path in inputs):
        fail("kite-ld", f"output file '{output}' would overwrite an input")
    options = _link_options(text_address, section_starts, entry, layout, load_offset)
    try:
        result = link_with_warnings(read_objects(list(objects)), options)
    except ElfFormatError as error:
        fail("kite-ld", str(error))
    except LinkError as error:
        for line in error.messages:
            click.echo(f"kite-ld: {line}", err=True)
        raise SystemExit(1) from None
    for warning in result.warnings:
        click.echo(f"kite-ld: {warning}", err=True)
    try:
        write_atomically(output, result.image, mode=0o777)
    except OSError as error:
        fail("kite-ld", f"{output}: cannot write: {error.strerror}")


# --- Reading ELF files for objdump and nm ----------------------------------------------------


class SymbolView:
    """A named symbol of a file: value, size, binding and type letters, section index or marker."""

    def __init__(self, sym):
        self.name = sym.name
        self.value = sym["st_value"]
        self.size = sym["st_size"]
        self.bind = sym["st_info"]["bind"]
        self.type = sym["st_info"]["type"]
        self.shndx = sym["st_shndx"]


def file_symbols(elf) -> list[SymbolView]:
    """Every symbol with a name (not STT_SECTION / STT_FILE), in table order."""
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        return []
    return [SymbolView(sym) for sym in symtab.iter_symbols()
            if sym.name and sym["st_info"]["type"] not in ("STT_SECTION", "STT_FILE")]


def section_name(elf, shndx) -> str:
    """The name of the section a symbol's st_shndx points at, or *UND* / *ABS*."""
    if shndx == "SHN_UNDEF":
        return "*UND*"
    if shndx == "SHN_ABS":
        return "*ABS*"
    return elf.get_section(shndx).name


# --- kite-nm -----------------------------------------------------------------------------------


def nm_letter(elf, sym: SymbolView) -> str:
    """GNU nm's letter: U A T D R B N (lowercase for locals), W/w for weak defined/undefined."""
    if sym.bind == "STB_WEAK":
        return "w" if sym.shndx == "SHN_UNDEF" else "W"
    if sym.shndx == "SHN_UNDEF":
        return "U"
    if sym.shndx == "SHN_ABS":
        letter = "A"
    else:
        section = elf.get_section(sym.shndx)
        flags = section["sh_flags"]
        letter = ("B" if section["sh_type"] == "SHT_NOBITS" else "T" if flags & SHF_EXECINSTR
                  else "D" if flags & SHF_WRITE else "R" if flags & SHF_ALLOC else "N")
    return letter.lower() if sym.bind == "STB_LOCAL" else letter


def nm_lines(data: bytes, path: str, numeric: bool) -> list[str]:
    """`00100000 T _start` lines (undefined: 8 blanks for the value), sorted by name or address."""
    elf = open_elf(data, path)
    symbols = file_symbols(elf)
    if numeric:
        symbols.sort(key=lambda s: (s.shndx != "SHN_UNDEF", s.value, s.name))
    else:
        symbols.sort(key=lambda s: (s.name, s.value))
    lines = []
    for sym in symbols:
        letter = nm_letter(elf, sym)
        value = " " * 8 if letter in "Uw" else f"{sym.value:08x}"
        lines.append(f"{value} {letter} {sym.name}")
    return lines


@click.command("nm", context_settings=CONTEXT, epilog="""\b
Examples:
  kite-nm hello.o
  kite-nm -n guestos/build/hello.elf""")
@click.option("-n", "--numeric-sort", "numeric", is_flag=True, help="Sort by address, not by name.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def nm_main(numeric, files):
    """List the symbols of Kite32 objects and images (GNU nm format)."""
    status = 0
    for path in files:
        try:
            lines = guarded(path, lambda: nm_lines(read_file(path), path, numeric))
        except ElfFormatError as error:
            click.echo(f"kite-nm: {error}", err=True)
            status = 1
            continue
        if len(files) > 1:
            click.echo(f"\n{path}:")
        for line in lines:
            click.echo(line)
    raise SystemExit(status)


# --- kite-objdump ------------------------------------------------------------------------------


def _flags_text(flags: int) -> str:
    return "".join(letter for bit, letter in ((SHF_WRITE, "W"), (SHF_ALLOC, "A"), (SHF_EXECINSTR, "X"))
                   if flags & bit)


def load_address(elf, section) -> int:
    """A section's load address (LMA): through the PT_LOAD segment holding it, else its vma."""
    addr = section["sh_addr"]
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_LOAD" and segment["p_vaddr"] <= addr < segment["p_vaddr"] + segment["p_memsz"]:
            return segment["p_paddr"] + addr - segment["p_vaddr"]
    return addr


def content_sections(elf):
    """(index, section) of the sections objdump -h lists: everything but null, symtab, strtab, rela."""
    return [(index, sec) for index, sec in enumerate(elf.iter_sections())
            if sec["sh_type"] not in ("SHT_NULL", "SHT_SYMTAB", "SHT_STRTAB", "SHT_RELA")]


def headers_lines(elf) -> list[str]:
    """objdump -h."""
    lines = ["Sections:", "Idx Name          Size      VMA       LMA       File off  Algn  Flags"]
    for number, (_, sec) in enumerate(content_sections(elf)):
        align = max(sec["sh_addralign"], 1).bit_length() - 1
        lines.append(f"{number:3d} {sec.name:<13} {sec['sh_size']:08x}  {sec['sh_addr']:08x}  "
                     f"{load_address(elf, sec):08x}  {sec['sh_offset']:08x}  2**{align:<3} "
                     f"{_flags_text(sec['sh_flags'])}")
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


def relocation_lines(elf) -> list[str]:
    """objdump -r."""
    lines = []
    for target, entries in relocation_records(elf).items():
        lines += [f"RELOCATION RECORDS FOR [{target}]:", "OFFSET   TYPE              VALUE"]
        lines += [f"{offset:08x} {type_name:<17} {value}" for offset, type_name, value in entries]
        lines.append("")
    return lines[:-1]


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


def section_labels(elf, index: int, sec) -> Labels:
    """Labels of the symbols defined in section `index` (objects) or anywhere (images)."""
    relocatable = elf["e_type"] == "ET_REL"
    return Labels([(sym.value, sym.name) for sym in file_symbols(elf)
                   if sym.shndx == index or (not relocatable and isinstance(sym.shndx, int))])


def disassembly_lines(elf) -> list[str]:
    """objdump -d: every executable section, with labels and inline relocations."""
    relocations = relocation_records(elf)
    lines = []
    for index, sec in content_sections(elf):
        if not sec["sh_flags"] & SHF_EXECINSTR or sec["sh_type"] == "SHT_NOBITS":
            continue
        lines += [f"Disassembly of section {sec.name}:"]
        lines += _section_disassembly(sec, section_labels(elf, index, sec), relocations.get(sec.name, []))
        lines.append("")
    return lines[:-1]


def _section_disassembly(sec, labels: Labels, relocations: list[tuple[int, str, str]]) -> list[str]:
    base, data = sec["sh_addr"], sec.data()
    by_offset: dict[int, list[tuple[str, str]]] = {}
    for offset, type_name, value in relocations:
        by_offset.setdefault(offset, []).append((type_name, value))
    lines = []
    for offset in range(0, len(data), 4):
        address = base + offset
        for name in labels.at.get(address, []):
            lines += ["", f"{address:08x} <{name}>:"]
        chunk = data[offset:offset + 4]
        if len(chunk) < 4:
            text = ".byte " + ", ".join(f"{byte:#04x}" for byte in chunk)
            lines.append(f"{address:8x}:\t{chunk.hex():<8}\t{text}")
            continue
        word = int.from_bytes(chunk, "little")
        lines.append(f"{address:8x}:\t{word:08x}\t{disassemble_word(word, address, labels)}")
        lines += [f"\t\t\t{address:x}: {type_name}\t{value}" for type_name, value in by_offset.get(offset, [])]
    return lines


def objdump_lines(data: bytes, path: str, disassemble: bool, headers: bool, syms: bool,
                  relocs: bool) -> list[str]:
    """The whole objdump report for one file."""
    elf = open_elf(data, path)
    lines = ["", f"{path}:     file format elf32-kite32", ""]
    for wanted, render in ((headers, headers_lines), (syms, symbol_table_lines),
                           (relocs, relocation_lines), (disassemble, disassembly_lines)):
        if wanted:
            lines += render(elf) + [""]
    return lines


@click.command("objdump", context_settings=OBJDUMP_CONTEXT, epilog="""\b
Examples:
  kite-objdump -d hello.elf
  kite-objdump -h -t -r hello.o""")
@click.option("-d", "--disassemble", is_flag=True, help="Disassemble the executable sections.")
@click.option("-h", "--section-headers", "headers", is_flag=True, help="List the section headers.")
@click.option("-t", "--syms", is_flag=True, help="List the symbol table.")
@click.option("-r", "--reloc", "relocs", is_flag=True, help="List the relocations.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def objdump_main(disassemble, headers, syms, relocs, files):
    """Show the contents of Kite32 objects and images."""
    if not (disassemble or headers or syms or relocs):
        fail("kite-objdump", "nothing to show: give at least one of -d, -h, -t, -r")
    status = 0
    for path in files:
        try:
            lines = guarded(path, lambda: objdump_lines(read_file(path), path, disassemble, headers,
                                                        syms, relocs))
        except ElfFormatError as error:
            click.echo(f"kite-objdump: {error}", err=True)
            status = 1
            continue
        click.echo("\n".join(lines).rstrip("\n"))
    raise SystemExit(status)

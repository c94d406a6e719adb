"""The click commands of kite-ld, kite-objdump and kite-nm (asm/cli_tools.py builds them on first
use).  Rendering lives in asm/objdump.py, asm/nm.py and asm/linkmap.py; output formats are in
docs/linker.md.  Exit status: 0 success; 1 a bad input or a failed link (one line
`kite-TOOL: FILE: message` per problem on stderr, never a traceback); 2 a usage error.
"""

from __future__ import annotations

import os

import click

from asm.elf import ElfFormatError, guarded, read_file
from asm.files import write_atomically
from asm.lazycli import version_option
from asm.linker import (
    DEFAULT_TEXT_ADDRESS, LayoutError, LinkError, LinkOptions, apply_layout, link_with_warnings,
    read_objects,
)
from asm.linkmap import map_text
from asm.nm import NmOptions, file_header, nm_lines
from asm.objdump import DumpOptions, objdump_lines

CONTEXT = {"help_option_names": ["-h", "--help"]}
OBJDUMP_CONTEXT = {"help_option_names": ["--help"]}   # -h is --section-headers, as in GNU objdump
DISASSEMBLER_OPTIONS = ("no-aliases",)                # what -M takes


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


def _check_outputs(outputs: list[str], inputs: list[str]) -> None:
    """Refuse an output (image or map) that is an input or the other output."""
    for number, output in enumerate(outputs):
        others = inputs + outputs[:number]
        if any(os.path.realpath(output) == os.path.realpath(path) for path in others):
            fail("kite-ld", f"output file '{output}' would overwrite an input")


def _write(path: str, data: bytes, mode: int) -> None:
    try:
        write_atomically(path, data, mode=mode)
    except OSError as error:
        fail("kite-ld", f"{path}: cannot write: {error.strerror}")


@click.command("ld", context_settings=CONTEXT, epilog="""\b
Examples:
  kite-ld -o hello.elf hello.o
  kite-ld -Ttext 0xC0100000 --load-offset 0xC0000000 -o kernel.elf entry.o main.o
  kite-ld -T layout.toml -e kmain -Map kernel.map -o kernel.elf *.o""")
@click.option("-o", "output", default="a.out", show_default=True, metavar="OUT", help="The image to write.")
@click.option("-Ttext", "text_address", type=ADDRESS, default=None,
              help=f"Address of .text (default {DEFAULT_TEXT_ADDRESS:#010x}).")
@click.option("--section-start", "section_starts", multiple=True, metavar="NAME=ADDR",
              help="Address of output section NAME (repeatable).")
@click.option("-e", "--entry", "entry", metavar="SYM", help="Entry symbol (default _start; must exist if given).")
@click.option("-T", "layout", metavar="LAYOUT.toml", help="Layout file (docs/linker.md).")
@click.option("--load-offset", type=ADDRESS, default=None,
              help="Link address minus load address: p_paddr = p_vaddr - N.")
@click.option("-Map", "--Map", "map_file", metavar="FILE",
              help="Write a link map (GNU ld's format) to FILE.")
@version_option("kite-ld")
@click.argument("objects", nargs=-1, required=True, metavar="OBJ...")
def ld_command(output, text_address, section_starts, entry, layout, load_offset, map_file, objects):
    """Link Kite32 objects into an ELF32 executable image."""
    _check_outputs([output, *([map_file] if map_file else [])], [*objects, *([layout] if layout else [])])
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
    _write(output, result.image, 0o777)
    if map_file:
        _write(map_file, map_text(result.placement, output).encode(), 0o666)


# --- kite-nm -----------------------------------------------------------------------------------


@click.command("nm", context_settings=CONTEXT, epilog="""\b
Examples:
  kite-nm hello.o
  kite-nm -n guestos/build/hello.elf
  kite-nm -g -S -A *.o
  kite-nm -u -P main.o""")
@click.option("-n", "--numeric-sort", "numeric", is_flag=True, help="Sort by address, not by name.")
@click.option("-g", "--extern-only", is_flag=True, help="Only global and weak symbols (defined or not).")
@click.option("-u", "--undefined-only", is_flag=True, help="Only undefined symbols.")
@click.option("-S", "--print-size", is_flag=True, help="Print the size of each defined symbol after its value.")
@click.option("-A", "-o", "--print-file-name", "file_names", is_flag=True,
              help="Name the file on every line.")
@click.option("-P", "--portability", "posix", is_flag=True, help="The POSIX format: NAME TYPE VALUE SIZE.")
@version_option("kite-nm")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def nm_command(files, **flags):
    """List the symbols of Kite32 objects and images (GNU nm format)."""
    options = NmOptions(**flags)
    status = 0
    for path in files:
        try:
            lines = guarded(path, lambda: nm_lines(read_file(path), path, options))
        except ElfFormatError as error:
            click.echo(f"kite-nm: {error}", err=True)
            status = 1
            continue
        for line in (file_header(path, options) if len(files) > 1 else []) + lines:
            click.echo(line)
    raise SystemExit(status)


# --- kite-objdump ------------------------------------------------------------------------------


def _disassembler_options(ctx, param, values) -> bool:
    """-M OPT[,OPT]: whether aliases are printed (only `no-aliases` is known)."""
    given = [item.strip() for value in values for item in value.split(",") if item.strip()]
    for item in given:
        if item not in DISASSEMBLER_OPTIONS:
            raise click.BadParameter(f"unknown disassembler option {item!r} (known: "
                                     f"{', '.join(DISASSEMBLER_OPTIONS)})")
    return "no-aliases" not in given


def _dump_options(flags: dict) -> DumpOptions:
    """DumpOptions from the flags; -x is -f -p -h -t -r."""
    every_header = flags.pop("all_headers")
    options = DumpOptions(**flags)
    if every_header:
        options.file_header = options.private = options.headers = options.syms = options.relocs = True
    return options


@click.command("objdump", context_settings=OBJDUMP_CONTEXT, epilog="""\b
Examples:
  kite-objdump -d hello.elf
  kite-objdump -h -t -r hello.o
  kite-objdump -S -l --start-address=0x100000 --stop-address=0x100020 hello.elf
  kite-objdump -x -s -M no-aliases hello.o""")
@click.option("-d", "--disassemble", is_flag=True, help="Disassemble the executable sections.")
@click.option("-D", "--disassemble-all", is_flag=True, help="Disassemble every section with contents.")
@click.option("-S", "--source", is_flag=True, help="Show the source lines with the disassembly (implies -d).")
@click.option("-l", "--line-numbers", is_flag=True, help="Show file:line with the disassembly.")
@click.option("-s", "--full-contents", "contents", is_flag=True, help="Show every section's contents in hex.")
@click.option("-f", "--file-headers", "file_header", is_flag=True, help="Show the file header.")
@click.option("-p", "--private-headers", "private", is_flag=True, help="Show the program headers.")
@click.option("-h", "--section-headers", "headers", is_flag=True, help="List the section headers.")
@click.option("-x", "--all-headers", is_flag=True, help="All the headers: -f -p -h -t -r.")
@click.option("-t", "--syms", is_flag=True, help="List the symbol table.")
@click.option("-r", "--reloc", "relocs", is_flag=True, help="List the relocations.")
@click.option("--start-address", "start", type=ADDRESS, default=0, help="Show nothing below ADDR.")
@click.option("--stop-address", "stop", type=ADDRESS, default=None, help="Show nothing at or above ADDR.")
@click.option("-M", "--disassembler-options", "aliases", multiple=True, metavar="OPT",
              callback=_disassembler_options, help="no-aliases: real instructions, not pseudo-instructions.")
@version_option("kite-objdump")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def objdump_command(files, **flags):
    """Show the contents of Kite32 objects and images."""
    options = _dump_options(flags)
    shown = (options.file_header, options.private, options.headers, options.syms, options.relocs,
             options.contents, options.disassembling)
    if not any(shown):
        fail("kite-objdump", "nothing to show: give at least one of -d, -D, -S, -s, -f, -p, -h, -x, -t, -r")
    status = 0
    for path in files:
        try:
            lines, warnings = guarded(path, lambda: objdump_lines(read_file(path), path, options))
        except ElfFormatError as error:
            click.echo(f"kite-objdump: {error}", err=True)
            status = 1
            continue
        click.echo("\n".join(lines).rstrip("\n"))
        for warning in warnings:
            click.echo(f"kite-objdump: {warning}", err=True)
    raise SystemExit(status)

"""`kite-as`: assemble one Kite32 source file into an ELF relocatable object.

`main` stands for the click command and builds it on first use
(asm/lazycli.py's LazyCommand), so that `kite-as --version` imports nothing
but asm/lazycli.py and asm/version.py (which reads the version without
importlib.metadata); any other use imports click, and the file helpers, the
assembler and lark are imported when there is something to assemble.
"""

from __future__ import annotations

import sys

from asm.lazycli import LazyCommand, version_option

EPILOG = """\b
Example:
  kite-as -D DEBUG -D STACK=0x8000 -I include -o boot.o boot.s

Errors are printed as file:line:col: error: message, with the source line
and a caret; the exit code is then 1 and no output file is written."""
PROG = "kite-as"


def parse_define(text: str) -> tuple[str, int]:
    """NAME or NAME=VALUE (VALUE: decimal, 0x hex, 0b binary, 0o octal, optionally
    negative, at most 0xFFFFFFFF in size like a number in the source) -> (name, value)."""
    import click
    name, _, value = text.partition("=")
    if not name or not (name[0].isalpha() or name[0] in "_.$") or \
            not all(c.isalnum() or c in "_.$" for c in name):
        raise click.BadParameter(f"'{text}' is not NAME or NAME=VALUE")
    if not value:
        return name, 1
    try:
        number = int(value, 0)
    except ValueError:
        raise click.BadParameter(f"value of {name} is not an integer: '{value}'") from None
    if abs(number) > 0xFFFFFFFF:
        raise click.BadParameter(f"value of {name} does not fit in 32 bits: '{value}'")
    return name, number


def define_callback(ctx, param, values) -> dict[str, int]:
    return dict(parse_define(v) for v in values)


def build_command():
    """The click command of `kite-as` (imports click)."""
    import click
    from pathlib import Path

    @click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
    @click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                  help="Object file to write (default: SOURCE with the suffix .o).")
    @click.option("-D", "--define", "defines", multiple=True, metavar="NAME[=VALUE]",
                  callback=define_callback, help="Define NAME (default value 1) for .if/.ifdef and expressions.")
    @click.option("-I", "--include-dir", "include_dirs", multiple=True, metavar="DIR",
                  help="Search DIR for .include/.incbin files (after the source's directory).")
    @version_option(PROG)
    def main(source: Path, output: Path | None, defines: dict[str, int], include_dirs: tuple[str, ...]) -> None:
        """Assemble SOURCE (Kite32 assembly) into an ELF32 relocatable object."""
        output = output or source.with_suffix(".o")
        if output.resolve() == source.resolve():
            fail(f"output file '{output}' would overwrite the source")
        text = read_source(source)
        data = assemble_to_bytes(text, str(source), defines, list(include_dirs))
        write_output(output, data)
    return main


main = LazyCommand(build_command, PROG)


def fail(message: str) -> None:
    """Print `kite-as: error: message` and exit with status 1."""
    import click
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(1)


def read_source(source) -> str:
    """The text of the source file (at most asm.files.MAX_INPUT_SIZE bytes); exits with an
    error if it cannot be read or is not UTF-8."""
    import click
    from asm.diagnostics import Diagnostic, decode_utf8
    from asm.files import read_limited
    try:
        raw = read_limited(source)
    except OSError as error:
        fail(f"cannot read '{source}': {error.strerror}")
    text, problem = decode_utf8(raw)
    if problem:
        line, col, message = problem
        shown = raw.split(b"\n")[line - 1].decode("utf-8", errors="replace")
        click.echo(Diagnostic(str(source), line, col, message, shown).render(), err=True)
        sys.exit(1)
    return text


def assemble_to_bytes(text: str, filename: str, defines: dict[str, int], include_dirs: list[str]) -> bytes:
    """The ELF object for `text`; prints the diagnostics and exits 1 on errors."""
    import click
    from asm.assembler import assemble
    from asm.diagnostics import AssemblyError
    from asm.elf import write_object
    try:
        return write_object(assemble(text, filename, defines, include_dirs))
    except AssemblyError as error:
        click.echo(str(error), err=True)
        count = len(error.diagnostics)
        click.echo(f"{PROG}: {count} error{'s' * (count != 1)}, no output written", err=True)
        sys.exit(1)


def write_output(output, data: bytes) -> None:
    """Write the object atomically; a failure is one clear line and exit 1."""
    from asm.files import write_atomically
    try:
        write_atomically(output, data)
    except OSError as error:
        fail(f"cannot write '{output}': {error.strerror}")

"""`kite run`: boot an ELF image on the Kite32 machine.

`--bare` selects the bare machine (the image owns the hardware).  The VMM's
modes will be further flags selecting another `Runner` in RUNNERS; everything
else (loading, console, stats, exit codes) is shared.

Exit codes: the guest's (power device, or 0 after halt); 124 when the
instruction limit is reached; 125 when the machine stops on a fault (with a
register dump); 2 for a bad image, disk or option.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from typing import Callable, TextIO

import click

from asm.isa import MAX_RAM, PAGE_SIZE
from vmm.machine.costs import DEFAULT_COST_MODEL, load_cost_model
from vmm.machine.errors import KiteError

DEFAULT_MEM = "16M"
SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report it


class MemSize(click.ParamType):
    """A RAM size like 65536, 64K, 16M or 1G: a multiple of 4 KiB, at most isa.MAX_RAM."""

    name = "SIZE"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"(\d+)([KMG]?)", value.strip(), re.IGNORECASE)
        if not match:
            self.fail(f"'{value}' is not a size (examples: 65536, 64K, 16M, 1G)", param, ctx)
        size = int(match.group(1)) * SIZE_SUFFIXES[match.group(2).upper()]
        if size == 0 or size % PAGE_SIZE:
            self.fail(f"'{value}' is not a positive multiple of {PAGE_SIZE // 1024} KiB", param, ctx)
        if size > MAX_RAM:
            self.fail(f"'{value}' is more than the {MAX_RAM >> 20} MiB below the MMIO region", param, ctx)
        return size


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".kite-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def format_stats(stats: dict) -> str:
    """The --stats report: one `name: value` line per figure, nested tables indented."""
    lines = ["kite: stats:"]
    for name, value in stats.items():
        if isinstance(value, dict):
            lines.append(f"  {name}:" + ("" if value else " none"))
            lines.extend(f"    {key}: {count}" for key, count in value.items())
        else:
            lines.append(f"  {name}: {value}")
    return "\n".join(lines)


def console_input(input_file: str | None, input_text: str | None):
    """The UART's input: --input FILE, --input-text TEXT, or stdin."""
    from vmm.machine.devices.uart import ConsoleInput
    if input_text is not None:
        return ConsoleInput(input_text.encode("utf-8"))
    if input_file is not None:
        try:
            with open(input_file, "rb") as source:
                return ConsoleInput(source.read())
        except OSError as error:
            raise KiteError(f"{input_file}: cannot read input: {error.strerror}") from None
    stdin = sys.stdin.buffer
    return ConsoleInput.from_stdin(stdin, stdin.isatty())


def open_trace(path: str | None) -> tuple[Callable[[str], None] | None, TextIO | None]:
    """(emit, file to close) for --trace; '-' is stderr."""
    if path is None:
        return None, None
    if path == "-":
        return (lambda line: click.echo(line, err=True)), None
    try:
        trace_file = open(path, "w")
    except OSError as error:
        raise KiteError(f"{path}: cannot write trace: {error.strerror}") from None
    return (lambda line: trace_file.write(line + "\n")), trace_file


def run_bare(image, modules, mem, disk, disk_readonly, max_instructions, trace, stats, stats_json,
             cmdline, input_file, input_text, cost_model) -> int:
    """Boot `image` on the bare machine; returns the process exit code.
    Raises KiteError for bad images, disks and files."""
    from vmm.machine.devices.disk import DiskImage
    from vmm.machine.machine import Machine
    model = load_cost_model(cost_model) if cost_model else DEFAULT_COST_MODEL
    disk_image = DiskImage.open(disk, read_only=disk_readonly) if disk else None
    machine = Machine(mem, disk=disk_image, console_in=console_input(input_file, input_text),
                      console_out=sys.stdout.buffer, cmdline=cmdline,
                      cost_model=model)
    machine.load(image, list(modules))
    emit, trace_file = open_trace(trace)
    if emit is not None:
        machine.set_trace(emit)
    try:
        result = machine.run(max_instructions)
    finally:
        if trace_file is not None:
            trace_file.close()
    report(machine, result, stats, stats_json)
    return result.exit_code


def report(machine, result, stats: bool, stats_json: str | None) -> None:
    """The end-of-run messages on stderr and the --stats-json file."""
    from vmm.machine.machine import REASON_FAULT, REASON_NO_INTERRUPT_SOURCE
    if result.message:
        click.echo(f"kite: stopped: {result.message}", err=True)
    if result.reason in (REASON_FAULT, REASON_NO_INTERRUPT_SOURCE):
        click.echo(machine.register_dump(), err=True)
    if stats:
        click.echo(format_stats(result.stats), err=True)
    if stats_json:
        try:
            write_atomically(stats_json, json.dumps(result.stats, indent=2, sort_keys=True) + "\n")
        except OSError as error:
            raise KiteError(f"{stats_json}: cannot write stats: {error.strerror}") from None


# machine selector flag -> function booting an image on that machine
RUNNERS = {"bare": run_bare}


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: kite run --bare guestos/build/boot_demo.elf --stats")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--bare", is_flag=True, help="Run on the bare machine (the image owns the hardware).")
@click.option("--module", "modules", multiple=True, type=click.Path(dir_okay=False),
              help="A boot module (Kite32 ELF file) to load after the kernel; repeatable.")
@click.option("--mem", type=MemSize(), default=DEFAULT_MEM, show_default=True,
              help="RAM size, e.g. 64K, 16M, 1G (multiple of 4 KiB).")
@click.option("--disk", type=click.Path(dir_okay=False), help="Disk image (a multiple of 512 bytes).")
@click.option("--disk-readonly", is_flag=True, help="Never write the guest's disk writes back.")
@click.option("--max-instructions", type=click.IntRange(min=1),
              help="Stop (exit code 124) after this many instructions.")
@click.option("--trace", metavar="FILE", help="Write every instruction and trap to FILE ('-': stderr).")
@click.option("--stats", is_flag=True, help="Print the counters on stderr at the end.")
@click.option("--stats-json", metavar="FILE", help="Write the counters as JSON to FILE.")
@click.option("--cmdline", default="", help="The kernel command line (in the boot-info block).")
@click.option("--input", "input_file", type=click.Path(dir_okay=False),
              help="Console input from FILE instead of stdin.")
@click.option("--input-text", help="Console input given inline instead of stdin.")
@click.option("--cost-model", type=click.Path(dir_okay=False),
              help="JSON or TOML file overriding the cycle costs.")
def run(image, bare, **options) -> None:
    """Boot the Kite32 ELF IMAGE.  With --bare it runs on the bare machine.

    Exit code: the guest's; 124 at the instruction limit; 125 on a fault;
    2 for a bad image, disk or option."""
    if not bare:
        raise click.UsageError("no machine selected: use --bare")
    try:
        exit_code = RUNNERS["bare"](image, **options)
    except KiteError as error:
        click.echo(f"kite: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("kite: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_code)

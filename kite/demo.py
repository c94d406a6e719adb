"""`kite demo`: the kit's main job, run by `make demo` after `make build`.

Until the VMM and the guest kernels land, the main job shows the toolchain and
the bare machine end to end: it disassembles the linked sample image and boots
the kernel-mode demo on the bare machine with its counters.  Each step is the
command a user would type, printed before it runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from kite.build import GUESTOS

BUILD = GUESTOS / "build"
IMAGES = ("hello.elf", "boot_demo.elf")
# (title, kite arguments, the exit code that step must give)
STEPS = (
    ("The sample, assembled and linked by kite-as and kite-ld, disassembled by kite-objdump:",
     ["objdump", "-d", "-t", str(BUILD / "hello.elf")], 0),
    ("The sample booted on the bare Kite32 machine:",
     ["run", "--bare", str(BUILD / "hello.elf")], 0),
    ("A kernel-mode program: trap vector, page tables, paging on, one timer interrupt, exit code 7:",
     ["run", "--bare", str(BUILD / "boot_demo.elf"), "--stats"], 7),
)


def run_step(title: str, arguments: list[str]) -> int:
    """Print `title` and the command, run `kite ARGUMENTS`, return its exit code."""
    click.secho(f"\n== {title}", bold=True)
    click.echo("$ kite " + " ".join(_relative(argument) for argument in arguments))
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "kite", *arguments]).returncode


def _relative(argument: str) -> str:
    """Show paths inside the repository relative to it, as a user would type them."""
    path = Path(argument)
    root = GUESTOS.parent
    return str(path.relative_to(root)) if path.is_absolute() and path.is_relative_to(root) else argument


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: make demo   (builds the images first)")
def demo() -> None:
    """Disassemble the sample image and boot the demos on the bare machine."""
    missing = [name for name in IMAGES if not (BUILD / name).exists()]
    if missing:
        click.echo(f"kite demo: {', '.join(missing)} not built: run `kite build` first", err=True)
        raise SystemExit(1)
    failed = False
    for title, arguments, expected in STEPS:
        code = run_step(title, arguments)
        if code != expected:
            click.echo(f"kite demo: step exited {code}, expected {expected}", err=True)
            failed = True
    raise SystemExit(1 if failed else 0)

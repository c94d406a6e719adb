"""`kite demo`: the kit's main job, run by `make demo` after `make build`.

It shows the whole kit end to end, each step the command a user would type,
printed before it runs:

1. the toolchain: the sample assembled and linked by kite-as and kite-ld,
   disassembled by kite-objdump;
2. the bare machine: the sample booted;
3. the comparison: a representative set of the guest OS workloads (one per
   story: compute, system calls, page faults, fork) under bare, shadow
   paging with and without the production techniques, direct mapping and
   machine simulation, side by side (`kite compare`, two processes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from kite.build import GUESTOS

BUILD = GUESTOS / "build"
SAMPLE = BUILD / "hello.elf"
DEMO_WORKLOADS = "fib,nullcall,pagestress,spawnstorm"   # `kite compare` alone runs all of them


def steps(workloads: str | None) -> list[tuple[str, list[str]]]:
    """(title, kite arguments) of each step; every step must exit 0."""
    compare = ["compare", "-j", "2", "--workloads", workloads or DEMO_WORKLOADS]
    return [
        ("The sample, assembled and linked by kite-as and kite-ld, disassembled by kite-objdump:",
         ["objdump", "-d", str(SAMPLE)]),
        ("The sample booted on the bare Kite32 machine:", ["run", "--bare", str(SAMPLE)]),
        ("Guest OS workloads on the bare machine, under shadow paging (with and without the production "
         "techniques), under direct mapping and under machine simulation:", compare),
    ]


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
@click.option("--workloads", metavar="A,B", help=f"Compare these workloads (default: {DEMO_WORKLOADS}).")
def demo(workloads: str | None) -> None:
    """Disassemble and boot the sample, then compare the guest OS workloads."""
    if not SAMPLE.exists():
        click.echo(f"kite demo: {_relative(str(SAMPLE))} not built: run `kite build` first", err=True)
        raise SystemExit(1)
    failed = [arguments[0] for title, arguments in steps(workloads) if run_step(title, arguments) != 0]
    if failed:
        click.echo(f"kite demo: failed: kite {', kite '.join(failed)}", err=True)
    raise SystemExit(1 if failed else 0)

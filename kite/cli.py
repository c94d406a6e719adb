"""`kite`: the umbrella command.  Each subcommand lives with its subsystem and
is imported only when it is used, so `kite as` starts as fast as `kite-as`."""

from __future__ import annotations

import importlib

import click

# subcommand name -> "module:attribute" of its click command
SUBCOMMANDS = {
    "as": "asm.cli_as:main",
    "ld": "asm.cli_tools:ld_main",
    "objdump": "asm.cli_tools:objdump_main",
    "nm": "asm.cli_tools:nm_main",
    "run": "vmm.cli:run",
    "resume": "vmm.cli:resume",
    "migrate-receive": "vmm.cli:migrate_receive",
    "debug": "vmm.debug.cli:main",
    "build": "kite.build:build",
    "demo": "kite.demo:demo",
    "compare": "kite.compare:compare",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Example: kite as -o hello.o hello.s && kite ld -o hello.elf hello.o")
@click.version_option(package_name="kite", prog_name="kite")
def main() -> None:
    """Kite: the Kite32 toolchain, machine and VMM in one command.

    Every subcommand has its own --help."""

"""The kite-ld, kite-objdump and kite-nm console scripts (also `kite ld`, `kite objdump`, `kite nm`).

Each name stands for its click command in asm/tool_commands.py and builds it on first use
(asm/lazycli.py), so that `kite-ld --version` (and objdump's, nm's) imports neither click nor
pyelftools.
"""

from __future__ import annotations

from asm.lazycli import LazyCommand


def _command(name: str):
    """A builder for the click command `name` of asm/tool_commands.py."""
    def build():
        from asm import tool_commands
        return getattr(tool_commands, name)
    return build


ld_main = LazyCommand(_command("ld_command"), "kite-ld")
objdump_main = LazyCommand(_command("objdump_command"), "kite-objdump")
nm_main = LazyCommand(_command("nm_command"), "kite-nm")

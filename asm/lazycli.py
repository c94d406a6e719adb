"""Console scripts that start fast: a click command built on first use, and `--version`.

`LazyCommand(build, prog)` stands for the click command `build()` returns.  Called as a console
script with just `--version` it prints `PROG, version X` (the text of click's version_option)
having imported nothing but this module and asm/version.py; any other use builds the command,
and every attribute is the command's, so click (kite's command group, CliRunner) uses it as the
command itself.  `version_option(prog)` is the matching --version for the built command.
"""

from __future__ import annotations

import sys


def version_text(prog: str) -> str:
    """What --version prints: click's version_option message for `prog`."""
    from asm.version import installed_version
    return f"{prog}, version {installed_version()}"


def version_option(prog: str):
    """A click --version option (eager, no value) printing version_text(prog)."""
    import click

    def callback(ctx, param, value) -> None:
        if not value or ctx.resilient_parsing:
            return
        click.echo(version_text(prog), color=ctx.color)
        ctx.exit()
    return click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=callback,
                        help="Show the version and exit.")


class LazyCommand:
    """The click command returned by `build`, built on first use; see the module docstring."""

    def __init__(self, build, prog: str):
        self._build = build
        self._prog = prog
        self._command = None

    def _real(self):
        if self._command is None:
            self._command = self._build()
        return self._command

    def __getattr__(self, name: str):
        return getattr(self._real(), name)

    def __call__(self, *args, **kwargs):
        if not args and not kwargs and sys.argv[1:] == ["--version"]:
            print(version_text(self._prog))
            return 0
        return self._real()(*args, **kwargs)

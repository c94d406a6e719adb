"""`kite debug`: `kite run`'s boot, stopped before the first instruction, with a console.

The command takes every option of `kite run` (the same click parameters) and
runs `kite run`'s own dispatch (vmm.cli.dispatch_run) with the debugger
attached (vmm.launch.ATTACH): the Machine, Simulator or Monitor that `kite
run` builds is handed over right before it runs, and the debugger takes over
its run loop (the `run` of that one instance, a Monitor's `run_on`, is
replaced by the session).  When the session ends with the guest ended, the
real `run` of the engine then current (a fresh one after going back,
vmm/debug/reverse.py) packages the result and `kite run`'s report and exit
code follow unchanged.

Guest console input: --input, --input-text or --replay (stdin carries the
commands, so without them the guest reads no input; --record is refused:
nothing interactive reaches the guest).  --guest-output FILE sends the
guest's console to FILE instead of stdout.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Iterator, TextIO

import click

from vmm.cli import EXIT_INTERRUPTED, EXIT_USAGE, dispatch_run, run as run_command
from vmm.launch import ATTACH
from vmm.machine.errors import KiteError


class DebuggerQuit(Exception):
    """The session ended while the guest could still run."""


def attach(engine, image: str | None, modules: tuple[str, ...], scripts: list[str], batch: bool,
           stdout: TextIO) -> None:
    """Take over `engine`'s run loop (module doc): build the target, the
    session and the console, and replace the instance's `run` (a Monitor's
    `run_on`).  The end of the run is the current engine's, which after
    going back (vmm/debug/reverse.py) is not `engine`: so is a bare
    machine's register dump."""
    from vmm.debug.console import Console
    from vmm.debug.session import Session
    from vmm.debug.symbols import Symbols
    from vmm.debug.target import MachineTarget, SimTarget, vm_space
    from vmm.monitor.monitor import Monitor
    from vmm.monitor.simulate import Simulator

    def symbols_for(vm):
        if vm is not None:
            return Symbols.load(vm.config.image, vm.config.modules,
                                lambda va, n: vm_space(vm).read_virtual(va, n))
        return Symbols.load(image, modules, lambda va, n: target.view().space.read_virtual(va, n))

    if isinstance(engine, Monitor):
        target, method = MachineTarget(engine.machine, symbols_for, engine), "run_on"
    elif isinstance(engine, Simulator):
        target, method = SimTarget(engine, symbols_for), "run"
    else:
        target, method = MachineTarget(engine, symbols_for), "run"
        engine.register_dump = lambda: type(target.machine).register_dump(target.machine)

    def run(max_instructions: int | None = None):
        console = Console(Session(target, max_instructions), sys.stdin, stdout, sys.stdin.isatty())
        console.run(scripts, batch)
        if target.active:
            raise DebuggerQuit
        return target.finish(max_instructions)

    setattr(engine, method, run)


@contextlib.contextmanager
def guest_output(path: str | None) -> Iterator[None]:
    """While inside, the guest's console (written to sys.stdout's buffer by
    `kite run`) goes to `path`; nothing changes without one.  Raises KiteError."""
    if path is None:
        yield
        return
    try:
        handle = open(path, "wb")
    except OSError as error:
        raise KiteError(f"{path}: cannot write the guest's output: {error.strerror}") from None
    with handle, io.TextIOWrapper(handle, write_through=True) as text, contextlib.redirect_stdout(text):
        yield
        text.flush()


def debug(image, bare, sim, paging, vm_specs, scripts, batch, guest_output_file, **options) -> None:
    """Boot IMAGE as `kite run` would, stopped before its first instruction,
    with a debugger console (docs/debugger.md).  Commands come from the -x
    FILEs, then from stdin (a terminal or a script); `help` lists them.

    Exit code: `kite run`'s once the guest has run to its end; 130 if the
    session ends before; 2 for a bad image or option."""
    if options["record"] is not None:
        click.echo("kite: error: kite debug gives the guest no interactive input: --record has nothing to "
                   "record (--replay replays a log)", err=True)
        sys.exit(EXIT_USAGE)
    if options["cpu"] == "bt" or any("cpu=bt" in spec.split(",")[1:] for spec in vm_specs):
        click.echo("kite: error: kite debug cannot debug a VM under --cpu bt yet (its machine runs the "
                   "translation, not the guest's code)", err=True)
        sys.exit(EXIT_USAGE)
    if options["input_file"] is None and options["input_text"] is None and options["replay"] is None:
        options["input_text"] = ""
    modules = tuple(options["modules"])
    stdout = sys.stdout
    token = ATTACH.set(lambda engine: attach(engine, image, modules, list(scripts), batch, stdout))
    try:
        with guest_output(guest_output_file):
            exit_code = dispatch_run(image, bare, sim, paging, vm_specs, options)
    except KiteError as error:
        click.echo(f"kite: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except DebuggerQuit:
        click.echo("kite: the debugger quit before the guest ended", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        ATTACH.reset(token)
    sys.exit(exit_code)


OWN_OPTIONS = [
    click.Option(["-x", "scripts"], multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
                 help="Run the debugger commands in FILE first; repeatable."),
    click.Option(["--batch"], is_flag=True, help="Quit after the -x files instead of reading stdin."),
    click.Option(["--guest-output", "guest_output_file"], type=click.Path(dir_okay=False), metavar="FILE",
                 help="Write the guest's console output to FILE instead of stdout."),
]

main = click.Command(
    "debug", callback=debug, params=list(run_command.params) + OWN_OPTIONS, help=debug.__doc__,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example: kite debug --paging shadow guestos/build/kernel-native.elf "
           "--module guestos/build/user-hello.elf")

"""The `kite debug` command console, on the standard library's `cmd`.

One `do_NAME` per command, its docstring the command's help (docs/debugger.md
is the reference).  GDB's short names are aliases (ALIASES).  A command that
cannot be carried out raises DebugError and prints one line `error: ...`;
no command prints a traceback.

Commands may come from a terminal (line editing by `cmd`/readline), from
stdin, from `-x FILE` or `source FILE`.  When they do not come from a
terminal each is echoed after the prompt, so the output reads as a session.
"""

from __future__ import annotations

import cmd
import inspect
import sys
from typing import TextIO

from vmm.debug import reports, walk
from vmm.debug.session import (Breakpoint, Catchpoint, Finish, Session, check_exit_reason, reach,
                               step_over)
from vmm.debug.symbols import DebugError, evaluate, register_number

PROMPT = "(kite) "
ALIASES = {"s": "step", "si": "step", "stepi": "step", "n": "next", "ni": "next", "nexti": "next",
           "c": "continue", "cont": "continue", "u": "until", "b": "break", "d": "delete", "i": "info",
           "disas": "disassemble", "p": "print", "q": "quit", "exit": "quit",
           "reverse-step": "reverse_step", "reverse-stepi": "reverse_step", "rs": "reverse_step",
           "rsi": "reverse_step", "reverse-continue": "reverse_continue", "rc": "reverse_continue"}
INFO_TOPICS = ("registers", "cr", "tlb", "vms", "exits", "pt", "shadow", "p2m", "breakpoints")
CATCH_KINDS = ("exit", "trap", "hypercall")
MAX_SOURCE_DEPTH = 8


class Console(cmd.Cmd):
    """The console over one Session.  `interactive`: commands come from a terminal."""

    prompt = PROMPT
    identchars = cmd.IDENTCHARS + "-"         # reverse-step, reverse-continue

    def __init__(self, session: Session, stdin: TextIO, stdout: TextIO, interactive: bool):
        super().__init__(stdin=stdin, stdout=stdout)
        self.session, self.target = session, session.target
        self.interactive = interactive
        self.use_rawinput = interactive
        if not interactive:
            self.prompt = ""
        self._depth = 0

    # --- the loop -------------------------------------------------------------------------

    def run(self, scripts: list[str], batch: bool) -> None:
        """Run the -x scripts, then (unless `batch`) commands from stdin until quit or end of input."""
        self.say(reports.location(self.target.view()))
        for path in scripts:
            if self.source(path):
                return
        if batch:
            return
        while True:
            try:
                self.cmdloop()
                return
            except KeyboardInterrupt:
                self.say("\nQuit (use 'quit' to leave)")

    def say(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(line + "\n")
        self.stdout.flush()

    def precmd(self, line: str) -> str:
        if not self.interactive and line != "EOF":
            self.say(PROMPT + line.rstrip("\n"))
        return line

    def onecmd(self, line: str) -> bool:
        """One command; its errors become one line."""
        try:
            return bool(super().onecmd(line))
        except DebugError as error:
            self.say(f"error: {error}")
        except Exception as error:      # noqa: BLE001 -- a debugger bug must not end the session
            self.say(f"error: internal debugger error: {error!r}")
        return False

    def emptyline(self) -> bool:
        """At a terminal an empty line repeats the last command (as in GDB); in a script it does nothing."""
        return super().emptyline() if self.interactive else False

    def default(self, line: str) -> bool:
        name, arg, _ = self.parseline(line)
        if name in ALIASES:
            return cmd.Cmd.onecmd(self, f"{ALIASES[name]} {arg}")
        if line.lstrip().startswith("#"):
            return False
        raise DebugError(f"undefined command '{name}'; try 'help'")

    def get_names(self) -> list[str]:
        return [name for name in super().get_names() if name != "do_EOF"]

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: list the commands, or show one command's help."""
        name = ALIASES.get(arg.strip(), arg.strip())
        if not name:
            super().do_help("")
            return
        method = getattr(self, f"do_{name}", None)
        if method is None or name == "EOF":
            raise DebugError(f"no command '{name}'; 'help' lists them")
        self.say(inspect.cleandoc(method.__doc__))

    def source(self, path: str) -> bool:
        """Run the commands of file `path`, stopping at the first error; returns whether one quit."""
        if self._depth >= MAX_SOURCE_DEPTH:
            raise DebugError(f"source: more than {MAX_SOURCE_DEPTH} files deep")
        try:
            with open(path, encoding="utf-8") as script:
                lines = script.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise DebugError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
        self._depth += 1
        try:
            return self._run_lines(lines)
        finally:
            self._depth -= 1

    def _run_lines(self, lines: list[str]) -> bool:
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            self.say(PROMPT + line)
            try:
                if super().onecmd(line):
                    return True
            except DebugError as error:
                self.say(f"error: {error}")
                return False
        return False

    # --- helpers ------------------------------------------------------------------------------

    def view(self):
        return self.target.view()

    def address(self, text: str) -> int:
        """The value of address expression `text` in the selected context."""
        view = self.view()

        def register(name: str) -> int:
            if name == "pc":
                return view.pc
            number = register_number(name)
            if number is None:
                raise DebugError(f"no register ${name}")
            return view.regs[number]
        return evaluate(text, view.symbols, register)

    def count(self, arg: str) -> int:
        """A positive count (1 if `arg` is empty)."""
        text = arg.strip() or "1"
        if not text.isdigit() or int(text) < 1:
            raise DebugError(f"'{text}' is not a positive count")
        return int(text)

    def resume(self, count: int | None = None, goal=None) -> None:
        """Run the guest (Session.resume), then say why it stopped and where."""
        self.stdout.flush()
        stops = self.session.resume(count, goal)
        sys.stdout.flush()                     # the guest's console
        self.say(*stops)
        if self.target.active:
            self.say(reports.location(self.view()))

    # --- running ---------------------------------------------------------------------------------

    def do_step(self, arg: str) -> None:
        """step [N]: run N instructions (default 1), into calls.  Aliases: s, si, stepi."""
        self.resume(self.count(arg))

    def do_next(self, arg: str) -> None:
        """next [N]: like step, but a call (jal/jalr ra) runs until it returns.  Aliases: n, ni, nexti."""
        for _ in range(self.count(arg)):
            goal = step_over(self.view())
            self.resume(1 if goal is None else None, goal)
            if not self.target.active:
                return

    def do_continue(self, arg: str) -> None:
        """continue: run until a breakpoint, watchpoint or catchpoint, Ctrl-C, or the end.  Alias: c."""
        self.resume()

    def do_until(self, arg: str) -> None:
        """until ADDR: run until the pc reaches ADDR (or another stop comes first).  Alias: u."""
        if not arg.strip():
            raise DebugError("until needs an address (use next to step over one instruction)")
        self.resume(None, reach(self.address(arg)))

    def do_reverse_step(self, arg: str) -> None:
        """reverse-step [N]: go back N instructions (default 1), to where the guest was then: registers,
        memory, pc and instruction count.  Aliases: reverse-stepi, rs, rsi."""
        self._went_back(self.session.reverse_step(self.count(arg)))

    def do_reverse_continue(self, arg: str) -> None:
        """reverse-continue: go back to the last point before now where a breakpoint or watchpoint set now
        stops the guest, or to its start (instruction 0).  Alias: rc."""
        self._went_back(self.session.reverse_continue())

    def _went_back(self, stops: list[str]) -> None:
        """Say where a reverse command left the guest."""
        self.say(*stops)
        self.say(reports.location(self.view()))

    def do_finish(self, arg: str) -> None:
        """finish: run until the current function returns (its `ret` at the same call depth)."""
        self.resume(None, Finish(self.view()))

    # --- points ---------------------------------------------------------------------------------------

    def do_break(self, arg: str) -> None:
        """break LOCATION: stop when the pc reaches LOCATION (a symbol, module:symbol, address or
        expression; default: the pc).  Alias: b."""
        self._break(arg, temporary=False)

    def do_tbreak(self, arg: str) -> None:
        """tbreak LOCATION: a breakpoint deleted when first hit."""
        self._break(arg, temporary=True)

    def _break(self, arg: str, temporary: bool) -> None:
        address = self.address(arg) if arg.strip() else self.view().pc
        if address & 3:
            raise DebugError(f"{address:#x} is not word-aligned: no instruction starts there")
        point = self.session.add(Breakpoint, address, temporary)
        self.say(f"{'Temporary breakpoint' if temporary else 'Breakpoint'} {point.number} at "
                 f"{self.view().symbols.describe(address)}")

    def do_delete(self, arg: str) -> None:
        """delete [N...]: delete the given breakpoints, watchpoints and catchpoints (all without N).  Alias: d."""
        words = arg.split()
        if not all(word.isdigit() for word in words):
            raise DebugError("delete takes point numbers (info breakpoints lists them)")
        self.session.delete([int(word) for word in words])

    def do_watch(self, arg: str) -> None:
        """watch ADDR [write|read|access]: stop when the word at ADDR changes (write, the default), after a
        load from it (read) or after a load or store touching it (access); checked at every instruction."""
        expression, _, kind = arg.strip().rpartition(" ") if arg.strip().endswith(
            (" read", " write", " access")) else (arg, "", "write")
        if not expression.strip():
            raise DebugError("watch needs an address")
        point = self.session.watch(self.view(), self.address(expression), kind)
        label = "Watchpoint" if kind == "write" else f"{kind.capitalize()} watchpoint"
        self.say(f"{label} {point.number}: {point.address:#010x} (machine {point.machine:#010x}) = "
                 f"{point.value:#010x}")

    def do_catch(self, arg: str) -> None:
        """catch exit [REASON] | catch hypercall [NAME] | catch trap [CAUSE]: stop at a VM exit (any, or
        one reason of `info exits`: hidden page fault, page-table write, mmio, privileged: MNEMONIC,
        hypercall: NAME, ...), at a hypercall, or when the guest takes a trap (page fault, system call,
        interrupt, timer, ...)."""
        kind, _, what = arg.strip().partition(" ")
        what = what.strip() or None
        if kind not in CATCH_KINDS:
            raise DebugError(f"catch {kind or '?'}: expected one of {', '.join(CATCH_KINDS)}")
        if kind != "trap" and self.target.monitor is None:
            raise DebugError(f"catch {kind}: there are no VM exits on the {self.target.kind}")
        if kind == "exit" and what is not None:
            check_exit_reason(what)
        point = self.session.add(Catchpoint, kind, what)
        self.say(f"Catchpoint {point.number} ({kind} {what or 'any'})")

    # --- looking ------------------------------------------------------------------------------------

    def do_info(self, arg: str) -> None:
        """info registers|cr|tlb|vms|exits|pt [ROOT]|shadow|p2m|breakpoints: show state.  Alias: i."""
        topic, _, rest = arg.strip().partition(" ")
        matches = [name for name in INFO_TOPICS if topic and name.startswith(topic)]
        if len(matches) != 1:
            raise DebugError(f"info {topic}: expected one of {', '.join(INFO_TOPICS)}")
        self.say(*getattr(self, f"_info_{matches[0]}")(rest.strip()))

    def _info_registers(self, rest: str) -> list[str]:
        return reports.registers(self.view())

    def _info_cr(self, rest: str) -> list[str]:
        return reports.control_registers(self.view())

    def _info_tlb(self, rest: str) -> list[str]:
        return walk.tlb(self.view())

    def _info_vms(self, rest: str) -> list[str]:
        return reports.vms(self.target)

    def _info_exits(self, rest: str) -> list[str]:
        return reports.exits(self.view().vm)

    def _info_pt(self, rest: str) -> list[str]:
        view = self.view()
        ptb = self.address(rest) if rest else view.space.ptb
        if not rest and not ptb & 1:
            return ["paging is off: no page tables"]
        return walk.page_table_ranges(view.space, ptb)

    def _info_shadow(self, rest: str) -> list[str]:
        vm = self.view().vm
        if vm is None or vm.config.paging != "shadow":
            raise DebugError("info shadow: the selected guest does not run under shadow paging")
        return walk.shadow(vm)

    def _info_p2m(self, rest: str) -> list[str]:
        vm = self.view().vm
        if vm is None:
            raise DebugError(f"info p2m: no guest-physical memory on the {self.target.kind}")
        return walk.p2m(vm)

    def _info_breakpoints(self, rest: str) -> list[str]:
        points = self.session.points.values()
        symbols = self.view().symbols
        return [f"{point.number:<4}{point.describe(symbols)}" for point in points] or ["no points"]

    def do_vm(self, arg: str) -> None:
        """vm N|NAME: select the VM the other commands look at (info vms lists them)."""
        if not arg.strip():
            raise DebugError("vm needs a number or a name")
        self.target.select(arg.strip())
        self.say(f"selected {self.view().label}")

    def do_x(self, arg: str) -> None:
        """x/NFU ADDR: examine memory.  N count; F x (hex, default), d, u, c, s (string), i (instruction);
        U b, h, w (default); add p for physical (guest-physical under the VMM), m for machine."""
        fmt, _, rest = arg.strip().partition(" ") if arg.strip().startswith("/") else ("/", "", arg)
        count, letter, size, space = reports.parse_format(fmt)
        if not rest.strip():
            raise DebugError("x needs an address")
        self.say(*reports.examine(self.view(), self.address(rest), count, letter, size, space))

    def do_disassemble(self, arg: str) -> None:
        """disassemble [ADDR | START,END | START,+LENGTH]: the function around ADDR (default: the pc),
        or the range, with symbols; `=>` marks the pc.  Alias: disas."""
        view = self.view()
        first, comma, second = arg.partition(",")
        if not comma:
            start, end = reports.function_range(view, self.address(first) if first.strip() else view.pc)
        else:
            start = self.address(first)
            end = start + self.address(second.strip()[1:]) if second.strip().startswith("+") else \
                self.address(second)
        self.say(*reports.disassemble(view, start, end))

    def do_walk(self, arg: str) -> None:
        """walk VA: the whole translation of VA now: guest PDE and PTE, guest-physical and machine
        frames, the shadow entries and why they differ (shadow), frame types and counts (direct), the TLB."""
        if not arg.strip():
            raise DebugError("walk needs an address")
        self.say(*walk.walk(self.view(), self.address(arg)))

    def do_print(self, arg: str) -> None:
        """print EXPR: the value of an address expression, in hex, decimal and as a symbol.  Alias: p."""
        value = self.address(arg)
        name = self.view().symbols(value)
        self.say(f"{value:#010x} {value}" + (f" <{name}>" if name else ""))

    def do_source(self, arg: str) -> bool:
        """source FILE: run the commands in FILE (stops at the first error)."""
        if not arg.strip():
            raise DebugError("source needs a file")
        return self.source(arg.strip())

    def do_quit(self, arg: str) -> bool:
        """quit: end the session (a guest still running is stopped: exit code 130).  Alias: q."""
        return True

    def do_EOF(self, arg: str) -> bool:
        if self.interactive:
            self.say("")
        return True

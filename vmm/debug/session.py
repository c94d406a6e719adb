"""Run control: stepping, breakpoints, watchpoints, catchpoints, Ctrl-C.

The guest only ever runs through Target.advance with an instruction limit:

    nothing armed that needs each instruction    legs of CHUNK instructions
    breakpoints, watchpoints, a goal (next,      legs of one instruction, each checked
    until, finish), trap catches off the VMM

so a debugged guest executes exactly the instruction stream of `kite run`; a
leg boundary is only an extra point where the machine's loop hands back
control.  Under the VMM, exits are checked as they happen (Target.on_exit):
a catchpoint that matches, or an exit that sends the guest to a breakpoint
(a reflection into its trap vector), stops the guest right after the exit.

Points share one numbering, as in GDB.  A breakpoint is not hit by the
instruction the guest resumes at; the first instruction is always executed.

Going back (reverse_step, reverse_continue) moves the Target to a fresh
engine at an earlier instruction (vmm/debug/reverse.py); reverse_continue
finds the instruction to go back to by replaying the checkpoint intervals
before now, latest first, in single steps, with the breakpoints and
watchpoints checked but not counted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from asm.arch import describe_cause
from asm.isa import CR_CAUSE, CR_EPC, LOAD_WIDTHS, REG_A0, REG_RA, REG_SP, REG_ZERO, STORE_WIDTHS, decode
from vmm.debug.reverse import Reverse
from vmm.debug.symbols import DebugError
from vmm.debug.target import ExitEvent, View

CHUNK = 20_000      # instructions per leg when nothing needs single steps (Ctrl-C latency)
EXIT_REASONS = ("hidden page fault", "true page fault", "page-table write", "mmio", "interrupt injected",
                "bus error")
EXIT_PREFIXES = ("privileged: ", "hypercall: ", "reflect: ")
Goal = Callable[[View], "str | None"]


@dataclass
class Breakpoint:
    number: int
    address: int
    temporary: bool = False
    hits: int = 0

    def describe(self, symbols) -> str:
        kind = "tbreak" if self.temporary else "breakpoint"
        return f"{kind:<10} {symbols.describe(self.address)}  hits {self.hits}"


@dataclass
class Watchpoint:
    number: int
    address: int          # the virtual address given
    machine: int          # where that word is in machine RAM when it was set
    value: int
    kind: str = "write"   # write: the word changed; read: a load from it; access: a load or store
    hits: int = 0

    def describe(self, symbols) -> str:
        return f"{self.kind + ' watch':<13} {self.address:#010x} (machine {self.machine:#010x})  hits {self.hits}"


def data_access(word: int, regs: list[int]) -> tuple[str, int, int] | None:
    """("read" or "write", virtual address, width) of the load or store `word`
    would make with registers `regs`, None for any other instruction (the ISA
    table's widths; the address as the machine computes it, rs1 + imm)."""
    decoded = decode(word)
    if decoded is None or decoded.insn.mnemonic not in LOAD_WIDTHS and decoded.insn.mnemonic not in STORE_WIDTHS:
        return None
    operands = decoded.operands
    address = (regs[operands["rs1"]] + operands["imm"]) & 0xFFFFFFFF
    if decoded.insn.mnemonic in LOAD_WIDTHS:
        return "read", address, LOAD_WIDTHS[decoded.insn.mnemonic][0]
    return "write", address, STORE_WIDTHS[decoded.insn.mnemonic]


@dataclass
class Catchpoint:
    number: int
    kind: str             # "exit", "trap" or "hypercall"
    what: str | None      # the reason, cause or hypercall name; None: any
    hits: int = 0

    def describe(self, symbols) -> str:
        return f"{'catch':<10} {self.kind} {self.what or '(any)'}  hits {self.hits}"

    def matches_exit(self, event: ExitEvent) -> str | None:
        """What of `event` this catchpoint catches, or None."""
        if self.kind == "exit":
            if self.what is None:
                return ", ".join(event.reasons) or f"VMM's own {describe_cause(event.cause)}"
            return self.what if self.what in event.reasons else None
        if self.kind == "hypercall":
            calls = [reason for reason in event.reasons if reason.startswith("hypercall: ")]
            wanted = [call for call in calls if self.what in (None, call.removeprefix("hypercall: "))]
            return wanted[0] if wanted else None
        trap = event.trap()
        return trap if trap is not None and self.matches_trap(trap) else None

    def matches_trap(self, trap: str) -> bool:
        """`catch trap timer` catches 'interrupt timer'; `catch trap interrupt` every interrupt."""
        what = self.what
        return what is None or trap == what or trap.startswith(what + " ") or trap.endswith(" " + what)


def check_exit_reason(reason: str) -> str:
    """`reason` if it is one the VM's exits counters use (docs/vmm.md), else DebugError."""
    if reason in EXIT_REASONS or reason.startswith(EXIT_PREFIXES) and reason.partition(": ")[2]:
        return reason
    raise DebugError(f"unknown exit reason '{reason}': expected one of {', '.join(EXIT_REASONS)}, "
                     f"or {', '.join(prefix + 'NAME' for prefix in EXIT_PREFIXES)}")


class Session:
    """Run control over one Target, under an instruction limit (None: none)."""

    def __init__(self, target, max_instructions: int | None):
        self.target, self.max_instructions = target, max_instructions
        self.points: dict[int, Breakpoint | Watchpoint | Catchpoint] = {}
        self._numbers = iter(range(1, 1 << 30))
        self._caught: list[str] = []
        self.interrupted = False
        target.on_exit = self._on_exit
        self.reverse = Reverse(target)

    # --- points -----------------------------------------------------------------------

    def add(self, point_type, *fields):
        """A new point of `point_type` with the next number."""
        point = point_type(next(self._numbers), *fields)
        self.points[point.number] = point
        return point

    def watch(self, view: View, address: int, kind: str = "write") -> Watchpoint:
        """Watch the word at virtual `address` (where it is in machine RAM now):
        for changes (write), loads from it (read) or loads and stores (access)."""
        if address & 3:
            raise DebugError(f"{address:#x} is not word-aligned")
        physical = view.space.to_physical(address)
        machine = None if physical is None else view.space.physmap.gpa_to_ma(physical)
        data = None if machine is None else view.space.read_machine(machine, 4)
        if data is None:
            raise DebugError(f"{address:#010x} is not mapped to RAM in the current address space")
        return self.add(Watchpoint, address, machine, int.from_bytes(data, "little"), kind)

    def delete(self, numbers: list[int]) -> None:
        """Delete the points `numbers` (all of them if empty)."""
        missing = [number for number in numbers if number not in self.points]
        if missing:
            raise DebugError(f"no breakpoint, watchpoint or catchpoint number {missing[0]}")
        for number in numbers or list(self.points):
            del self.points[number]

    def _of(self, point_type) -> list:
        return [point for point in self.points.values() if isinstance(point, point_type)]

    # --- running ------------------------------------------------------------------------

    def resume(self, count: int | None = None, goal: Goal | None = None) -> list[str]:
        """Run the guest until `count` instructions have run (None: no count),
        `goal` says stop, a point is hit, Ctrl-C, the instruction limit or the
        end of the run.  Returns what stopped it (empty: the count ran out)."""
        target = self.target
        if not target.active:
            raise DebugError(f"the guest has ended ({target.ended()})")
        single = count is not None or goal is not None or self._needs_steps()
        start, self._caught, self.interrupted = target.instructions, [], False
        with self._catch_sigint():
            while True:
                if self.max_instructions is not None and target.instructions >= self.max_instructions:
                    return [f"The instruction limit ({self.max_instructions}) is reached."]
                leg = 1 if single else CHUNK
                limit = target.instructions + leg
                if self.max_instructions is not None:
                    limit = min(limit, self.max_instructions)
                traps, retired, guest_traps = target.traps_taken(), target.instructions, target.guest_traps()
                access = self._predicted_access() if single else None
                target.advance(limit)
                self.reverse.note()
                if target.instructions == retired + 1 and target.guest_traps() == guest_traps:
                    self._access_hits(access)         # the instruction retired: its access happened
                stops = self._stops(traps, goal)
                if stops is not None:
                    return stops
                if not target.active:
                    return [f"The guest has ended: {target.ended()}."]
                if self.interrupted:
                    return ["Interrupted (Ctrl-C)."]
                if count is not None and target.instructions - start >= count:
                    return []

    def _needs_steps(self) -> bool:
        """Whether something armed must be checked after every instruction."""
        traps_off_vmm = self.target.monitor is None and self._of(Catchpoint)
        return bool(self._of(Breakpoint) or self._of(Watchpoint) or traps_off_vmm)

    def _stops(self, traps_before: int, goal: Goal | None) -> list[str] | None:
        """The stop messages after a leg (None: no reason to stop).  Builds a
        View only when something needs one (the per-instruction path stays short)."""
        target = self.target
        target.follow_current()
        stops, self._caught = self._caught, []
        view = _lazy(target.view)
        stops += self._breakpoint_hits(target.pc, view)
        stops += self._watch_hits()
        if target.monitor is None and target.traps_taken() != traps_before:
            cr = view().cr
            stops += self._trap_catches(f"{describe_cause(cr[CR_CAUSE])} at pc {cr[CR_EPC]:#010x}")
        if goal is not None and target.active:
            message = goal(view())
            if message is not None:
                stops.append(message)
        if not stops:
            return None
        return [stop for stop in stops if stop]

    def _breakpoint_hits(self, pc: int, view: Callable[[], View]) -> list[str]:
        hits = []
        for point in self._of(Breakpoint):
            if point.address == pc:
                point.hits += 1
                hits.append(breakpoint_message(point, view().symbols, pc))
                if point.temporary:
                    del self.points[point.number]
        return hits

    def _predicted_access(self) -> tuple[str, int, int] | None:
        """The data access of the instruction about to run, when a read or
        access watchpoint needs it (its word read through the current address
        space without side effects), else None."""
        if not any(point.kind != "write" for point in self._of(Watchpoint)):
            return None
        view = self.target.view()
        data = view.space.read_virtual(view.pc, 4)
        return None if data is None else data_access(int.from_bytes(data, "little"), view.regs)

    def _access_hits(self, access: tuple[str, int, int] | None) -> None:
        """Read and access watchpoints whose word the retired instruction's
        `access` touched: queued as stops (self._caught)."""
        if access is None:
            return
        for point, message in self._accessed(access):
            point.hits += 1
            self._caught.append(message)

    def _accessed(self, access: tuple[str, int, int]) -> list[tuple[Watchpoint, str]]:
        """The read and access watchpoints `access` touches, each with its stop message."""
        kind, address, width = access
        hits = []
        for point in self._of(Watchpoint):
            touched = address < point.address + 4 and point.address < address + width
            if touched and (point.kind == "access" or point.kind == kind == "read"):
                verb = "read" if kind == "read" else "written"
                hits.append((point, f"{point.kind.capitalize()} watchpoint {point.number}: {point.address:#010x} "
                                    f"{verb} ({width} byte{'s' * (width > 1)} at {address:#010x})"))
        return hits

    def _watch_hits(self) -> list[str]:
        hits = []
        for point in self._of(Watchpoint):
            value = self.target.machine_word(point.machine)
            if point.kind == "write" and value != point.value:
                point.hits += 1
                hits.append(watch_message(point, point.value, value))
                point.value = value
        return hits

    def _trap_catches(self, trap: str) -> list[str]:
        """Trap catchpoints hit by a trap seen off the VMM (after a single step)."""
        cause = trap.partition(" at pc ")[0]
        caught = [point for point in self._of(Catchpoint) if point.kind == "trap" and point.matches_trap(cause)]
        for point in caught:
            point.hits += 1
        return [f"Catchpoint {point.number} (trap {point.what or 'any'}): {trap}" for point in caught]

    def _on_exit(self, event: ExitEvent) -> bool:
        """A VM exit happened (target module doc): should the guest stop here?"""
        stop = False
        for point in self._of(Catchpoint):
            caught = point.matches_exit(event)
            if caught is not None:
                point.hits += 1
                self._caught.append(f"Catchpoint {point.number} ({point.kind} {point.what or 'any'}): "
                                    f"{caught} in {event.vm.name} at pc {event.epc:#010x}")
                stop = True
        redirected = event.pc_after != event.epc
        return stop or redirected and any(point.address == event.pc_after for point in self._of(Breakpoint))

    @contextlib.contextmanager
    def _catch_sigint(self) -> Iterator[None]:
        """While the guest runs, Ctrl-C only asks it to stop at the end of the current leg."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum, frame) -> None:
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


    # --- going back ---------------------------------------------------------------------

    def reverse_step(self, count: int) -> list[str]:
        """Go back `count` instructions (to instruction 0 at most); the stop messages."""
        now = self.target.instructions
        if now == 0:
            raise DebugError("the guest is at its start (instruction 0): there is nothing before it")
        self._go_back(max(0, now - count))
        return [] if count <= now else ["Reached the start (instruction 0)."]

    def reverse_continue(self) -> list[str]:
        """Go back to the latest instruction before now at which a breakpoint
        or watchpoint armed now stops the guest going forward, or to the start."""
        now = self.target.instructions
        if now == 0:
            raise DebugError("the guest is at its start (instruction 0): there is nothing before it")
        if self._of(Breakpoint) or self._of(Watchpoint):
            starts = [start for start in self.reverse.starts() if start < now]
            self.interrupted = False
            with self._catch_sigint():
                for start, end in reversed(list(zip(starts, starts[1:] + [now - 1]))):
                    self.reverse.go_to(start)
                    hit = self._scan(min(end, now - 1))
                    if self.interrupted:
                        self._go_back(now)
                        return [f"Interrupted (Ctrl-C): the guest is back where it was (instruction {now})."]
                    if hit is not None:
                        self._go_back(hit[0])
                        return [hit[1]]
        self._go_back(0)
        return [f"No breakpoint or watchpoint stops the guest before instruction {now}: back at its start "
                f"(instruction 0)."]

    def _go_back(self, instructions: int) -> None:
        """The guest at `instructions` (reverse.go_to); the write watchpoints' values as they are there."""
        self.reverse.go_to(instructions)
        for point in self._of(Watchpoint):
            point.value = self.target.machine_word(point.machine)

    def _scan(self, end: int) -> tuple[int, str] | None:
        """Single-step from here to instruction `end`: the last instruction
        count at which an armed breakpoint or watchpoint would stop the guest
        going forward, with its stop message (hits not counted), or None."""
        target, last = self.target, None
        values = {point.number: target.machine_word(point.machine) for point in self._of(Watchpoint)}
        with target.unobserved():
            while target.instructions < end and target.active and not self.interrupted:
                access, retired, guest_traps = self._predicted_access(), target.instructions, target.guest_traps()
                target.advance(retired + 1)
                retired_one = target.instructions == retired + 1 and target.guest_traps() == guest_traps
                messages = [message for _, message in self._accessed(access)] if access and retired_one else []
                messages += [breakpoint_message(point, target.view().symbols, target.pc)
                             for point in self._of(Breakpoint) if point.address == target.pc]
                for point in self._of(Watchpoint):
                    value = target.machine_word(point.machine)
                    if point.kind == "write" and value != values[point.number]:
                        messages.append(watch_message(point, values[point.number], value))
                    values[point.number] = value
                if messages:
                    last = (target.instructions, "\n".join(messages))
        return last


def breakpoint_message(point: Breakpoint, symbols, pc: int) -> str:
    """What the console says when `point` stops the guest at `pc`."""
    return f"{'Temporary breakpoint' if point.temporary else 'Breakpoint'} {point.number}, {symbols.describe(pc)}"


def watch_message(point: Watchpoint, old: int, new: int) -> str:
    """What the console says when write watchpoint `point` sees its word go from `old` to `new`."""
    return f"Watchpoint {point.number}: {point.address:#010x}  old {old:#010x}  new {new:#010x}"


def _lazy(make: Callable[[], View]) -> Callable[[], View]:
    """`make()` on the first call, the same View after."""
    made: list[View] = []

    def get() -> View:
        if not made:
            made.append(make())
        return made[0]
    return get


# --- goals: next, until, finish ---------------------------------------------------------------

def is_call(word: int | None) -> bool:
    """jal ra / jalr ra: a call (the calling convention's return address register)."""
    decoded = None if word is None else decode(word)
    return decoded is not None and decoded.insn.mnemonic in ("jal", "jalr") and decoded.operands["rd"] == REG_RA


def is_return(word: int | None) -> bool:
    """jalr zero, ra, 0: `ret`."""
    decoded = None if word is None else decode(word)
    return (decoded is not None and decoded.insn.mnemonic == "jalr" and decoded.operands["rd"] == REG_ZERO
            and decoded.operands["rs1"] == REG_RA and decoded.operands["imm"] == 0)


def reach(address: int) -> Goal:
    """Stop when the pc is `address`."""
    return lambda view: "" if view.pc == address else None


def step_over(view: View) -> Goal | None:
    """`next`: past the call at the pc (back at pc + 4 with the stack no deeper); None if it is no call."""
    if not is_call(view.space.word(view.pc)):
        return None
    back, stack = (view.pc + 4) & 0xFFFFFFFF, view.regs[REG_SP]
    return lambda now: "" if now.pc == back and now.regs[REG_SP] >= stack else None


class Finish:
    """`finish`: stop after the `ret` that returns from the current function,
    counting the calls (jal/jalr ra) and returns in between."""

    def __init__(self, view: View):
        self.depth, self.returning = 0, False
        self._look(view)

    def __call__(self, view: View) -> str | None:
        if self.returning:
            return f"Returned: a0 = {view.regs[REG_A0]:#010x}"
        self._look(view)
        return None

    def _look(self, view: View) -> None:
        """Account for the instruction about to run at the pc."""
        word = view.space.word(view.pc)
        if is_call(word):
            self.depth += 1
        elif is_return(word):
            self.returning = self.depth == 0
            self.depth -= 1

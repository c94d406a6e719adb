"""Going back in `kite debug`: reverse-step and reverse-continue as
restore-the-nearest-checkpoint-and-replay (docs/debugger.md "Going back").

While the guest runs forward the session keeps in-memory checkpoints, made
by the engine's own capture (vmm/machine/snapshot.py for the bare machine,
vmm/monitor/sim_checkpoint.py for the simulator, vmm/monitor/checkpoint.py
for one VM under the VMM): one at instruction 0, then one at the first stop
at or after every INTERVAL instructions.  Each also keeps the console input
still to come (ConsoleInput.scheduled: `kite debug` input is scripted or a
replayed log, so all of it is known).

To go back to instruction N, `go_to` restores the latest checkpoint at or
before N into a fresh engine, schedules that input on it, mutes its console
output (the user saw it), runs it forward to N and hands it to the Target in
place of the old engine.  A run is deterministic given its input, so the
fresh engine at N is the forward run at N: registers, memory, pc,
instruction count and ticks.  Caches are not (TLB, translated blocks; under
the VMM the shadow tables, refilled by hidden faults that show in the exits).

Invariants: checkpoints are sorted by instruction count, the first is at 0;
a checkpoint stays valid after going back (the history it saved is the one
the guest replays); at most MAX_CHECKPOINTS are kept (when full, every other
one is dropped and the interval doubles); RAM frames are shared between
checkpoints by content, so memory grows with the frames that changed.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import BinaryIO, Callable

from asm.isa import PAGE_SIZE
from vmm.debug.symbols import DebugError
from vmm.machine.errors import KiteError

INTERVAL = 250_000        # instructions between checkpoints (docs/debugger.md "Going back" says why)
MAX_CHECKPOINTS = 32
MEMORY_CHECKPOINT = "<reverse-execution checkpoint>"     # the `path` restore functions name in messages


@dataclass(frozen=True)
class Kind:
    """How the debugger checkpoints one kind of engine (Machine, Simulator, Monitor)."""
    capture: Callable        # engine -> (state, ram)
    restore: Callable        # (path, state, ram, console_out, cost_model) -> a fresh engine
    console_input: Callable  # engine -> its ConsoleInput (the first VM's under the VMM)
    output: Callable         # engine -> the stream its console writes to
    ticks: Callable          # engine -> its tick count


def kind_of(engine) -> Kind:
    """The Kind of `engine`.  Raises DebugError for an engine that cannot go back."""
    from vmm.monitor.monitor import Monitor
    from vmm.monitor.simulate import Simulator
    if isinstance(engine, Monitor):
        from vmm.monitor import checkpoint
        try:
            checkpoint.capture_ok(checkpoint.vm_named(engine, None))
        except KiteError as error:
            raise DebugError(f"reverse execution under the VMM needs one VM: {error}") from None
        if engine.vms[0].config.paging == "nested":
            # a capture takes the VM out of guest mode, and the debugger's stepping does not enter it again
            raise DebugError("reverse execution under --paging nested is not supported yet")
        if engine.vms[0].disk is not None:
            raise DebugError("reverse execution of a VM with a disk is not supported (its file is held by the run)")
        return Kind(checkpoint.capture, checkpoint.restore, lambda monitor: monitor.console_in,
                    lambda monitor: monitor.console_out, lambda monitor: monitor.cpu.ticks)
    if engine.disk is not None:
        raise DebugError("reverse execution of a machine with a disk is not supported (its file is held by the run)")
    if isinstance(engine, Simulator):
        from vmm.monitor import sim_checkpoint
        return Kind(sim_checkpoint.capture, sim_checkpoint.restore,
                    lambda sim: sim.uart.console_input, lambda sim: sim.uart.output, lambda sim: sim.ticks)
    from vmm.machine import snapshot
    return Kind(snapshot.capture, snapshot.restore, lambda machine: machine.uart.console_input,
                lambda machine: machine.uart.output, lambda machine: machine.cpu.ticks)


@dataclass(frozen=True)
class Checkpoint:
    """The engine at `instructions`: its captured state, its RAM as frames
    (shared by content), its tick and the console input still to come."""
    instructions: int
    state: dict
    frames: tuple[bytes, ...]
    ticks: int
    arrivals: tuple


class Gate:
    """A console stream that drops what is written while `open` is False."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.open = stream, False

    def write(self, data: bytes) -> int:
        if self.open:
            self.stream.write(data)
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


class Reverse:
    """The checkpoints of one Target's run, and going back to an instruction."""

    def __init__(self, target):
        self.target = target
        self.checkpoints: list[Checkpoint] = []
        self.interval = INTERVAL
        self._pool: dict[bytes, bytes] = {}
        self.kind, self.unsupported = None, None
        try:
            self.kind = kind_of(target.engine)
        except DebugError as error:
            self.unsupported = str(error)
        if self.kind is not None and self.kind.console_input(target.engine).scheduled() is None:
            self.unsupported = "reverse execution needs scripted console input (--input, --input-text or --replay)"
        self._output = None if self.kind is None else self.kind.output(target.engine)
        self.note()

    def note(self) -> None:
        """After a stop going forward: take the checkpoint due, if one is.
        An engine its capture refuses here can go back no more (said then)."""
        if self.unsupported is not None or not self.target.active:
            return
        now = self.target.instructions
        if self.checkpoints and now < self.checkpoints[-1].instructions + self.interval:
            return
        try:
            self._take(now)
        except KiteError as error:
            self.unsupported = f"reverse execution stopped: no checkpoint could be taken at instruction {now}: {error}"
            return
        if len(self.checkpoints) > MAX_CHECKPOINTS:
            self.checkpoints = self.checkpoints[::2]
            self.interval *= 2
            self._pool = {frame: frame for checkpoint in self.checkpoints for frame in checkpoint.frames}

    def _take(self, now: int) -> None:
        """Capture the engine at instruction `now` (module doc)."""
        engine = self.target.engine
        state, ram = self.kind.capture(engine)
        state = json.loads(json.dumps(state))        # as a checkpoint file holds it: nothing shared with the engine
        frames = tuple(self._pool.setdefault(frame, frame) for frame in
                       (ram[start:start + PAGE_SIZE] for start in range(0, len(ram), PAGE_SIZE)))
        arrivals = tuple(self.kind.console_input(engine).scheduled())
        self.checkpoints.append(Checkpoint(now, state, frames, self.kind.ticks(engine), arrivals))

    def starts(self) -> list[int]:
        """The instruction counts of the checkpoints, ascending."""
        return [checkpoint.instructions for checkpoint in self.checkpoints]

    def go_to(self, instructions: int) -> None:
        """Make the Target's engine a fresh one at `instructions` (at most
        the current count): restored from the latest checkpoint at or before
        it and run forward, output muted.  Raises DebugError if unsupported."""
        if self.unsupported is not None:
            raise DebugError(self.unsupported)
        index = bisect.bisect_right(self.starts(), instructions) - 1
        checkpoint = self.checkpoints[index]
        gate = Gate(self._output)
        try:
            engine = self.kind.restore(MEMORY_CHECKPOINT, checkpoint.state, b"".join(checkpoint.frames), gate,
                                       self.target.engine.cost_model)
        except KiteError as error:
            raise DebugError(f"the checkpoint at instruction {checkpoint.instructions} did not restore: {error}") \
                from None
        self.kind.console_input(engine).schedule(checkpoint.arrivals, checkpoint.ticks)
        self.target.adopt(engine)
        self.target.replay_to(instructions)
        gate.open = True

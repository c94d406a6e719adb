"""Live migration of a VM to a monitor in another process: pre-copy, as in
Clark et al., "Live Migration of Virtual Machines", NSDI 2005
(docs/encapsulation.md).

The source (`migrate`) runs the VM to the instruction where migration
starts, then in rounds:

    round 0     every guest frame is sent while the guest keeps running
    round i     the frames the guest dirtied during round i-1 are sent, the
                guest still running
    stop-and-copy   once few frames are dirty (at most STOP_FRAMES), or after
                `max_rounds` rounds, or once MAX_FACTOR times the VM's RAM has
                been sent: the VM stops, its last dirty frames and its state
                (vmm/monitor/checkpoint.py) are sent, and the destination
                restores it and answers; only then does the source let it go

A round lasts as long as the link takes to carry its frames: `bandwidth`
bytes per guest instruction (Plan).  The guest's time does not jump during
the stop-and-copy (Kite's virtual time is its instruction count, so the run
stays exact); the downtime is reported as the guest instructions the VM
would have run in that time.

Dirty logging is write-protection, by the machine's write-watch on the VM's
machine frames (memory.py), armed at the start of each round: the first
write to a frame in a round (a guest store, the page walker's A/D bits, the
VMM's own emulated writes) logs it and lifts the protection.  It works alike
under shadow, direct and nested paging and never touches a table the guest can see
(the D bits of direct paging's tables belong to the guest, which may clear
them).  Each logged write is a write-protection fault on real hardware, so it
is counted as a VM exit ("dirty-log write fault") and priced by the cost model.

The stream is untrusted at the destination (`receive`): every message is
size-bounded before it is read and checked, and the state is checked as a
checkpoint file's is (checkpoint.check_state), before anything runs.

Wire format (one direction per message kind):

    message     8-byte header: JSON length, payload length (little-endian
                32-bit each), then the JSON object, then the payload
    hello       {"kind": "hello", "format": FORMAT, "version": VERSION, "mem": guest RAM bytes}
    round       {"kind": "round", "round": i, "frames": [guest frame numbers, ascending]},
                payload: those frames, PAGE_SIZE bytes each
    state       {"kind": "state", "state": the checkpoint state without "frames",
                 "figures": the migration's figures}
    ready / refused   the destination's answer: {"kind": "ready"} or {"kind": "refused", "error": text}
    abort       the source gives up (the guest ended during pre-copy)
"""

from __future__ import annotations

import json
import socket
import struct
from dataclasses import asdict, dataclass, field

from asm.isa import PAGE_SHIFT, PAGE_SIZE
from vmm.machine import snapshot
from vmm.machine.errors import KiteError
from vmm.machine.outcome import EndReason

FORMAT = "kite-migration"
VERSION = 1
STOP_FRAMES = 50            # stop-and-copy once at most this many frames are dirty (Xen's threshold)
MAX_FACTOR = 3              # ... or once this many times the VM's RAM has been sent (Xen's)
DEFAULT_ROUNDS = 29         # ... or after this many rounds after round 0 (Xen's maximum iterations)
MAX_ROUNDS = 1000           # the most rounds a Plan may ask for (and a destination accepts, + 2)
DEFAULT_BANDWIDTH = 128     # bytes the link carries per guest instruction (docs/encapsulation.md "The link")
DIRTY_EXIT = "dirty-log write fault"
HEADER = struct.Struct("<II")
MAX_HEADER_JSON = snapshot.MAX_JSON
REPLY_TIMEOUT = 120.0       # seconds the source waits for the destination's answer


class MigrationError(KiteError):
    """A migration stream that cannot be sent, or received and trusted."""


@dataclass(frozen=True)
class Plan:
    """How to migrate: from instruction `at`, over a link of `bandwidth`
    bytes per guest instruction, with at most `max_rounds` rounds after round 0."""
    at: int
    bandwidth: int = DEFAULT_BANDWIDTH
    max_rounds: int = DEFAULT_ROUNDS


@dataclass
class Round:
    """One pre-copy round: frames sent, the guest instructions it lasted, frames the guest dirtied meanwhile."""
    frames: int
    instructions: int
    dirtied: int


@dataclass
class Figures:
    """A migration's figures (printed, and "migration" in --stats-json)."""
    at: int
    bandwidth: int
    dirty_logging: str = "write-protection (the machine's write-watch on the VM's frames)"
    rounds: list[Round] = field(default_factory=list)
    stop_copy_frames: int = 0
    state_bytes: int = 0
    total_bytes: int = 0
    downtime_instructions: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


# --- the stream --------------------------------------------------------------------------------

class Channel:
    """Messages (module doc) over a connected stream socket."""

    def __init__(self, sock: socket.socket, name: str):
        self.sock, self.name = sock, name

    def send(self, header: dict, payload: bytes = b"") -> int:
        """Send one message; the bytes it took.  MigrationError if the other side is gone."""
        text = json.dumps(header, separators=(",", ":")).encode()
        try:
            self.sock.sendall(HEADER.pack(len(text), len(payload)) + text + payload)
        except OSError as error:
            raise MigrationError(f"{self.name}: the other side is gone: {error}") from None
        return HEADER.size + len(text) + len(payload)

    def receive(self, max_payload: int) -> tuple[dict, bytes]:
        """One message, its JSON at most MAX_HEADER_JSON bytes and its payload
        at most `max_payload` (both checked before reading).  MigrationError."""
        json_size, payload_size = HEADER.unpack(self._exactly(HEADER.size))
        if json_size > MAX_HEADER_JSON or payload_size > max_payload:
            raise MigrationError(f"{self.name}: a message of {json_size} + {payload_size} bytes, more than allowed")
        try:
            header = json.loads(self._exactly(json_size))
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise MigrationError(f"{self.name}: a message that is not valid JSON: {error}") from None
        if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
            raise MigrationError(f"{self.name}: a message without a kind")
        return header, self._exactly(payload_size)

    def _exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            try:
                chunk = self.sock.recv(min(left, 1 << 20))
            except OSError as error:
                raise MigrationError(f"{self.name}: cannot read: {error}") from None
            if not chunk:
                raise MigrationError(f"{self.name}: the stream ended in the middle of the migration")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


# --- the source --------------------------------------------------------------------------------

def migratable(vm) -> None:
    """MigrationError unless this version can migrate `vm`: one without a disk."""
    if vm.disk is not None:
        raise MigrationError("live migration of a VM with a disk is not supported yet")


def migrate(monitor, vm, plan: Plan, channel: Channel, max_instructions: int | None) -> Figures | None:
    """Pre-copy `vm` (module doc) from where the machine stands (instruction
    plan.at), every VM running meanwhile, and hand it over.  Returns the
    figures once the destination has it (the source must then let the VM
    go: Monitor.let_go), None if the VM ended (or the machine reached
    `max_instructions`) during pre-copy (the destination is told to abort).
    MigrationError if the destination refuses the VM or fails: the VM is
    whole at the source then."""
    figures = Figures(plan.at, plan.bandwidth)
    channel.send({"kind": "hello", "format": FORMAT, "version": VERSION, "mem": vm.config.mem})
    dirty = list(range(vm.physmap.frames))
    while True:
        monitor.machine.watch_writes(vm.physmap.p2m)
        count, sent = len(dirty), _send_round(channel, vm, len(figures.rounds), dirty)
        lasts = _instructions_for(sent, plan.bandwidth)
        if not _run_for(monitor, lasts, max_instructions) or not vm.alive:
            monitor.machine.memory.unwatch()
            channel.send({"kind": "abort"})
            return None
        dirty = sorted(vm.physmap.gfn(mfn) for mfn in monitor.machine.memory.unwatch())
        if dirty:
            vm.exits[DIRTY_EXIT] += len(dirty)
        figures.rounds.append(Round(count, lasts, len(dirty)))
        figures.total_bytes += sent
        if _stop_now(figures, dirty, plan, vm.physmap.frames):
            break
    return _stop_and_copy(monitor, vm, channel, dirty, figures)


def _send_round(channel: Channel, vm, number: int, gfns: list[int]) -> int:
    """Send the guest frames `gfns` as round `number`, read now; the bytes sent."""
    ram = vm.mode.memory.ram
    payload = b"".join(ram[vm.physmap.p2m[gfn] << PAGE_SHIFT:(vm.physmap.p2m[gfn] + 1) << PAGE_SHIFT]
                       for gfn in gfns)
    return channel.send({"kind": "round", "round": number, "frames": gfns}, payload)


def _instructions_for(sent: int, bandwidth: int) -> int:
    """The guest instructions the link takes to carry `sent` bytes (at least one)."""
    return max(1, -(-sent // bandwidth))


def _run_for(monitor, instructions: int, max_instructions: int | None) -> bool:
    """Run the guest on for `instructions` more; whether it is still running
    (False if it ended or reached `max_instructions`)."""
    now = monitor.cpu.counters.instructions
    limit = now + instructions if max_instructions is None else min(now + instructions, max_instructions)
    reason = monitor.machine.advance(limit)
    return reason is EndReason.INSTRUCTION_LIMIT and limit != max_instructions


def _stop_now(figures: Figures, dirty: list[int], plan: Plan, frames: int) -> bool:
    """Whether pre-copy should end (module doc: few dirty frames, enough rounds, or too much sent)."""
    return (len(dirty) <= STOP_FRAMES or len(figures.rounds) > plan.max_rounds
            or figures.total_bytes >= MAX_FACTOR * frames * PAGE_SIZE)


def _stop_and_copy(monitor, vm, channel: Channel, dirty: list[int], figures: Figures) -> Figures:
    """Stop the VM, send its last dirty frames and its state, and wait for
    the destination's answer (module doc)."""
    from vmm.monitor import checkpoint
    monitor.switch_in(vm)
    try:
        state, _ = checkpoint.capture(monitor, vm)
    except snapshot.CheckpointError as error:
        raise MigrationError(f"the VM's state cannot be sent: {error}") from None
    del state["frames"]
    sent = _send_round(channel, vm, len(figures.rounds), dirty)
    figures.stop_copy_frames = len(dirty)
    figures.state_bytes = len(json.dumps(state, separators=(",", ":")))
    figures.total_bytes += sent + figures.state_bytes
    figures.downtime_instructions = _instructions_for(sent + figures.state_bytes, figures.bandwidth)
    channel.send({"kind": "state", "state": state, "figures": figures.as_dict()})
    channel.sock.settimeout(REPLY_TIMEOUT)
    answer, _ = channel.receive(0)
    if answer.get("kind") != "ready":
        raise MigrationError(f"the destination refused the VM: {answer.get('error', answer.get('kind'))}")
    return figures


# --- the destination ---------------------------------------------------------------------------

def receive(channel: Channel) -> tuple[dict, bytes, dict] | None:
    """The VM the source sends: (state, ram, figures) as checkpoint.restore
    takes them, the state checked as a checkpoint file's; None if the source
    aborted.  MigrationError (or CheckpointError) for a stream that cannot
    be trusted."""
    from vmm.monitor import checkpoint
    hello, _ = channel.receive(0)
    if hello.get("kind") == "abort":
        return None
    mem = hello.get("mem")
    if (hello.get("kind"), hello.get("format"), hello.get("version")) != ("hello", FORMAT, VERSION) \
            or not snapshot._is_int(mem, PAGE_SIZE, snapshot.MAX_RAM) or mem % PAGE_SIZE:
        raise MigrationError(f"{channel.name}: not a {FORMAT} version {VERSION} stream")
    frames = _receive_rounds(channel, mem >> PAGE_SHIFT)
    if frames is None:
        return None
    pages, message = frames
    state, figures = message.get("state"), message.get("figures")
    if not isinstance(state, dict) or not isinstance(figures, dict):
        raise MigrationError(f"{channel.name}: the state message is malformed")
    kept = sorted(gfn for gfn, data in pages.items() if data != snapshot.ZERO_FRAME)
    state["frames"] = kept
    ram = b"".join(pages[gfn] for gfn in kept)
    checkpoint.check_state(channel.name, state, len(ram))
    if state["config"]["mem"] != mem:
        raise MigrationError(f"{channel.name}: the state's RAM size is not the hello's")
    return state, ram, figures


def _receive_rounds(channel: Channel, frames: int) -> tuple[dict[int, bytes], dict] | None:
    """Round messages up to the state message: ({guest frame: its latest
    bytes}, the state message); None on abort."""
    pages: dict[int, bytes] = {}
    number = 0
    while True:
        message, payload = channel.receive(frames * PAGE_SIZE)
        kind = message.get("kind")
        if kind == "abort":
            return None
        if kind == "state":
            return pages, message
        if number > MAX_ROUNDS + 1:
            raise MigrationError(f"{channel.name}: more than {MAX_ROUNDS + 2} rounds")
        gfns = message.get("frames")
        if kind != "round" or message.get("round") != number or not isinstance(gfns, list) \
                or not all(snapshot._is_int(gfn, 0, frames - 1) for gfn in gfns) \
                or any(a >= b for a, b in zip(gfns, gfns[1:])) or len(payload) != len(gfns) * PAGE_SIZE:
            raise MigrationError(f"{channel.name}: round message {number} is malformed")
        for index, gfn in enumerate(gfns):
            pages[gfn] = payload[index * PAGE_SIZE:(index + 1) * PAGE_SIZE]
        number += 1

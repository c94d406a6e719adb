"""Record and replay of the console's external input (docs/replay.md).

Kite's time is deterministic but for what comes from outside: the bytes of
console input and when the UART took them.  An input log holds exactly that,
one arrival a line (JSON Lines):

    {"format": "kite-input-log", "version": 1}
    {"tick": 0, "data": "scripted input\\n"}         bytes that arrived at a tick
    {"tick": 48113, "data": "a typed line\\n"}
    {"tick": 52007, "eof": true}                     the source closed at a tick (last, at most once)

`tick` is the machine's tick count (retired instructions plus idle ticks:
the clock the timer counts, which under the VMM is also every VM's clock).
`data` is a string of code points U+0000..U+00FF, one a byte (Latin-1, so
ASCII reads as itself), 1 to MAX_DATA bytes.  Ticks never go down; several
arrivals may share one.

Recorder listens to a ConsoleInput (vmm/machine/devices/uart.py) and stamps
each arrival with the engine's tick; ConsoleInput.schedule replays arrivals,
each at its tick.  A log is untrusted input: read_log checks every line
(ReplayError naming the file and the line); write_log writes atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from asm.files import write_atomically
from vmm.machine.errors import KiteError

if TYPE_CHECKING:
    from vmm.machine.devices.uart import ConsoleInput

FORMAT = "kite-input-log"
VERSION = 1
MAX_DATA = 1 << 16                 # bytes of one arrival; a longer one is logged as several at one tick
MAX_LINE = 6 * MAX_DATA + 256      # characters of one line: every byte escaped as \u00XX, and the keys
MAX_LOG = 64 << 20                 # bytes of a whole log file
MAX_TICK = 1 << 62
HEADER = {"format": FORMAT, "version": VERSION}


class ReplayError(KiteError):
    """An input log that cannot be read back and trusted, or written."""


@dataclass(frozen=True)
class Arrival:
    """Console input from outside: `data` at `tick`, or (`eof`) the end of the source then."""
    tick: int
    data: bytes = b""
    eof: bool = False

    def record(self) -> dict:
        """The arrival as one log line's object."""
        if self.eof:
            return {"tick": self.tick, "eof": True}
        return {"tick": self.tick, "data": self.data.decode("latin-1")}


class Recorder:
    """The arrivals of one console input, stamped with the engine's tick
    (`start`); `write` saves them as a log."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._clock: Callable[[], int] | None = None

    def start(self, console_input: "ConsoleInput", clock: Callable[[], int]) -> None:
        """Listen to `console_input` from now on, stamping with `clock` (the
        machine's tick count); what it holds already arrives now."""
        self._clock = clock
        console_input.listen(self.heard)

    def heard(self, data: bytes, eof: bool, tick: int | None) -> None:
        """The listener: `data` (and/or the end) arrived at `tick` (None: now, by the clock)."""
        tick = self._clock() if tick is None else tick
        self.arrivals += [Arrival(tick, data[start:start + MAX_DATA]) for start in range(0, len(data), MAX_DATA)]
        if eof:
            self.arrivals.append(Arrival(tick, eof=True))

    def write(self, path: str) -> None:
        """Save the log at `path`.  ReplayError if it cannot be written."""
        write_log(path, self.arrivals)


def write_log(path: str, arrivals: list[Arrival]) -> None:
    """Write `arrivals` as an input log at `path`, atomically.  ReplayError if it cannot be written."""
    lines = [json.dumps(HEADER)] + [json.dumps(arrival.record()) for arrival in arrivals]
    try:
        write_atomically(path, "\n".join(lines) + "\n")
    except OSError as error:
        raise ReplayError(f"{path}: cannot write the input log: {error.strerror}") from None


def read_log(path: str) -> list[Arrival]:
    """The arrivals of the input log at `path`, every line checked (module
    doc).  ReplayError naming the file and the line."""
    try:
        with open(path, "rb") as log:
            data = log.read(MAX_LOG + 1)
    except OSError as error:
        raise ReplayError(f"{path}: cannot read the input log: {error.strerror}") from None
    if len(data) > MAX_LOG:
        raise ReplayError(f"{path}: more than {MAX_LOG >> 20} MiB: not an input log Kite reads")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ReplayError(f"{path}:1: empty: an input log starts with its header {json.dumps(HEADER)}")
    _check_header(path, _parsed(path, 1, lines[0]))
    arrivals: list[Arrival] = []
    for number, line in enumerate(lines[1:], start=2):
        arrival = _arrival(path, number, _parsed(path, number, line))
        if arrivals and arrivals[-1].eof:
            raise ReplayError(f"{path}:{number}: an arrival after the end of input (line {number - 1})")
        if arrivals and arrival.tick < arrivals[-1].tick:
            raise ReplayError(f"{path}:{number}: tick {arrival.tick} is before the previous line's "
                              f"{arrivals[-1].tick}: ticks must not go down")
        arrivals.append(arrival)
    return arrivals


def _parsed(path: str, number: int, line: bytes) -> dict:
    """Line `number` as a JSON object.  ReplayError if too long or not one."""
    if len(line) > MAX_LINE:
        raise ReplayError(f"{path}:{number}: a line of {len(line)} bytes, more than the {MAX_LINE} an arrival "
                          f"of {MAX_DATA} bytes takes")
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        raise ReplayError(f"{path}:{number}: not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ReplayError(f"{path}:{number}: not a JSON object")
    return value


def _check_header(path: str, header: dict) -> None:
    if header.get("format") != FORMAT or set(header) != set(HEADER):
        raise ReplayError(f"{path}:1: not a {FORMAT} file (its first line must be {json.dumps(HEADER)})")
    if header["version"] != VERSION:
        raise ReplayError(f"{path}:1: version {header['version']!r}; this Kite reads version {VERSION}")


def _arrival(path: str, number: int, entry: dict) -> Arrival:
    """The Arrival of log line `number`.  ReplayError naming what is wrong."""
    tick = entry.get("tick")
    if not isinstance(tick, int) or isinstance(tick, bool) or not 0 <= tick <= MAX_TICK:
        raise ReplayError(f"{path}:{number}: field tick is missing or not a count from 0 to {MAX_TICK}")
    if set(entry) == {"tick", "eof"} and entry["eof"] is True:
        return Arrival(tick, eof=True)
    data = entry.get("data")
    if set(entry) != {"tick", "data"} or not isinstance(data, str):
        raise ReplayError(f'{path}:{number}: expected {{"tick": N, "data": "..."}} or {{"tick": N, "eof": true}}')
    if not 1 <= len(data) <= MAX_DATA:
        raise ReplayError(f"{path}:{number}: field data holds {len(data)} bytes; an arrival holds 1 to {MAX_DATA}")
    try:
        return Arrival(tick, data.encode("latin-1"))
    except UnicodeEncodeError as error:
        raise ReplayError(f"{path}:{number}: field data: character {data[error.start]!r} is not a byte "
                          f"(U+0000..U+00FF)") from None

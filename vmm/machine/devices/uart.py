"""The UART: a byte-at-a-time console.

Registers (offsets from isa.UART_BASE, all 32-bit):

    0x00 TX      write: the low byte goes to the output stream
    0x04 RX      read: the next input byte (0 if none); reading consumes it
    0x08 STATUS  bit0 RX_READY, bit1 TX_READY (always 1), bit2 RX_EOF (input exhausted and closed)
    0x0C CTRL    bit0 RX_IRQ_ENABLE

isa.IRQ_CONSOLE is asserted while RX_READY and RX_IRQ_ENABLE.

Input arrives deterministically: scripted input (tests, --input, --input-text)
and non-interactive stdin are all available from tick 0, one byte visible at
a time.  An interactive stdin (a TTY) is read a line at a time, only when the
guest polls with nothing pending (or the machine is idle in wfi: see
`wait_for_input`).  A replayed input log (--replay, vmm/machine/replay.py)
delivers each arrival at its tick: the UART's next event, when the engine
brings it current (`advance`), never earlier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable, Sequence

from asm.isa import IRQ_CONSOLE
from vmm.machine.devices import is_register_access
from vmm.machine.irq import InterruptLines

if TYPE_CHECKING:
    from vmm.machine.replay import Arrival

Listener = Callable[[bytes, bool, "int | None"], None]     # (data, eof, tick or None for now)

UART_TX = 0x00
UART_RX = 0x04
UART_STATUS = 0x08
UART_CTRL = 0x0C
UART_REGISTERS = (UART_TX, UART_RX, UART_STATUS, UART_CTRL)

STATUS_RX_READY = 1 << 0
STATUS_TX_READY = 1 << 1
STATUS_RX_EOF = 1 << 2
CTRL_RX_IRQ_ENABLE = 1 << 0


class ConsoleInput:
    """Bytes waiting for the guest, and where more come from: an optional
    interactive stream (a TTY) read a line at a time by `poll` when nothing
    is buffered, or timed arrivals (`schedule`: a replayed input log) that
    join the buffer at their tick (`advance`).  Without either, the input is
    closed once the buffer drains.  A listener (`listen`: the recorder of
    vmm/machine/replay.py) hears every arrival."""

    def __init__(self, data: bytes = b"", interactive: BinaryIO | None = None):
        self._buffer = bytes(data)
        self._next = 0                      # index of the next byte to hand out
        self._interactive = interactive
        self._arrivals: list[Arrival] = []  # scheduled, ascending ticks; [_due:] not yet delivered
        self._due = 0
        self._listener: Listener | None = None

    @classmethod
    def from_stdin(cls, stream: BinaryIO, is_tty: bool) -> "ConsoleInput":
        """All of a non-interactive `stream` now; a TTY lazily, line by line."""
        if is_tty:
            return cls(interactive=stream)
        return cls(stream.read())

    @classmethod
    def replaying(cls, arrivals: Sequence[Arrival]) -> "ConsoleInput":
        """An input that holds nothing but `arrivals`, from tick 0 (those at tick 0 at once)."""
        console_input = cls()
        console_input.schedule(arrivals, 0)
        return console_input

    def schedule(self, arrivals: Sequence[Arrival], now: int) -> None:
        """Deliver `arrivals` (ticks ascending, none before those scheduled
        already) each at its tick, those due by `now` at once.  Never for an
        input with an interactive stream (ValueError)."""
        if self._interactive is not None:
            raise ValueError("an interactive console input cannot also replay arrivals")
        self._arrivals += arrivals
        self.advance(now)

    def listen(self, listener: Listener) -> None:
        """Tell `listener(data, eof, tick)` every arrival from now on (tick
        None: now); the bytes buffered already arrive now, and so does the
        end of a source that can bring nothing more."""
        self._listener = listener
        if self.remaining():
            listener(self.remaining(), False, None)
        if self._interactive is None and self.scheduled() == []:
            listener(b"", True, None)

    def peek(self) -> int | None:
        """The next byte without consuming it, or None if none is buffered."""
        return self._buffer[self._next] if self._next < len(self._buffer) else None

    def pop(self) -> int | None:
        """Consume and return the next byte, or None if none is buffered."""
        byte = self.peek()
        if byte is not None:
            self._next += 1
        return byte

    def poll(self) -> None:
        """If nothing is buffered and the source is interactive, block for one
        line; end of file closes the source.  Does nothing otherwise."""
        if self.peek() is not None or self._interactive is None:
            return
        line = self._interactive.readline()
        if not line:
            self._interactive = None
        self._arrive(line, not line, None)

    def next_event(self) -> int | None:
        """The tick of the next scheduled arrival, or None."""
        return self._arrivals[self._due].tick if self._due < len(self._arrivals) else None

    def advance(self, now: int) -> bool:
        """Deliver the scheduled arrivals due by tick `now`; whether any came."""
        came = False
        while self._due < len(self._arrivals) and self._arrivals[self._due].tick <= now:
            arrival = self._arrivals[self._due]
            self._due += 1
            if arrival.eof:
                self._arrivals = self._arrivals[:self._due]     # the end: nothing after it
            self._arrive(arrival.data, arrival.eof, arrival.tick)
            came = True
        return came

    def _arrive(self, data: bytes, eof: bool, tick: int | None) -> None:
        """`data` joins the buffer (and/or the source ended); the listener hears it."""
        if data:
            self._buffer, self._next = self._buffer[self._next:] + data, 0
        if self._listener is not None:
            self._listener(data, eof, tick)

    def remaining(self) -> bytes:
        """The buffered bytes the guest has not read yet (what a checkpoint saves)."""
        return self._buffer[self._next:]

    def scheduled(self) -> list[Arrival] | None:
        """The arrivals still to come, if known: the scheduled ones not yet
        delivered ([] for scripted input); None while a TTY may bring more."""
        return None if self._interactive is not None else self._arrivals[self._due:]

    @property
    def closed(self) -> bool:
        """True once no byte will ever arrive again."""
        return self.peek() is None and self._interactive is None and self._due == len(self._arrivals)

    @property
    def interactive(self) -> bool:
        """True while more input may arrive from a TTY."""
        return self._interactive is not None


class Uart:
    """The console device.  `output` receives each transmitted byte; it is
    flushed when the guest polls for input and by `flush`."""

    name = "uart"

    def __init__(self, irq: InterruptLines, output: BinaryIO, console_input: ConsoleInput):
        self._irq = irq
        self._output = output
        self._input = console_input
        self.ctrl = 0
        self._update_irq()

    def read(self, offset: int, width: int) -> int:
        """RX consumes a byte; STATUS reports readiness; CTRL reads back."""
        if not is_register_access(offset, width, UART_REGISTERS):
            return 0
        if offset == UART_RX:
            self._poll_input()
            byte = self._input.pop()
            self._update_irq()
            return 0 if byte is None else byte
        if offset == UART_STATUS:
            self._poll_input()
            return self.status()
        if offset == UART_CTRL:
            return self.ctrl
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        """TX emits the low byte; CTRL sets RX_IRQ_ENABLE; others are ignored."""
        if not is_register_access(offset, width, UART_REGISTERS):
            return
        if offset == UART_TX:
            self._output.write(bytes((value & 0xFF,)))
        elif offset == UART_CTRL:
            self.ctrl = value & CTRL_RX_IRQ_ENABLE
            self._update_irq()

    @property
    def console_input(self) -> ConsoleInput:
        return self._input

    def status(self) -> int:
        """The STATUS register's value (does not poll an interactive source)."""
        value = STATUS_TX_READY
        if self._input.peek() is not None:
            value |= STATUS_RX_READY
        if self._input.closed:
            value |= STATUS_RX_EOF
        return value

    @property
    def output(self) -> BinaryIO:
        """The stream transmitted bytes go to."""
        return self._output

    def next_event(self) -> int | None:
        """The tick of the input's next scheduled arrival (a replayed log), or None."""
        return self._input.next_event()

    def advance(self, now: int) -> None:
        """Scheduled input due by `now` arrives; the line follows RX_READY
        (also when another UART on the same input took the arrival)."""
        self._input.advance(now)
        self._update_irq()

    def input_may_arrive(self) -> bool:
        """Whether an RX interrupt can still come: the guest enabled it and
        the console is interactive (scripted input is all there from tick 0)."""
        return bool(self.ctrl & CTRL_RX_IRQ_ENABLE) and self._input.interactive

    def wait_for_input(self) -> bool:
        """Called by the machine when the CPU waits with no other event: block
        for a line of interactive input if the guest enabled the RX interrupt.
        Returns True if that made the line pending."""
        if not self.input_may_arrive():
            return False
        self._poll_input()
        self._update_irq()
        return self._input.peek() is not None

    def flush(self) -> None:
        """Flush the output stream."""
        self._output.flush()

    def _poll_input(self) -> None:
        """Before blocking on a TTY, show the guest's prompt."""
        if self._input.interactive and self._input.peek() is None:
            self.flush()
            self._input.poll()

    def _update_irq(self) -> None:
        """IRQ_CONSOLE follows RX_READY and RX_IRQ_ENABLE."""
        ready = self._input.peek() is not None
        self._irq.set_line(IRQ_CONSOLE, ready and bool(self.ctrl & CTRL_RX_IRQ_ENABLE))

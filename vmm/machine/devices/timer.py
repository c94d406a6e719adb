"""The interval timer, counting machine ticks (retired instructions).

Registers (offsets from isa.TIMER_BASE, all 32-bit):

    0x00 CTRL      bit0 ENABLE, bit1 PERIODIC
    0x04 INTERVAL  ticks per countdown
    0x08 COUNT     read: ticks left in the running countdown (0 if none)
    0x0C ACK       write: deassert isa.IRQ_TIMER

Writing CTRL with ENABLE starts a countdown of INTERVAL ticks from the tick of
that store; when it reaches zero (at tick start + INTERVAL) isa.IRQ_TIMER is
asserted, and a PERIODIC timer reloads from that tick (so periods never drift).
Writing CTRL without ENABLE stops the countdown.  An INTERVAL of 0 never fires.
Writing INTERVAL does not disturb a running countdown; it takes effect at the
next CTRL write or periodic reload.  The line stays asserted until ACK.
"""

from __future__ import annotations

from typing import Callable

from asm.isa import IRQ_TIMER
from vmm.machine.devices import is_register_access
from vmm.machine.irq import InterruptLines

TIMER_CTRL = 0x00
TIMER_INTERVAL = 0x04
TIMER_COUNT = 0x08
TIMER_ACK = 0x0C
TIMER_REGISTERS = (TIMER_CTRL, TIMER_INTERVAL, TIMER_COUNT, TIMER_ACK)

CTRL_ENABLE = 1 << 0
CTRL_PERIODIC = 1 << 1


class Timer:
    """One countdown.  `clock()` returns the current tick; `schedule_changed()`
    is called after a CTRL write moves the next event (the machine may need
    to cut the CPU's current slice short)."""

    name = "timer"

    def __init__(self, irq: InterruptLines, clock: Callable[[], int],
                 schedule_changed: Callable[[], None] = lambda: None):
        self._irq = irq
        self._clock = clock
        self._schedule_changed = schedule_changed
        self.ctrl = 0
        self.interval = 0
        self.deadline: int | None = None   # absolute tick of the next expiry
        self.fired = 0                       # expiries so far (for tests and stats)

    def read(self, offset: int, width: int) -> int:
        """CTRL and INTERVAL read back; COUNT is the ticks left."""
        if not is_register_access(offset, width, TIMER_REGISTERS):
            return 0
        if offset == TIMER_CTRL:
            return self.ctrl
        if offset == TIMER_INTERVAL:
            return self.interval
        if offset == TIMER_COUNT:
            return 0 if self.deadline is None else max(0, self.deadline - self._clock())
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        """CTRL (re)starts or stops the countdown, INTERVAL sets the period,
        ACK deasserts the line.  COUNT is read-only."""
        if not is_register_access(offset, width, TIMER_REGISTERS):
            return
        if offset == TIMER_CTRL:
            self.ctrl = value & (CTRL_ENABLE | CTRL_PERIODIC)
            start = self.ctrl & CTRL_ENABLE and self.interval > 0
            self.deadline = self._clock() + self.interval if start else None
            self._schedule_changed()
        elif offset == TIMER_INTERVAL:
            self.interval = value
        elif offset == TIMER_ACK:
            self._irq.clear_line(IRQ_TIMER)

    def next_event(self) -> int | None:
        """The tick of the next expiry, or None when stopped."""
        return self.deadline

    def advance(self, now: int) -> None:
        """Fire every expiry at or before `now`; reload if PERIODIC."""
        while self.deadline is not None and self.deadline <= now:
            self._irq.assert_line(IRQ_TIMER)
            self.fired += 1
            if self.ctrl & CTRL_PERIODIC and self.interval > 0:
                self.deadline += self.interval
            else:
                self.deadline = None

"""The machine's interrupt lines: one bit per IRQ number (isa.IRQ_*).

Level-triggered: a device asserts its line while its condition holds and
clears it when the guest acknowledges.  The CPU reads `pending` directly
before each block; nothing here knows about IE or trap delivery.
"""

from __future__ import annotations


class InterruptLines:
    """The asserted lines as a bitmask: bit n set = irq n asserted."""

    def __init__(self) -> None:
        self.pending = 0

    def assert_line(self, irq: int) -> None:
        """Raise line `irq`; asserting an asserted line changes nothing."""
        self.pending |= 1 << irq

    def clear_line(self, irq: int) -> None:
        """Lower line `irq`; clearing a clear line changes nothing."""
        self.pending &= ~(1 << irq)

    def set_line(self, irq: int, level: bool) -> None:
        """Assert `irq` if `level`, else clear it (for devices whose line
        follows a condition, like the UART's RX_READY and RX_IRQ_ENABLE)."""
        if level:
            self.assert_line(irq)
        else:
            self.clear_line(irq)

"""The power controller.

Registers (offsets from isa.POWER_BASE, 32-bit):

    0x00 EXIT   write: power off; value & 0xFF becomes the machine's exit code

The stop takes effect after the storing instruction retires.
"""

from __future__ import annotations

from typing import Callable

from vmm.machine.devices import is_register_access

POWER_EXIT = 0x00
POWER_REGISTERS = (POWER_EXIT,)
EXIT_CODE_MASK = 0xFF


class Power:
    """Records the guest's exit code and asks the CPU to stop."""

    name = "power"

    def __init__(self, request_stop: Callable[[str | None], None]):
        self._request_stop = request_stop
        self.exit_code: int | None = None   # None until the guest writes EXIT

    def read(self, offset: int, width: int) -> int:
        """EXIT is write-only: every read is 0."""
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        """A 32-bit write to EXIT powers the machine off."""
        if not is_register_access(offset, width, POWER_REGISTERS):
            return
        self.exit_code = value & EXIT_CODE_MASK
        self._request_stop(f"power off: exit code {self.exit_code}")

    def next_event(self) -> int | None:
        """Never needs time: None."""
        return None

    def advance(self, now: int) -> None:
        """Nothing happens with time alone."""

"""Errors shared across the machine's modules.

These are host-level conditions, not guest exceptions: a guest exception is
architectural state (cause, badaddr, epc) delivered by the CPU, never a Python
error that escapes the machine.
"""


class KiteError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class BusError(Exception):
    """A physical address with neither RAM nor a device behind it.

    Raised by the bus; the CPU turns it into the guest's bus-error exception."""

    def __init__(self, paddr: int):
        super().__init__(f"no RAM or device at physical address {paddr:#010x}")
        self.paddr = paddr


class ImageError(KiteError):
    """An ELF image or boot module that cannot be loaded."""


class DiskError(KiteError):
    """A disk image that is missing, short or unreadable."""

"""The Kite32 machine's device models: UART, interval timer, block device
and power controller.  Register maps: docs/isa.md "Devices".

Every register is 32 bits wide; an access of another width, or at an offset
with no register, reads 0 and its write is ignored.
"""

REGISTER_WIDTH = 4


def is_register_access(offset: int, width: int, register_offsets: tuple[int, ...]) -> bool:
    """Whether (offset, width) names one of the device's 32-bit registers."""
    return width == REGISTER_WIDTH and offset in register_offsets

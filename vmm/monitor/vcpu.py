"""The virtual CPU: the privileged state a deprivileged guest kernel believes it has.

The guest runs in the machine's USER mode, so the machine's status register
cannot hold the guest's mode or interrupt enable.  The VMM keeps them here,
with the guest's trap registers and page-table base, and applies exactly the
bare machine's rules to them, by calling the functions the machine's CPU
calls (asm.arch: enter_trap, rfe, written_status, with_interrupts):

    virtual status   KM IE PKM PIE here; the user-flag byte stays in the machine
                     status, where the guest's unprivileged wrsr writes it
    tvec cause badaddr epc scratch ptb timer    plain virtual registers

Nothing here touches the machine; the monitor loads the machine state that
follows from a change (the shadow root or direct base for the new mode).
"""

from __future__ import annotations

from asm.arch import enter_trap, rfe, with_interrupts, written_status
from asm.isa import CR_NAMES, CR_STATUS, STATUS_IE, STATUS_KM, STATUS_PRIVILEGED, STATUS_UF


class VirtualCPU:
    """One guest's virtual privileged state, in the boot state: virtual
    kernel mode, IE 0, every control register 0.  cr[CR_STATUS] holds only
    the privileged bits (STATUS_PRIVILEGED)."""

    def __init__(self) -> None:
        self.cr = [0] * len(CR_NAMES)
        self.cr[CR_STATUS] = STATUS_KM

    @property
    def kernel(self) -> bool:
        """Whether the guest is in virtual kernel mode."""
        return bool(self.cr[CR_STATUS] & STATUS_KM)

    @property
    def interrupts_enabled(self) -> bool:
        return bool(self.cr[CR_STATUS] & STATUS_IE)

    def status(self, machine_status: int) -> int:
        """The status the guest reads with mfcr: the virtual privileged bits
        plus the user-flag byte from the machine status."""
        return (self.cr[CR_STATUS] & STATUS_PRIVILEGED) | (machine_status & STATUS_UF)

    def write_status(self, value: int) -> int:
        """mtcr status (asm.arch.written_status in kernel mode): keep the
        privileged bits; returns the user-flag byte, which the caller puts in
        the machine status."""
        written = written_status(self.cr[CR_STATUS], value, kernel=True)
        self.cr[CR_STATUS] = written & STATUS_PRIVILEGED
        return written & STATUS_UF

    def set_interrupts(self, enabled: bool) -> bool:
        """ei / di (or the PV set_irq_enable); returns the previous IE."""
        previous = self.interrupts_enabled
        self.cr[CR_STATUS] = with_interrupts(self.cr[CR_STATUS], enabled)
        return previous

    def enter_trap(self, cause: int, epc: int, badaddr: int | None) -> int:
        """Virtual trap entry (asm.arch.enter_trap).  Returns the virtual tvec
        (0: the guest has no trap vector, status is unchanged, and the caller
        stops the VM as the bare machine stops)."""
        return enter_trap(self.cr, cause, epc, badaddr)

    def return_from_trap(self) -> int:
        """Virtual rfe (asm.arch.rfe); returns epc."""
        return rfe(self.cr)

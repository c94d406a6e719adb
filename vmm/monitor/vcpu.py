"""The virtual CPU: the privileged state a deprivileged guest kernel believes it has.

The guest runs in the machine's USER mode, so the machine's status register
cannot hold the guest's mode or interrupt enable.  The VMM keeps them here,
with the guest's trap registers and page-table base, and applies exactly the
bare machine's rules to them (docs/internals.md, "Trap entry", "rfe"):

    virtual status   KM IE PKM PIE here; the user-flag byte stays in the machine
                     status, where the guest's unprivileged wrsr writes it
    tvec cause badaddr epc scratch ptb timer    plain virtual registers

Nothing here touches the machine; the monitor loads the machine state that
follows from a change (the shadow root or direct base for the new mode).
"""

from __future__ import annotations

from asm.isa import (CR_BADADDR, CR_CAUSE, CR_EPC, CR_NAMES, CR_STATUS, CR_TVEC, STATUS_IE,
                     STATUS_KM, STATUS_PIE, STATUS_PKM, STATUS_PRIVILEGED, STATUS_UF)

M32 = 0xFFFFFFFF


class VirtualCPU:
    """One guest's virtual privileged state, in the boot state: virtual
    kernel mode, IE 0, every control register 0."""

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
        """mtcr status: keep the privileged bits; returns the user-flag byte,
        which the caller puts in the machine status."""
        self.cr[CR_STATUS] = value & STATUS_PRIVILEGED
        return value & STATUS_UF

    def set_interrupts(self, enabled: bool) -> bool:
        """ei / di (or the PV set_irq_enable); returns the previous IE."""
        previous = self.interrupts_enabled
        if enabled:
            self.cr[CR_STATUS] |= STATUS_IE
        else:
            self.cr[CR_STATUS] &= ~STATUS_IE
        return previous

    def enter_trap(self, cause: int, epc: int, badaddr: int | None) -> int:
        """Virtual trap entry: epc, cause, badaddr (if given), PKM = KM,
        PIE = IE, KM = 1, IE = 0.  Returns the virtual tvec (0: the guest has
        no trap vector, and the caller stops the VM as the bare machine stops)."""
        cr = self.cr
        cr[CR_EPC], cr[CR_CAUSE] = epc & M32, cause & M32
        if badaddr is not None:
            cr[CR_BADADDR] = badaddr & M32
        status = cr[CR_STATUS]
        cr[CR_STATUS] = (STATUS_KM | (STATUS_PKM if status & STATUS_KM else 0)
                         | (STATUS_PIE if status & STATUS_IE else 0))
        return cr[CR_TVEC]

    def return_from_trap(self) -> int:
        """Virtual rfe: KM = PKM, IE = PIE (PKM and PIE kept); returns epc."""
        status = self.cr[CR_STATUS]
        self.cr[CR_STATUS] = ((status & (STATUS_PKM | STATUS_PIE))
                              | (STATUS_KM if status & STATUS_PKM else 0)
                              | (STATUS_IE if status & STATUS_PIE else 0))
        return self.cr[CR_EPC]

"""The paravirtual CPU: a per-vCPU page shared by a PV guest kernel and the VMM
(Xen's vcpu_info and its bounce frame, in Kite's terms; docs/hypercalls.md
"The per-vCPU page").

A direct-mode guest registers one page of its own RAM with set_vcpu_page.
From then on:

  - the virtual interrupt enable is the page's irq_enable word: the guest masks
    and unmasks interrupts with plain stores, and the VMM mirrors the virtual
    lines into irq_pending at every exit, so the guest needs a hypercall only
    when it unmasks with an interrupt pending;
  - an exception or interrupt is delivered by writing cause, epc, badaddr, the
    interrupted status and sp into the page's trap frame (no mfcr on the
    kernel's trap path), and a delivered timer interrupt is acknowledged by
    its delivery (no emulated ACK store);
  - iret restores what the frame then says: pc, sp, a0 and the status.

Invariants: the page is one machine frame of this VM, held typed `writable` in
the direct-paging accounting while registered (so it can never become a page
table the VMM would then write into), released at re-registration and at
teardown.  The page is authoritative for irq_enable while the guest runs, the
VirtualCPU while the VMM handles an exit (`sync_in` at the top of each exit,
`sync_out` at the end of each).
"""

from __future__ import annotations

from asm.arch import sets_badaddr
from asm.isa import STATUS_IE, STATUS_KM, STATUS_PRIVILEGED, STATUS_UF
from vmm.monitor.hypercall_abi import (VCPU_A0, VCPU_BADADDR, VCPU_CAUSE, VCPU_EPC, VCPU_IRQ_ENABLE,
                                       VCPU_IRQ_PENDING, VCPU_SP, VCPU_STATUS)
from vmm.monitor.physmap import MA
from vmm.monitor.vcpu import VirtualCPU

M32 = 0xFFFFFFFF


class PvCpu:
    """The registered per-vCPU page of one VM at machine address `page`."""

    def __init__(self, memory, page: MA):
        self.memory, self.page = memory, page

    def _read(self, offset: int) -> int:
        return self.memory.read(self.page + offset, 4)

    def _write(self, offset: int, value: int) -> None:
        self.memory.write(self.page + offset, 4, value & M32)

    def sync_in(self, vcpu: VirtualCPU) -> None:
        """The guest's irq_enable word becomes the virtual IE (any nonzero word enables)."""
        vcpu.set_interrupts(bool(self._read(VCPU_IRQ_ENABLE)))

    def sync_out(self, vcpu: VirtualCPU, pending: int) -> None:
        """The virtual IE back into the page, and the virtual lines asserted now."""
        self._write(VCPU_IRQ_ENABLE, int(vcpu.interrupts_enabled))
        self._write(VCPU_IRQ_PENDING, pending)

    def deliver(self, cause: int, epc: int, badaddr: int | None, status: int, sp: int) -> None:
        """Write the trap frame of a delivery: the interrupted context's status
        (KM, IE and UF as they were) and sp; badaddr only for the causes that
        set it, as trap entry does."""
        self._write(VCPU_CAUSE, cause)
        self._write(VCPU_EPC, epc)
        if badaddr is not None and sets_badaddr(cause):
            self._write(VCPU_BADADDR, badaddr)
        self._write(VCPU_STATUS, status)
        self._write(VCPU_SP, sp)

    def return_state(self) -> tuple[int, int, int, int]:
        """(pc, sp, a0, status) that iret restores, as the guest left them in the frame."""
        return self._read(VCPU_EPC), self._read(VCPU_SP), self._read(VCPU_A0), self._read(VCPU_STATUS)


def interrupted_status(vcpu: VirtualCPU, machine_status: int) -> int:
    """The status a delivery saves: the virtual KM and IE, the user flags."""
    return (vcpu.cr[0] & (STATUS_KM | STATUS_IE)) | (machine_status & STATUS_UF)


def returned_status(status: int) -> tuple[int, int]:
    """(privileged bits, user flags) iret loads from a frame's status: KM and IE only."""
    return status & (STATUS_KM | STATUS_IE) & STATUS_PRIVILEGED, status & STATUS_UF

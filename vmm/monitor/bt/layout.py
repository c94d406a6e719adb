"""The VMM window of a binary-translated VM (docs/vmm.md "The VMM window").

Under --cpu bt the top 4 MiB of every guest address space, page-directory
entry WINDOW_PDX, belongs to the VMM, as the top of the address space belongs
to VMware's monitor and to Xen.  The guest's own mappings there are ignored:
a guest access anywhere in the window faults as if nothing were mapped (a
not-present page fault, a bus error with the guest's paging off).  The VMM
maps only the last 128 KiB of it, and only in the shadow tables of virtual
kernel mode, where translated code runs:

    0xFFC00000 .. 0xFFFDFFFF   nothing (the reserved rest of the window)
    0xFFFE0000 .. 0xFFFFEFFF   the translation cache: TC_PAGES pages, read-only
    0xFFFFF000 .. 0xFFFFFFFF   the virtual CPU page: read-write

The mapped part is reachable from `zero` with a negative imm18 (a load or
store of zero_based(address)), so translated code needs no free register to
reach the virtual CPU.  The virtual CPU page:

    VCPU_CR + 4 * n   control register n as the guest sees it (status whole:
                      the virtual KM IE PKM PIE and the user flags)
    VCPU_SPILL        the guest value of the register a translated sequence borrows
    VCPU_SPILL2       ... and of the second one (a jalr's target cache borrows two)
    VCPU_COUNT        the translated code's count of its own extra instructions
    VCPU_PENDING      STATUS_IE if one of the VM's virtual lines is asserted, else 0
"""

from __future__ import annotations

WINDOW_PDX = 1023
WINDOW_BASE = WINDOW_PDX << 22          # 0xFFC00000
MAPPED_BASE = 0xFFFE0000                # the lowest address a translated access must never reach
TC_BASE = MAPPED_BASE
TC_PAGES = 31
VCPU_PAGE = 0xFFFFF000

VCPU_CR = 0x00
VCPU_SPILL = 0x20
VCPU_COUNT = 0x24
VCPU_PENDING = 0x28
VCPU_SPILL2 = 0x2C


def zero_based(address: int) -> int:
    """The imm18 that reaches `address` (in the mapped window) from `zero`."""
    return address - (1 << 32)


def in_window(address: int) -> bool:
    """Whether a guest virtual address lies in the VMM window."""
    return address >= WINDOW_BASE

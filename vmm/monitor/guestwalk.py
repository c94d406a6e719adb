"""The VMM's software walk of a guest's OWN page tables: guest-virtual → guest-physical.

The guest's tables live in guest memory and hold guest frame numbers; the
walker reads them through the VM's GuestPhysMap (gpa → ma) and machine memory,
and applies exactly the bare machine's rules (docs/internals.md, "Paging"):

- 10/10/12 two-level walk; a PDE and a PTE share one format (frame, P W U A D).
- A missing entry at either level is a not-present fault (error code without
  PF_PRESENT); both levels are checked for presence before any permission.
- Write needs W at both levels, user access needs U at both levels, write
  protection applies in kernel mode too, fetch needs only read permission.
- A successful walk sets A in the PDE and the PTE, and D in the PTE on a write,
  in guest memory, as the hardware walker would.
- Guest paging off (ptb bit 0 clear): gva = gpa, every access allowed.

The walker reads tables from guest RAM only.  A ptb or PDE naming a table
frame outside guest RAM (beyond its size, or a device page) gives
`TableBusError(gpa of the entry)`: the guest's bus-error exception, with
badaddr = the gva, as the bare MMU (vmm/machine/mmu.py) raises when its
walker reads an address with no RAM behind it.  A PTE naming a data frame outside guest RAM
is not the walker's business: the walk succeeds and the caller classifies the
gpa (device page or bus error) when it is accessed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from asm.isa import (PAGE_SHIFT, PDX_SHIFT, PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE, PTB_ENABLE,
                     PTB_FRAME_MASK, PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, PTX_SHIFT)
from vmm.monitor.physmap import GuestPhysMap

ENTRIES = 1 << (PDX_SHIFT - PTX_SHIFT)     # entries per page directory or page table
INDEX_MASK = ENTRIES - 1
ENTRY_SIZE = 4


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"
    FETCH = "fetch"


@dataclass(frozen=True)
class Translation:
    """A successful guest walk.  With guest paging off the pde/pte fields are None."""
    gpa: int
    pde_gpa: int | None
    pde: int | None          # the guest PDE as it is now in guest memory (A set by a walk)
    pte_gpa: int | None
    pte: int | None          # the guest PTE as it is now in guest memory (A, and D on a write)
    writable: bool           # W at both levels
    user: bool               # U at both levels


@dataclass(frozen=True)
class GuestFault:
    """The bare machine would raise a page fault with this error code (PF_* bits)."""
    error_code: int


@dataclass(frozen=True)
class TableBusError:
    """The walk read a table entry at guest-physical `gpa`, outside guest RAM."""
    gpa: int


WalkResult = Translation | GuestFault | TableBusError


def pdx(gva: int) -> int:
    """Page-directory index of `gva`."""
    return gva >> PDX_SHIFT


def ptx(gva: int) -> int:
    """Page-table index of `gva`."""
    return (gva >> PTX_SHIFT) & INDEX_MASK


def error_code(access: Access, user: bool, present: bool) -> int:
    """The PF_* bits the bare machine reports for this access."""
    code = PF_PRESENT if present else 0
    if access is Access.WRITE:
        code |= PF_WRITE
    if access is Access.FETCH:
        code |= PF_FETCH
    if user:
        code |= PF_USER
    return code


class GuestTables:
    """One guest page-table base (a guest ptb value), walked in software."""

    def __init__(self, memory, physmap: GuestPhysMap, ptb: int):
        self.memory = memory
        self.physmap = physmap
        self.ptb = ptb

    @property
    def paging(self) -> bool:
        return bool(self.ptb & PTB_ENABLE)

    def read_entry(self, gpa: int) -> int | None:
        """The 32-bit guest word at `gpa`, or None outside guest RAM."""
        ma = self.physmap.gpa_to_ma(gpa)
        return None if ma is None else self.memory.read(ma, ENTRY_SIZE)

    def walk(self, gva: int, access: Access, user: bool, set_bits: bool = True) -> WalkResult:
        """Translate `gva` for `access` in guest user (`user`) or kernel mode.

        Returns a Translation, a GuestFault with the bare machine's error code,
        or a TableBusError.  With `set_bits` a successful walk sets A (and D on
        a write) in guest memory; without it the walk only looks.  `gva` must
        be a 32-bit address (ValueError otherwise: callers check the ranges a
        guest hands them)."""
        if not 0 <= gva <= 0xFFFFFFFF:
            raise ValueError(f"guest-virtual address {gva:#x} is not 32-bit")
        if not self.paging:
            return Translation(gva, None, None, None, None, True, True)
        pde_gpa = (self.ptb & PTB_FRAME_MASK) | pdx(gva) * ENTRY_SIZE
        pde = self.read_entry(pde_gpa)
        if pde is None:
            return TableBusError(pde_gpa)
        if not pde & PTE_P:
            return GuestFault(error_code(access, user, present=False))
        pte_gpa = (pde & PTE_FRAME_MASK) | ptx(gva) * ENTRY_SIZE
        pte = self.read_entry(pte_gpa)
        if pte is None:
            return TableBusError(pte_gpa)
        if not pte & PTE_P:
            return GuestFault(error_code(access, user, present=False))
        writable, user_ok = bool(pde & pte & PTE_W), bool(pde & pte & PTE_U)
        if (access is Access.WRITE and not writable) or (user and not user_ok):
            return GuestFault(error_code(access, user, present=True))
        if set_bits:
            pde = self._set_bits(pde_gpa, pde, PTE_A)
            pte = self._set_bits(pte_gpa, pte, PTE_A | (PTE_D if access is Access.WRITE else 0))
        gpa = (pte & PTE_FRAME_MASK) | (gva & ((1 << PAGE_SHIFT) - 1))
        return Translation(gpa, pde_gpa, pde, pte_gpa, pte, writable, user_ok)

    def _set_bits(self, gpa: int, entry: int, bits: int) -> int:
        """Set `bits` in the guest entry at `gpa` (known to be in guest RAM);
        writes only if something changes.  Returns the new entry."""
        if entry & bits != bits:
            entry |= bits
            self.memory.write(self.physmap.gpa_to_ma(gpa), ENTRY_SIZE, entry)
        return entry

"""The VMM's software walk of a guest's OWN page tables: guest-virtual → guest-physical.

The guest's tables live in guest memory and hold guest frame numbers; the
walker reads them through the VM's GuestPhysMap (gpa → ma) and machine memory,
and applies the bare machine's rules by calling the same functions its MMU
calls (asm.arch.walk, accessed_entry): presence level by level before any
permission, W and U of both levels, A (and D on a write) set in guest memory
after a successful walk.  Guest paging off (ptb bit 0 clear): gva = gpa,
every access allowed.

The walker reads tables from guest RAM only.  A ptb or PDE naming a table
frame outside guest RAM (beyond its size, or a device page) gives
`TableBusError(gpa of the entry)`: the guest's bus-error exception, with
badaddr = the gva, as the bare MMU (vmm/machine/mmu.py) raises when its
walker reads an address with no RAM behind it.  A PTE naming a data frame outside guest RAM
is not the walker's business: the walk succeeds and the caller classifies the
gpa (device page or bus error) when it is accessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from asm.arch import ENTRY_SIZE, INDEX_MASK, Access, TableMiss, WalkFault, accessed_entry, walk
from asm.isa import PAGE_MASK, PDX_SHIFT, PTB_ENABLE, PTE_U, PTE_W, PTX_SHIFT
from vmm.monitor.physmap import GuestPhysMap

ENTRIES = INDEX_MASK + 1     # entries per page directory or page table

class Translation(NamedTuple):
    """A successful guest walk.  With guest paging off the pde/pte fields are
    None.  (A tuple: one is made at every hidden fault and a frozen
    dataclass costs microseconds to build.)"""
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
        found = walk(self.ptb, gva, access, user, self.read_entry)
        if isinstance(found, TableMiss):
            return TableBusError(found.address)
        if isinstance(found, WalkFault):
            return GuestFault(found.error)
        pde, pte = found.pde, found.pte
        if set_bits:
            pde = self._set_bits(found.pde_address, pde, accessed_entry(pde, access, leaf=False))
            pte = self._set_bits(found.pte_address, pte, accessed_entry(pte, access, leaf=True))
        return Translation(found.address | (gva & PAGE_MASK), found.pde_address, pde, found.pte_address, pte,
                           bool(pde & pte & PTE_W), bool(pde & pte & PTE_U))

    def _set_bits(self, gpa: int, entry: int, new: int) -> int:
        """Write `new` over the guest entry `entry` at `gpa` (known to be in
        guest RAM) if it differs.  Returns the new entry."""
        if new != entry:
            self.memory.write(self.physmap.gpa_to_ma(gpa), ENTRY_SIZE, new)
        return new

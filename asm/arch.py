"""Kite32's architecture rules, executable: the one definition of each.

asm/isa.py holds the numbers (opcodes, bits, codes); this module holds the
rules built from them, as plain functions on plain integers, so that every
engine applies the same rule instead of restating it:

    rule                          used by
    trap entry, rfe               the CPU (vmm/machine/cpu.py), the virtual CPU (vmm/monitor/vcpu.py)
    status writes and their masks the CPU and its translator, the virtual CPU
    load extension by width       the CPU's slow path and translator, the VMM's MMIO emulation
    the page walk and permissions the MMU (vmm/machine/mmu.py), the VMM's walker (vmm/monitor/guestwalk.py)
    the interrupt taken           the CPU, the VMM's injection
    virtualization: guest exits,  the CPU and MMU (guest mode, nested paging); a machine
      the nested walk, the        without the extension (the simulator) has none of it
      composed TLB entry
    cause names, stop messages    the machine, its tracer, the VMM, the simulator

The machine simulator (vmm/monitor/simulate.py) is on purpose a second,
independent implementation of instruction semantics (trap entry, rfe,
status writes and extension included) and uses only the walker and the
messages from here; the random differential tests (tests/differential)
hold it and every engine above to the same results.  docs/isa.md is the
prose of each rule; docs/internals.md lists where each lives.
"""

from __future__ import annotations

import enum
from typing import Callable, NamedTuple

from asm.isa import (MMIO_BASE, NF_MMIO, NF_TABLE, VMEXIT_HALT, VMEXIT_MTCR, VMEXIT_SENSITIVE,
                     VMEXIT_VMENTER, VMEXIT_WFI, VMX_EXIT_SENSITIVE, VMX_EXIT_WFI, CAUSE_CODE_MASK, CAUSE_ERRCODE_SHIFT, CAUSE_INTERRUPT, CR_BADADDR, CR_CAUSE,
                     CR_EPC, CR_STATUS, CR_TVEC, EXC_BUS_ERROR, EXC_MISALIGNED, EXC_PAGE_FAULT,
                     EXCEPTION_NAMES, IRQ_NAMES, PDX_SHIFT, PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE,
                     PTB_FRAME_MASK, PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, PTX_SHIFT,
                     STATUS_DEFINED, STATUS_IE, STATUS_KM, STATUS_PIE, STATUS_PKM, STATUS_PRIVILEGED,
                     STATUS_UF)

M32 = 0xFFFFFFFF
INDEX_MASK = (1 << (PDX_SHIFT - PTX_SHIFT)) - 1     # entries per table - 1
ENTRY_SIZE = 4

# --- trap entry and rfe (docs/isa.md "Trap entry and rfe") -----------------------------------------


def trap_entry_status(status: int) -> int:
    """status after trap entry: PKM = KM, PIE = IE, KM = 1, IE = 0; UF kept."""
    return ((status & ~STATUS_PRIVILEGED) | STATUS_KM
            | (STATUS_PKM if status & STATUS_KM else 0) | (STATUS_PIE if status & STATUS_IE else 0))


def enter_trap(cr: list[int], cause: int, epc: int, badaddr: int | None) -> int:
    """Trap entry on the control registers `cr`: epc, cause, badaddr (when
    given), then the status of trap_entry_status.  Returns tvec, where
    execution goes on; with tvec 0 the trap cannot be taken: epc, cause and
    badaddr are recorded but status is left as it was (the caller stops)."""
    cr[CR_EPC], cr[CR_CAUSE] = epc & M32, cause & M32
    if badaddr is not None:
        cr[CR_BADADDR] = badaddr & M32
    if cr[CR_TVEC]:
        cr[CR_STATUS] = trap_entry_status(cr[CR_STATUS])
    return cr[CR_TVEC]


def rfe_status(status: int) -> int:
    """status after rfe: KM = PKM, IE = PIE; PKM, PIE and UF kept."""
    return ((status & ~(STATUS_KM | STATUS_IE))
            | (STATUS_KM if status & STATUS_PKM else 0) | (STATUS_IE if status & STATUS_PIE else 0))


def rfe(cr: list[int]) -> int:
    """rfe on the control registers `cr`: the status of rfe_status; returns
    epc, where execution goes on."""
    cr[CR_STATUS] = rfe_status(cr[CR_STATUS])
    return cr[CR_EPC]


# --- status writes (docs/isa.md "Status register", "rdsr and wrsr") --------------------------------


def written_status(status: int, value: int, kernel: bool) -> int:
    """status after writing `value`: `mtcr status` and kernel `wrsr` keep every
    defined bit of value; user `wrsr` changes only the UF byte."""
    if kernel:
        return value & STATUS_DEFINED
    return (status & ~STATUS_UF) | (value & STATUS_UF)


def with_interrupts(status: int, enabled: bool) -> int:
    """status after `ei` (enabled) or `di`."""
    return status | STATUS_IE if enabled else status & ~STATUS_IE


# --- loads (docs/isa.md "Memory access") ------------------------------------------------------------


def extend(value: int, width: int, signed: bool) -> int:
    """The 32-bit register value of a `width`-byte load of `value`:
    sign-extended for lh / lb, zero-extended otherwise."""
    if not signed:
        return value
    sign = 1 << (8 * width - 1)
    return ((value ^ sign) - sign) & M32


def extend_expression(expression: str, width: int, signed: bool) -> str:
    """extend() as a Python expression over `expression`, for generated code."""
    if not signed:
        return expression
    sign = 1 << (8 * width - 1)
    return f"((({expression}) ^ {sign:#x}) - {sign:#x}) & 0xFFFFFFFF"


# --- paging (docs/isa.md "Paging") ------------------------------------------------------------------


class Access(enum.Enum):
    """The kind of memory access a translation is for."""
    READ = "read"
    WRITE = "write"
    FETCH = "fetch"


# the members as module names, for the rules below and for the walkers, run on every walk: on CPython 3.11
# looking an Enum member up on its class costs as much as a call
READ, WRITE, FETCH = Access.READ, Access.WRITE, Access.FETCH


def page_fault_error(access: Access, user: bool, present: bool) -> int:
    """The page-fault error code (PF_* bits) of a failing `access`."""
    return ((PF_PRESENT if present else 0) | (PF_WRITE if access is WRITE else 0)
            | (PF_USER if user else 0) | (PF_FETCH if access is FETCH else 0))


def page_fault_cause(error: int) -> int:
    """The cause value of a page fault with error code `error`."""
    return EXC_PAGE_FAULT | error << CAUSE_ERRCODE_SHIFT


def permission_error(bits: int, access: Access, user: bool) -> int | None:
    """The protection fault's error code if the W and U of `bits` (the PDE and
    PTE ANDed together, or a TLB entry) do not allow the access, else None.
    A write needs W (in kernel mode too), user mode needs U, a fetch needs
    only read permission."""
    if (user and not bits & PTE_U) or (access is WRITE and not bits & PTE_W):
        return page_fault_error(access, user, present=True)
    return None


class Walk(NamedTuple):
    """A successful two-level walk: where the entries are and what they hold
    (before the walker sets A and D)."""
    pde_address: int
    pde: int
    pte_address: int
    pte: int

    @property
    def address(self) -> int:
        """The page frame the PTE names (add the page offset of the va)."""
        return self.pte & PTE_FRAME_MASK


class WalkFault(NamedTuple):
    """The walk fails: raise the page fault with this error code."""
    error: int


class TableMiss(NamedTuple):
    """A table entry's address is not RAM: the walk cannot read it."""
    address: int


def pde_address(root: int, va: int) -> int:
    """The physical address of the page-directory entry of `va` under ptb `root`."""
    return (root & PTB_FRAME_MASK) | (va >> PDX_SHIFT) * ENTRY_SIZE


def pte_address(pde: int, va: int) -> int:
    """The physical address of the page-table entry of `va` under directory entry `pde`."""
    return (pde & PTE_FRAME_MASK) | ((va >> PTX_SHIFT) & INDEX_MASK) * ENTRY_SIZE


def walk(root: int, va: int, access: Access, user: bool,
         read_entry: Callable[[int], int | None]) -> Walk | WalkFault | TableMiss:
    """The two-level walk of `va` for `access` in user or kernel mode under ptb
    `root`.  `read_entry(address)` returns the table word there, or None when
    no RAM is behind it.  Presence is checked level by level before any
    permission; permissions are those of the PDE and PTE together.  Sets no
    bits: a successful walk's caller writes back accessed_entry()."""
    pde_at = pde_address(root, va)
    pde = read_entry(pde_at)
    if pde is None:
        return TableMiss(pde_at)
    if not pde & PTE_P:
        return WalkFault(page_fault_error(access, user, present=False))
    pte_at = pte_address(pde, va)
    pte = read_entry(pte_at)
    if pte is None:
        return TableMiss(pte_at)
    if not pte & PTE_P:
        return WalkFault(page_fault_error(access, user, present=False))
    error = permission_error(pde & pte, access, user)
    if error is not None:
        return WalkFault(error)
    return Walk(pde_at, pde, pte_at, pte)


def accessed_entry(entry: int, access: Access, leaf: bool) -> int:
    """The entry a successful walk leaves in memory: A set, and D in a leaf (PTE) on a write."""
    return entry | PTE_A | (PTE_D if leaf and access is WRITE else 0)


def tlb_entry(pde: int, pte: int) -> int:
    """What the TLB caches for a walk: the frame, W and U of both levels, and D."""
    return (pte & PTE_FRAME_MASK) | (pde & pte & (PTE_W | PTE_U)) | (pte & PTE_D)


# --- virtualization (docs/isa.md "Virtualization extension (optional)") ----------------------------


def guest_exit_reason(mnemonic: str, cr: int | None, exit_controls: int, mtcr_exits: int) -> int | None:
    """The VMEXIT_* reason if the guest's instruction `mnemonic` (`cr` for
    mtcr) exits under the VMCS controls, else None (it runs in the guest):
    halt and vmenter always exit (hypercall too, as a trap), wfi under
    VMX_EXIT_WFI, rdsr / wrsr under VMX_EXIT_SENSITIVE, mtcr of control
    register n when bit n of `mtcr_exits` is set.  Privilege comes first:
    a privileged instruction in guest user mode traps to the guest."""
    if mnemonic == "halt":
        return VMEXIT_HALT
    if mnemonic == "vmenter":
        return VMEXIT_VMENTER
    if mnemonic == "wfi":
        return VMEXIT_WFI if exit_controls & VMX_EXIT_WFI else None
    if mnemonic in ("rdsr", "wrsr"):
        return VMEXIT_SENSITIVE if exit_controls & VMX_EXIT_SENSITIVE else None
    if mnemonic == "mtcr":
        return VMEXIT_MTCR if mtcr_exits >> cr & 1 else None
    return None


class NestedMmio(NamedTuple):
    """A guest-physical address in the MMIO range: never RAM, so never walked."""
    address: int


def nested_walk(nptb: int, gpa: int, access: Access,
                read_entry: Callable[[int], int | None]) -> Walk | WalkFault | TableMiss | NestedMmio:
    """The nested (guest-physical -> machine) walk of `gpa` under the nested
    root `nptb`: walk() with the same PDE/PTE format and rule, never a user
    access (P and W count, U does not), setting no bits.  A gpa at or above
    MMIO_BASE is not walked (NestedMmio)."""
    if gpa >= MMIO_BASE:
        return NestedMmio(gpa)
    return walk(nptb, gpa, access, False, read_entry)


def nested_fault_access(access: Access, user: bool, present: bool, table: bool, mmio: bool = False) -> int:
    """VMCS_EXIT_ACCESS of a nested fault: the page-fault error code of the
    guest's `access` (U: the guest was in user mode; P: the nested entry was
    present but did not allow it), NF_TABLE for a guest table entry, NF_MMIO."""
    return (page_fault_error(access, user, present) | (NF_TABLE if table else 0)
            | (NF_MMIO if mmio else 0))


def composed_entry(guest_entry: int, frame: int, nested_writable: bool) -> int:
    """The TLB entry of a guest-virtual page (tlb_entry() of the guest's walk,
    or W | U | D with the guest's paging off) once its frame is the machine
    `frame`: the guest's W and U, and D only if the nested map allows writes,
    so a write the nested map forbids walks again and exits."""
    return ((frame & PTE_FRAME_MASK) | (guest_entry & (PTE_W | PTE_U))
            | (guest_entry & PTE_D if nested_writable else 0))


# --- interrupts (docs/isa.md "Interrupts") ------------------------------------------------------------


def interrupt_to_take(pending: int, enabled: bool) -> int | None:
    """The irq taken before the next instruction: the lowest asserted line,
    if interrupts are enabled; else None."""
    if not (pending and enabled):
        return None
    return (pending & -pending).bit_length() - 1


# --- causes and stop messages (docs/isa.md "Exceptions") ---------------------------------------------

BADADDR_CODES = (EXC_PAGE_FAULT, EXC_MISALIGNED, EXC_BUS_ERROR)


def sets_badaddr(cause: int) -> bool:
    """Whether trap entry writes badaddr for `cause`."""
    return not cause & CAUSE_INTERRUPT and cause & CAUSE_CODE_MASK in BADADDR_CODES


def describe_cause(cause: int) -> str:
    """'page fault', 'interrupt timer', ... for messages and traces."""
    code = cause & CAUSE_CODE_MASK
    if cause & CAUSE_INTERRUPT:
        return f"interrupt {IRQ_NAMES.get(code, code)}"
    return EXCEPTION_NAMES.get(code, f"cause {code}")


def badaddr_text(badaddr: int | None) -> str:
    """' badaddr 0x...' for messages, empty for causes without one."""
    return "" if badaddr is None else f" badaddr {badaddr:#010x}"


def unhandled_trap_message(cause: int, epc: int, badaddr: int | None) -> str:
    """Why the machine stops on a trap while tvec is 0."""
    return f"unhandled {describe_cause(cause)} at pc {epc:#010x}{badaddr_text(badaddr)} (tvec is 0)"


def triple_fault_message(cause: int, pc: int, badaddr: int | None, fetch: bool) -> str:
    """Why the machine stops when the first instruction of a trap handler
    raises an exception before it retires (`fetch`: fetching it)."""
    where = "fetching the trap vector" if fetch else "in the first instruction of the trap handler"
    return f"triple fault: {describe_cause(cause)} {where} at {pc:#010x}{badaddr_text(badaddr)}"


def is_fetch_fault(cause: int, epc: int, badaddr: int | None) -> bool:
    """Whether the exception `cause` was raised fetching the instruction at epc."""
    code = cause & CAUSE_CODE_MASK
    if cause & CAUSE_INTERRUPT:
        return False
    if code == EXC_PAGE_FAULT:
        return bool((cause >> CAUSE_ERRCODE_SHIFT) & PF_FETCH)
    return code in (EXC_BUS_ERROR, EXC_MISALIGNED) and badaddr == epc

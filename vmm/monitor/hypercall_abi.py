"""The Kite hypercall ABI: the single source of truth for docs/hypercalls.md.

A paravirtual (PV) guest kernel calls the VMM with the `hypercall` instruction.
This module holds, as data, everything the guest and the VMM must agree on:
the register convention, the hypercall numbers and their arguments, the
return codes, the mmu_update batch element, the start-info block and the ELF
note that marks direct-mode images.  tests/monitor/test_hypercall_doc.py keeps
docs/hypercalls.md's tables equal to the tables here.  Nothing here executes
a hypercall: the VMM's dispatcher does, using these numbers.
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass
from typing import NamedTuple

from asm.isa import BOOTINFO_MAGIC, REG_A0, REG_NUMBERS

# --- Register convention ------------------------------------------------------
# a0 = hypercall number, a1..a3 = arguments; on return a0 = result (a return
# code, or a count, see RESULTS), a1 = second result (mmu_update only), every
# other register preserved, pc = the hypercall's address + 4.

HC_NUMBER_REG = REG_A0
HC_ARG_REGS = (REG_NUMBERS["a1"], REG_NUMBERS["a2"], REG_NUMBERS["a3"])
HC_RESULT_REG = REG_A0
HC_RESULT2_REG = REG_NUMBERS["a1"]

# --- Return codes (negative in a0, Linux/Xen errno values) ----------------------

OK = 0
EPERM = 1       # not allowed: a frame the VM does not own, the VMM's or MMIO
EFAULT = 14     # a guest-virtual address that is not mapped or not readable
EBUSY = 16      # the object is in use (unpinning a current base)
EINVAL = 22     # a malformed or refused argument (failed validation)
ENOMEM = 12     # the VMM has no machine frame left for the request
E2BIG = 7       # a batch longer than MMU_UPDATE_MAX
ENOSYS = 38     # no such hypercall, or not offered in this paging mode
ENODEV = 19     # the VM has no such device (blk_setup without a disk)
EIO = 5         # a block request the disk refused (a sector range beyond its capacity)


class ReturnCode(NamedTuple):
    name: str
    value: int          # the guest sees -value in a0 (as a 32-bit word)
    meaning: str


RETURN_CODES = (
    ReturnCode("OK", OK, "success (only ever returned as 0, never negated)"),
    ReturnCode("EPERM", EPERM, "the VM may not do this: a frame it does not own, the VMM's, MMIO"),
    ReturnCode("E2BIG", E2BIG, "an mmu_update batch longer than MMU_UPDATE_MAX; nothing applied"),
    ReturnCode("ENOMEM", ENOMEM, "the VMM has no machine frame left for the request"),
    ReturnCode("EFAULT", EFAULT, "a guest-virtual address that is not mapped for reading"),
    ReturnCode("EBUSY", EBUSY, "the object is in use (unpinning a current base)"),
    ReturnCode("EINVAL", EINVAL, "a malformed argument or an update that failed validation"),
    ReturnCode("ENOSYS", ENOSYS, "no such hypercall, or not offered in this paging mode"),
    ReturnCode("ENODEV", ENODEV, "the VM has no disk (blk_setup)"),
    ReturnCode("EIO", EIO, "a block request beyond the disk's capacity (a ring response's status)"),
)


def result_word(code: int) -> int:
    """The 32-bit register value for a result: 0, a count, or -errno (e.g. -EINVAL -> 0xFFFFFFEA)."""
    return code & 0xFFFFFFFF


# --- Hypercall numbers ------------------------------------------------------------

HC_CONSOLE_WRITE = 0
HC_MMU_UPDATE = 1
HC_SET_BASE = 2
HC_PIN_TABLE = 3
HC_UNPIN_TABLE = 4
HC_TLB_FLUSH = 5
HC_TLB_INVLPG = 6
HC_SET_TIMER = 7
HC_YIELD = 8
HC_SHUTDOWN = 9
HC_SET_TRAP_VECTOR = 10
HC_RETURN_FROM_TRAP = 11
HC_SET_IRQ_ENABLE = 12
HC_CONSOLE_READ = 13
HC_SET_VCPU_PAGE = 14
HC_IRET = 15
HC_BLK_SETUP = 16
HC_BLK_NOTIFY = 17

MODE_BOTH = "both"
MODE_DIRECT = "direct"   # shadow mode answers -ENOSYS


class Hypercall(NamedTuple):
    number: int
    name: str
    args: tuple[str, ...]     # a1, a2, a3 in order
    result: str               # what a0 (and a1) hold on return
    modes: str                # MODE_BOTH or MODE_DIRECT
    summary: str


HYPERCALLS = (
    Hypercall(HC_CONSOLE_WRITE, "console_write", ("buf_gva", "length"), "bytes written", MODE_BOTH,
              "write `length` bytes (at most CONSOLE_WRITE_MAX) from guest-virtual `buf_gva` to the console"),
    Hypercall(HC_MMU_UPDATE, "mmu_update", ("batch_gva", "count"), "a0 = 0 or -errno, a1 = entries done",
              MODE_DIRECT, "apply `count` (ptr, val) elements in order; stop at the first refused one, "
              "whose index is a1"),
    Hypercall(HC_SET_BASE, "set_base", ("kernel_root_mfn", "user_root_mfn"), "0", MODE_DIRECT,
              "load the two roots (pinned L2 tables of this VM); flushes the TLB"),
    Hypercall(HC_PIN_TABLE, "pin_table", ("mfn", "level"), "0", MODE_DIRECT,
              "validate frame `mfn` as a page table of `level` (PIN_L1 or PIN_L2) and keep it typed"),
    Hypercall(HC_UNPIN_TABLE, "unpin_table", ("mfn",), "0", MODE_DIRECT,
              "drop the pin; refused (-EBUSY) while the table is a current base"),
    Hypercall(HC_TLB_FLUSH, "tlb_flush", (), "0", MODE_BOTH, "flush every TLB entry (as `tlbflush`)"),
    Hypercall(HC_TLB_INVLPG, "tlb_invlpg", ("va",), "0", MODE_BOTH,
              "flush the TLB entry of page `va` (as `tlbinv`)"),
    Hypercall(HC_SET_TIMER, "set_timer", ("interval", "flags"), "0", MODE_BOTH,
              "timer interrupt after `interval` instructions; flags TIMER_PERIODIC; interval 0 stops it"),
    Hypercall(HC_YIELD, "yield", (), "0", MODE_BOTH, "give up the rest of this time slice"),
    Hypercall(HC_SHUTDOWN, "shutdown", ("exit_code",), "does not return", MODE_BOTH,
              "stop the VM with `exit_code`"),
    Hypercall(HC_SET_TRAP_VECTOR, "set_trap_vector", ("handler_gva",), "0", MODE_BOTH,
              "set the virtual tvec: where exceptions and interrupts are reflected"),
    Hypercall(HC_RETURN_FROM_TRAP, "return_from_trap", (), "does not return (or -EFAULT)", MODE_BOTH,
              "pop the interrupted a0 from 0(sp), sp += 4, then `rfe` on the virtual state"),
    Hypercall(HC_SET_IRQ_ENABLE, "set_irq_enable", ("enable",), "previous IE (0 or 1)", MODE_BOTH,
              "set the virtual IE (the PV `wrsr`, which cannot change IE in machine user mode)"),
    Hypercall(HC_CONSOLE_READ, "console_read", ("buf_gva", "length"), "bytes read, 0 at end of input",
              MODE_BOTH, "read up to `length` (at most CONSOLE_READ_MAX) console input bytes into "
              "guest-virtual `buf_gva`, waiting for at least one unless the input has ended"),
    Hypercall(HC_SET_VCPU_PAGE, "set_vcpu_page", ("page_gva",), "0", MODE_DIRECT,
              "register the per-vCPU page (page-aligned, mapped writable, not a page table; 0 unregisters): "
              "from then on IE is its irq_enable word and traps are delivered into its frame"),
    Hypercall(HC_IRET, "iret", (), "does not return (or -EINVAL)", MODE_DIRECT,
              "return from a trap delivered through the per-vCPU page: pc, sp, a0 and status from its frame"),
    Hypercall(HC_BLK_SETUP, "blk_setup", ("ring_gva",), "a0 = 0 or -errno, a1 = disk sectors", MODE_DIRECT,
              "register the block ring page (page-aligned, mapped writable, not a page table; 0 unregisters; "
              "-ENODEV without a disk): see \"The block ring\""),
    Hypercall(HC_BLK_NOTIFY, "blk_notify", (), "0 or -errno", MODE_DIRECT,
              "queue the requests the ring's req_prod has added since the last notify; they complete "
              "together BLK_LATENCY_TICKS later with one virtual disk interrupt"),
)

HYPERCALLS_BY_NUMBER = {call.number: call for call in HYPERCALLS}

# argument values
PIN_L1 = 1                  # pin_table level: a page table (va[21:12])
PIN_L2 = 2                  # pin_table level: a page directory (va[31:22])
TIMER_PERIODIC = 1 << 0     # set_timer flags: re-arm after each interrupt
CONSOLE_WRITE_MAX = 4096    # console_write: longer is -EINVAL, nothing written
CONSOLE_READ_MAX = 4096     # console_read: longer is -EINVAL, nothing read
MMU_UPDATE_MAX = 1024       # mmu_update: a longer batch is -E2BIG, nothing applied

# --- The per-vCPU page ------------------------------------------------------------------
# A page of guest RAM the PV kernel registers with set_vcpu_page (vmm/monitor/pvcpu.py).
# Little-endian words at these offsets; "writer" says who writes each.


class VcpuField(NamedTuple):
    offset: int
    name: str
    writer: str
    meaning: str


VCPU_FIELDS = (
    VcpuField(0, "irq_enable", "guest",
              "1: virtual interrupts enabled, 0: masked (the VMM sets 0 at each delivery and the frame's IE at iret)"),
    VcpuField(4, "irq_pending", "VMM", "the virtual interrupt lines asserted (bit n: irq n), as of the last exit"),
    VcpuField(8, "cause", "VMM", "the delivered trap's cause"),
    VcpuField(12, "epc", "VMM, guest", "at delivery the trap's epc; before iret the pc to return to"),
    VcpuField(16, "badaddr", "VMM", "the faulting address (written only for the causes that set badaddr)"),
    VcpuField(20, "status", "VMM, guest",
              "at delivery the interrupted context's KM, IE and UF bits; before iret the ones to return to"),
    VcpuField(24, "sp", "VMM, guest", "at delivery the interrupted sp; before iret the sp to return with"),
    VcpuField(28, "a0", "guest", "before iret the a0 to return with (a0 carries the hypercall number)"),
)
(VCPU_IRQ_ENABLE, VCPU_IRQ_PENDING, VCPU_CAUSE, VCPU_EPC, VCPU_BADADDR, VCPU_STATUS, VCPU_SP,
 VCPU_A0) = (field.offset for field in VCPU_FIELDS)

# --- The block ring (the paravirtual disk, vmm/monitor/blkback.py) ------------------------
# A page of guest RAM the PV kernel registers with blk_setup: a header, then
# BLK_RING_SIZE slots of BLK_SLOT_SIZE bytes at BLK_SLOTS_OFFSET.  Request n
# (a free-running count) lives in slot n % BLK_RING_SIZE; its response
# overwrites the same slot's status.  Little-endian words.


class RingField(NamedTuple):
    offset: int
    name: str
    writer: str
    meaning: str


BLK_RING_HEADER = (
    RingField(0, "req_prod", "guest", "requests produced so far (free-running); advanced after the slots are filled"),
    RingField(4, "rsp_prod", "VMM", "responses produced so far (free-running); advanced after the statuses are "
                                    "written"),
)
BLK_SLOT_FIELDS = (
    RingField(0, "op", "guest", "BLK_OP_READ (disk to memory) or BLK_OP_WRITE (memory to disk)"),
    RingField(4, "sector", "guest", "first sector"),
    RingField(8, "count", "guest", "sectors, 1 to BLK_MAX_SECTORS"),
    RingField(12, "buffer", "guest", "guest-virtual address of count * 512 bytes in the kernel's address space"),
    RingField(16, "id", "guest", "the guest's tag for the request, left as it is"),
    RingField(20, "status", "VMM", "the response: 0, or -EINVAL, -EFAULT, -EIO"),
)
BLK_REQ_PROD, BLK_RSP_PROD = (field.offset for field in BLK_RING_HEADER)
BLK_OP, BLK_SECTOR, BLK_COUNT, BLK_BUFFER, BLK_ID, BLK_STATUS = (field.offset for field in BLK_SLOT_FIELDS)
BLK_RING_SIZE = 32          # slots; at most this many requests outstanding (req_prod - rsp_prod)
BLK_SLOTS_OFFSET = 0x40     # the first slot's offset in the ring page
BLK_SLOT_SIZE = 32          # bytes per slot (the words after status are reserved)
BLK_MAX_SECTORS = 8         # sectors per request: one page
BLK_OP_READ = 1
BLK_OP_WRITE = 2
BLK_LATENCY_TICKS = 1000    # one batch's latency: the emulated disk's DISK_LATENCY_TICKS per command

# --- mmu_update batch element --------------------------------------------------------
# Two little-endian words per element, at batch_gva + 8 * index:
#   +0 ptr  machine address of the page-table entry (4-byte aligned: bits 1:0 must be 0)
#   +4 val  the new entry

MMU_UPDATE_ELEMENT_SIZE = 8

# --- The start-info block -------------------------------------------------------------
# A PV guest starts with a0 = the guest-virtual address of its start-info page
# (START_INFO_ADDR).  Its first 24 bytes are the boot-info header
# (vmm/machine/loader.py), so a boot-info parser reads it unchanged; the PV
# fields follow.  Every address in it is guest-virtual.

START_INFO_ADDR = 0x00001000
START_INFO_MAGIC = 0x56505445      # bytes "ETPV" in memory: "PV" after the boot-info "KITE"
SIF_DIRECT_PAGING = 1 << 0         # flags: the guest runs in direct paging mode


class StartInfoField(NamedTuple):
    offset: int
    name: str
    meaning: str


START_INFO_FIELDS = (
    StartInfoField(0, "magic", "isa.BOOTINFO_MAGIC (the boot-info header starts here)"),
    StartInfoField(4, "mem_size", "bytes of guest RAM (nr_frames * 4096)"),
    StartInfoField(8, "cmdline", "address of the NUL-terminated command line"),
    StartInfoField(12, "module_count", "number of boot modules"),
    StartInfoField(16, "modules", "address of module_count 12-byte entries: +0 start, +4 size, +8 name"),
    StartInfoField(20, "first_free", "page-aligned address after the kernel, modules, p2m list and "
                                     "bootstrap tables"),
    StartInfoField(24, "pv_magic", "START_INFO_MAGIC"),
    StartInfoField(28, "flags", "SIF_DIRECT_PAGING when the guest runs in direct mode"),
    StartInfoField(32, "nr_frames", "frames of guest RAM"),
    StartInfoField(36, "p2m", "address of nr_frames words: word gfn = the machine frame behind gfn "
                              "(direct mode; 0 in shadow mode)"),
    StartInfoField(40, "pt_first_gfn", "first guest frame of the bootstrap page tables (direct mode)"),
    StartInfoField(44, "pt_count", "number of bootstrap page-table frames, the L2 first (direct mode)"),
    StartInfoField(48, "kernel_root_mfn", "machine frame of the bootstrap L2, pinned and loaded as both "
                                          "bases (direct mode)"),
    StartInfoField(52, "console", "guest-physical address of the emulated UART page (isa.UART_BASE)"),
)

START_INFO_HEADER_SIZE = 56


@dataclass(frozen=True)
class StartInfo:
    """The start-info header's values in START_INFO_FIELDS order, without the two magics."""
    mem_size: int
    cmdline: int
    module_count: int
    modules: int
    first_free: int
    flags: int
    nr_frames: int
    p2m: int
    pt_first_gfn: int
    pt_count: int
    kernel_root_mfn: int
    console: int

    def pack(self) -> bytes:
        """The START_INFO_HEADER_SIZE bytes of the header; the VMM places the module entries,
        strings and p2m list where the address fields say."""
        values = astuple(self)
        return struct.pack("<14I", BOOTINFO_MAGIC, *values[:5], START_INFO_MAGIC, *values[5:])


# --- The ELF note of direct-mode images ---------------------------------------------------
# An image built for direct mode carries, in a section named NOTE_SECTION of
# type SHT_NOTE, one note: namesz 5, descsz 4, type NT_KITE_PAGING, name
# "Kite\0" padded to 8 bytes, desc = one little-endian word, the paging mode.
# An image without the note runs bare or in shadow mode; running an image in a
# mode other than the one its note names is an error.

NOTE_SECTION = ".note.Kite"
NOTE_NAME = "Kite"
NT_KITE_PAGING = 1
KITE_PAGING_DIRECT = 1


def paging_note(mode: int = KITE_PAGING_DIRECT) -> bytes:
    """The bytes of the NT_KITE_PAGING note (the whole content of NOTE_SECTION)."""
    name = NOTE_NAME.encode() + b"\0"
    padded = name + bytes(-len(name) % 4)
    return struct.pack("<III", len(name), 4, NT_KITE_PAGING) + padded + struct.pack("<I", mode)


def paging_mode_of(notes: bytes) -> int | None:
    """The paging mode named by an NT_KITE_PAGING note in `notes` (a SHT_NOTE section's bytes),
    or None if there is none.  Raises ValueError on a truncated note."""
    at = 0
    while at < len(notes):
        if at + 12 > len(notes):
            raise ValueError("truncated ELF note header")
        namesz, descsz, note_type = struct.unpack_from("<III", notes, at)
        name_at = at + 12
        desc_at = name_at + namesz + (-namesz % 4)
        end = desc_at + descsz + (-descsz % 4)
        if end > len(notes):
            raise ValueError("ELF note runs past the end of its section")
        name = notes[name_at:name_at + namesz].rstrip(b"\0").decode("ascii", "replace")
        if name == NOTE_NAME and note_type == NT_KITE_PAGING and descsz == 4:
            return struct.unpack_from("<I", notes, desc_at)[0]
        at = end
    return None

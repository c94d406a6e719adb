"""The memory map every generated program shares, the generator's model of its
page tables, and the fixed code: boot setup and the trap handler.

 physical address (kernel-virtual too: pt0 identity-maps each of these pages)
 0x00000000  free RAM page; va 0 is never mapped, so a null access page-faults
 0x00001000  boot-info block                              identity, random flags
 0x00010000  page_dir                                     identity, fixed P|W
 0x00011000  pt0: identity map of this layout (PDE 0, fixed P|W|U)
 0x00012000  pt1: the second 4 MiB region, va 0x00400000 (PDE 1, random flags)
 0x00013000  pt_mmio: the device pages, identity (PDE 0x3C0, fixed P|W)
 0x00014000  kdata: trap save area (sp points here), counters, continuation,
             register checkpoints, trap log                              fixed P|W
 0x00015000  data0 .. data5: random contents              identity, random flags
 0x0001B000  user0, user1: user-mode snippets             identity, random flags
 0x0001D000  page_dir2: a second address space (same PDE 0 and MMIO PDE)  fixed P|W
 0x0001E000  ktext: _start, the body, the trap handler    identity, fixed P|W
 0x00080000, 0x000FF000: free RAM, reachable physically and through region 2
 0x00100000  RAM_SIZE: nothing above (bus error); pt0 maps va 0x00100000 to it

Invariants every generated program keeps (generator.py relies on them):
- `sp` always holds KDATA: only the trap handler uses it, as its save area.
- tvec is trap_entry until the program's last lines (which may clear it, or
  point it at an address whose fetch faults, to end the run); kdata, the
  tables, ktext and the device pages keep fixed mappings, so the handler
  never faults.
- Page-table entries change only by an explicit, known store (Tables.set),
  followed by a TLB flush before the next access through them.  Every other
  store goes to a frame that holds no table and no code.
"""

from __future__ import annotations

from asm.isa import (POWER_BASE, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, STATUS_KM,
                     STATUS_PIE, STATUS_PKM, STATUS_UF_SHIFT, TIMER_BASE, UART_BASE)

M32 = 0xFFFFFFFF
PAGE = 0x1000
RAM_SIZE = 1 << 20
TEXT = 0x00010000              # where the image is linked (-Ttext)
MAX_INSTRUCTIONS = 400_000     # far above any program's need; all engines stop here

BOOTINFO = 0x00001000
PAGE_DIR = 0x00010000
PT0 = 0x00011000
PT1 = 0x00012000
PT_MMIO = 0x00013000
KDATA = 0x00014000
DATA = tuple(0x00015000 + i * PAGE for i in range(6))
USER = (0x0001B000, 0x0001C000)
PAGE_DIR2 = 0x0001D000
DIRECTORIES = (PAGE_DIR, PAGE_DIR2)
KTEXT = 0x0001E000
KTEXT_PAGES = 12
FREE_FRAMES = (0x00080000, 0x000FF000)
ABOVE_RAM = 0x00100000         # the first frame with no RAM behind it
FAR_ABOVE_RAM = 0x00200000

REGION2 = 0x00400000           # PDE 1: pt1 maps REGION2 + i * PAGE for i < REGION2_PAGES
REGION2_PAGES = 12
REGION3 = 0x00800000           # PDE 2: not present, or a table outside RAM
DISK_PAGE = 0xF0002000         # no disk in these machines: a bus error
NO_DEVICE_PAGE = 0xF0004000    # nothing: a bus error
MMIO_PAGES = (UART_BASE, TIMER_BASE, DISK_PAGE, POWER_BASE, NO_DEVICE_PAGE)

# kdata offsets
SAVE = 0x00                    # t0..t3, saved by the handler
TRAP_COUNT = 0x40
TIMER_COUNT = 0x44
CONT = 0x48                    # where the handler resumes after a user or out-of-body exception
CONSOLE_LAST = 0x4C            # the last byte the console interrupt read from RX
CHECKPOINTS = 0x100            # CHECKPOINT_SLOTS register dumps of CHECKPOINT_SIZE bytes
CHECKPOINT_SLOTS = 8
CHECKPOINT_SIZE = 64
LOG = 0x400                    # LOG_ENTRIES trap records: cause, epc, badaddr, status
LOG_ENTRIES = 64

FIXED_FLAGS = PTE_P | PTE_W
PDE0_FLAGS = PTE_P | PTE_W | PTE_U
TABLE_FRAMES = (PAGE_DIR, PT0, PT1, PT_MMIO, PAGE_DIR2)
KTEXT_FRAMES = tuple(KTEXT + i * PAGE for i in range(KTEXT_PAGES))
PROTECTED = tuple(sorted(TABLE_FRAMES + (KDATA,) + USER + KTEXT_FRAMES))   # no store of unknown data here
RANDOM_FLAG_FRAMES = DATA + USER + (BOOTINFO,)
STORE_FRAMES = DATA + FREE_FRAMES + (BOOTINFO, 0)                      # RAM a random store may hit

REG_NAMES = ("zero", "ra", "sp", "at", "a0", "a1", "a2", "a3",
             "t0", "t1", "t2", "t3", "s0", "s1", "s2", "s3")
SP = 2


def index(va: int, level: int) -> int:
    """The directory (level 2) or table (level 1) index of `va`."""
    return (va >> 22) & 0x3FF if level == 2 else (va >> 12) & 0x3FF


def in_ram(address: int) -> bool:
    return 0 <= address < RAM_SIZE


class Tables:
    """The generator's exact model of the page tables (A and D aside: the
    walkers set those).  `entries[frame][i]` is entry i of the table in
    `frame`; `root` is the page directory ptb names (PAGE_DIR or PAGE_DIR2)."""

    def __init__(self) -> None:
        self.entries: dict[int, dict[int, int]] = {frame: {} for frame in TABLE_FRAMES}
        self.root = PAGE_DIR

    def get(self, frame: int, i: int) -> int:
        return self.entries.get(frame, {}).get(i, 0)

    def set(self, frame: int, i: int, value: int) -> None:
        self.entries[frame][i] = value & M32

    def walk(self, va: int) -> tuple[int, int | None]:
        """(PDE, PTE) of `va`; PTE None when the PDE is not present or names
        no table of this layout (outside RAM: the walk's bus error)."""
        pde = self.get(self.root, index(va, 2))
        if not pde & PTE_P or pde & PTE_FRAME_MASK not in self.entries:
            return pde, None
        return pde, self.get(pde & PTE_FRAME_MASK, index(va, 1))

    def frame(self, va: int, paging: bool) -> int | None:
        """The physical frame `va` reaches (presence and permissions aside), or
        None when the walk cannot reach a PTE."""
        if not paging:
            return va & PTE_FRAME_MASK
        pde, pte = self.walk(va)
        return None if pte is None else pte & PTE_FRAME_MASK

    def fetch_faults(self, va: int, paging: bool, user: bool) -> bool:
        """Whether fetching at `va` certainly raises an exception (docs/isa.md
        "Permissions": a fetch needs P, and U in user mode, at both levels; a
        frame with no RAM behind it is a bus error)."""
        if not paging:
            return not in_ram(va)
        pde, pte = self.walk(va)
        if not pde & PTE_P or pte is None or not pte & PTE_P:
            return True
        if user and not pde & pte & PTE_U:
            return True
        return not in_ram(pte & PTE_FRAME_MASK)

    def store_faults(self, va: int, user: bool) -> bool:
        """Whether a store at `va` with paging on certainly page-faults, so
        writes nothing (docs/isa.md "Permissions": a write needs P and W at
        both levels, and U too in user mode)."""
        pde, pte = self.walk(va)
        if pte is None:
            return not pde & PTE_P or not in_ram(pde & PTE_FRAME_MASK)
        rights = pde & pte
        return not rights & PTE_P or not rights & PTE_W or (user and not rights & PTE_U)

    def users_of(self, frame: int) -> list[int]:
        """The indexes of the current directory whose PDE names the table in
        `frame` (the TLB holds nothing from the other address space: a ptb
        write flushes it)."""
        return [i for i, pde in self.entries[self.root].items() if pde & PTE_FRAME_MASK == frame]

    def render(self, frame: int) -> list[str]:
        """The table in `frame` as exactly one page of assembly data."""
        lines, at = [], 0
        for i in sorted(self.entries[frame]):
            if i * 4 > at:
                lines.append(f"        .space  {i * 4 - at}")
            lines.append(f"        .word   {self.entries[frame][i]:#010x}")
            at = i * 4 + 4
        if at < PAGE:
            lines.append(f"        .space  {PAGE - at}")
        return lines


def initial_tables(flags: dict[int, int], pdes: dict[int, tuple[int, int]], region2: list[int]) -> Tables:
    """The boot-time tables: pt0 identity-maps the layout (random `flags` for
    RANDOM_FLAG_FRAMES, FIXED_FLAGS for the rest) and va ABOVE_RAM; pt_mmio
    the device pages; in each directory PDE 0 (pt0), the MMIO PDE, and PDE 1
    and 2 as `pdes[directory]` gives them; pt1's `region2` entries."""
    tables = Tables()
    for directory, (pde1, pde2) in pdes.items():
        tables.set(directory, 0, PT0 | PDE0_FLAGS)
        tables.set(directory, 1, pde1)
        tables.set(directory, 2, pde2)
        tables.set(directory, index(UART_BASE, 2), PT_MMIO | FIXED_FLAGS)
    for frame in TABLE_FRAMES + (KDATA,) + KTEXT_FRAMES:
        tables.set(PT0, index(frame, 1), frame | FIXED_FLAGS)
    for frame in RANDOM_FLAG_FRAMES:
        tables.set(PT0, index(frame, 1), frame | flags[frame])
    tables.set(PT0, index(ABOVE_RAM, 1), ABOVE_RAM | PTE_P | PTE_W | PTE_U)
    for page in MMIO_PAGES:
        tables.set(PT_MMIO, index(page, 1), page | FIXED_FLAGS)
    for i, entry in enumerate(region2):
        if entry:
            tables.set(PT1, i, entry)
    return tables


def setup_code(seeds: dict[str, int], scratch: int, timer_cr: int, root: int | None) -> list[str]:
    """_start: the save-area pointer, the trap vector, random register and
    control-register values, and paging on `root` (None: off) for the body's start."""
    lines = ["_start:",
             f"        li      sp, {KDATA:#x}",
             "        la      t0, trap_entry",
             "        mtcr    tvec, t0",
             f"        li      t0, {scratch:#x}",
             "        mtcr    scratch, t0",
             f"        li      t0, {timer_cr:#x}",
             "        mtcr    timer, t0"]
    if root is not None:
        lines += [f"        li      t0, {root | 1:#x}", "        mtcr    ptb, t0"]
    lines += [f"        li      {name}, {value:#x}" for name, value in seeds.items()]
    return lines


def trap_handler(timer_limit: int, slow_interval: int) -> list[str]:
    """The fixed trap handler.  Saves t0-t3 in kdata (sp), counts the trap and
    logs (cause, epc, badaddr, status) in a ring of LOG_ENTRIES.  Then:

    - timer interrupt: ACK the timer, count it; from the `timer_limit`th on,
      set the timer's INTERVAL to `slow_interval` (the timer keeps running, so
      a later wfi always has a source, but a tiny interval cannot starve the
      body); return to epc.
    - console interrupt: read one byte from RX (into kdata CONSOLE_LAST), which
      acknowledges it once the input is used up; return to epc.
    - exception in user mode (PKM = 0): resume the kernel at [CONT], in kernel
      mode (PKM set before rfe).
    - exception in kernel mode inside [body_start, body_end): skip the
      instruction (epc + 4).  Outside the body (a fetch fault after a jump
      out of it): resume at [CONT].
    Restores t0-t3 and returns with rfe; every other register is untouched."""
    return f"""\
trap_entry:
        sw      t0, {SAVE + 0}(sp)
        sw      t1, {SAVE + 4}(sp)
        sw      t2, {SAVE + 8}(sp)
        sw      t3, {SAVE + 12}(sp)
        lw      t0, {TRAP_COUNT}(sp)
        addi    t1, t0, 1
        sw      t1, {TRAP_COUNT}(sp)
        andi    t0, t0, {LOG_ENTRIES - 1}
        slli    t0, t0, 4
        add     t0, t0, sp
        mfcr    t1, cause
        sw      t1, {LOG}(t0)
        mfcr    t2, epc
        sw      t2, {LOG + 4}(t0)
        mfcr    t3, badaddr
        sw      t3, {LOG + 8}(t0)
        mfcr    t3, status
        sw      t3, {LOG + 12}(t0)
        blt     t1, zero, trap_interrupt
        andi    t0, t3, {STATUS_PKM}
        beqz    t0, trap_from_user
        la      t0, body_start
        bltu    t2, t0, trap_resume
        la      t0, body_end
        bgeu    t2, t0, trap_resume
        addi    t2, t2, 4
        mtcr    epc, t2
        j       trap_return
trap_from_user:
        ori     t3, t3, {STATUS_PKM}
        mtcr    status, t3
trap_resume:
        lw      t2, {CONT}(sp)
        mtcr    epc, t2
        j       trap_return
trap_interrupt:
        andi    t2, t1, 0xFF
        beqz    t2, trap_timer
        li      t0, {UART_BASE:#x}
        lw      t3, 4(t0)
        sw      t3, {CONSOLE_LAST}(sp)
        j       trap_return
trap_timer:
        li      t0, {TIMER_BASE:#x}
        sw      zero, 12(t0)
        lw      t1, {TIMER_COUNT}(sp)
        addi    t1, t1, 1
        sw      t1, {TIMER_COUNT}(sp)
        sltiu   t2, t1, {timer_limit}
        bnez    t2, trap_return
        li      t2, {slow_interval}
        sw      t2, 4(t0)
trap_return:
        lw      t0, {SAVE + 0}(sp)
        lw      t1, {SAVE + 4}(sp)
        lw      t2, {SAVE + 8}(sp)
        lw      t3, {SAVE + 12}(sp)
        rfe""".splitlines()


def user_entry_status(pie: bool, user_flags: int) -> int:
    """The status that `rfe` turns into user mode: KM = 1 (still kernel until
    the rfe), IE = 0 (no interrupt between this and the rfe), PKM = 0, PIE."""
    return STATUS_KM | (STATUS_PIE if pie else 0) | (user_flags & 0xFF) << STATUS_UF_SHIFT


LAYOUT_LABELS = {"page_dir": PAGE_DIR, "pt0": PT0, "pt1": PT1, "pt_mmio": PT_MMIO, "kdata": KDATA,
                 **{f"data{i}": frame for i, frame in enumerate(DATA)},
                 **{f"user{i}": frame for i, frame in enumerate(USER)}, "page_dir2": PAGE_DIR2, "ktext": KTEXT}
CR_FREE = ("cause", "badaddr", "epc", "scratch", "timer")     # mtcr of these changes nothing else

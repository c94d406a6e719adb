"""Random Kite32 programs, written from docs/isa.md, deterministic from a seed.

    program = generate(seed)          # Program(seed, source, features)
    program.source                    # one assembly file: link it at layout.TEXT

A program is a kernel (layout.py has the memory map and the trap handler)
whose body is a random sequence of operations: ALU (every R and I op,
division by zero), loads and stores of every width (misaligned too) to RAM,
devices, page tables and nothing, forward branches, counted loops, jumps,
jumps to addresses whose fetch faults, syscall/break, illegal words, the
sensitive pair, mfcr/mtcr, ei/di, TLB operations, page-table rewrites with
random P/W/U/A/D flags (whole words, low bytes and halves, directly or
through an alias), paging on and off in two address spaces, stores over the
body's own code, the periodic timer and wfi, the console's RX interrupt on
random input, and excursions to user mode through `rfe` into a freshly
generated user snippet.  The body ends with halt, a power-off store, or an
exception that cannot be handled (tvec 0, or a trap vector that faults).

Control flow is bounded: branches and jumps only go forward, loops run at
most MAX_LOOP times, and the handler recovers from every exception
deterministically (layout.trap_handler).

Differences the docs allow between the engines are excluded here, at the
source, each by the sentence that allows it:

- `rdsr` results are masked to the UF byte and kernel-mode `wrsr` is only
  emitted where its value keeps every privileged bit as it is.  docs/isa.md,
  "rdsr and wrsr": "A guest kernel run deprivileged (KM = 0) executes `rdsr` and
  reads KM = 0 and the real IE rather than its virtual kernel mode and virtual
  IE" and "The same kernel's `wrsr t0` meant to restore IE = 1 (or 0) ...
  silently keeps the real privileged bits".  docs/vmm.md, "Virtual CPU and the
  sensitive pair": "rdsr and wrsr do not trap, so the VMM never sees them".
  In user mode `wrsr` writes only UF everywhere ("in user mode only the
  user-flag byte UF"), so any value is fine there.
- `hypercall` is never emitted.  docs/isa.md, "hypercall": "On the bare machine
  ... it raises the illegal-instruction exception" but "Under the Kite VMM it
  never enters the guest's trap vector: it exits to the VMM".
- No instruction of an optional extension is ever emitted, `vmenter` included
  (illegal_word below redraws the rare random word that decodes as one).
  docs/isa.md, "Virtualization extension (optional)": the machine has the
  extension, so `vmenter` enters guest mode there, while "a machine without
  the extension (the machine simulator) ... raises the illegal-instruction
  exception" for it: the engines would rightly differ.
- Every page-table store is followed by a flush (`tlbinv` of the one
  affected page, or `tlbflush`, or a ptb write) before any access through it.
  docs/isa.md, "TLB": "after changing a PDE or PTE, software must flush the
  affected pages (or all) before relying on the change; until then the old
  translation and permissions may still be used", while docs/shadow.md: "A
  guest PTE change is seen at the next access, with no need to wait for the
  guest's flush" and the simulator has no TLB at all.

wfi with nothing to wake it and user mode with paging off are generated too:
docs/isa.md defines both ("the machine stops with the error "wfi with no
interrupt source" and `kite run` exits with 125 (on the bare machine, under
simulation and, for that VM, under the VMM)"; "With paging off, virtual
addresses are physical and nothing is protected: user mode may load from and
store to every physical address").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from asm.isa import (PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, STATUS_IE, STATUS_KM,
                     STATUS_PIE, STATUS_PKM, TIMER_BASE, UART_BASE, POWER_BASE)
from tests.differential import layout as L
from asm.isa import decode
from tests.differential.encodings import (BRANCHES, DIV_OPS, I_OPS, INTERESTING, LOADS, PRIVILEGED_IN_USER,
                                          R_OPS, SHIFT_I_OPS, STORES, alu_word)
from tests.differential.encodings import illegal_word as any_illegal_word

MAX_LOOP = 5


def illegal_word(rng: random.Random) -> int:
    """encodings.illegal_word, but never a word of an optional extension (an
    unassigned opcode there, such as 0x39, may draw a valid `vmenter`): see
    the module doc.  Draws again only in that case, so programs stay the same."""
    while True:
        word = any_illegal_word(rng)
        found = decode(word)
        if found is None or not found.insn.extension:
            return word

USER_PAGE_BUDGET = 900          # estimated words per user page (a page holds 1024)
KERNEL_OPS = (60, 160)          # body length range, in operations (generate's default)
SNIPPET_OPS = (2, 14)
OP_MARK = "# op: "              # starts every operation's lines (reduce.py removes whole operations)
FIXED_MARK = "# fixed: "        # starts lines reduce.py keeps: layout, setup, handler, the end
INPUT_MARK = "# console input: "   # then the bytes every engine's UART reads, in hex

FREE_REGS = tuple(r for r in range(1, 16) if r != L.SP)


@dataclass
class Program:
    """One generated program: its seed, its assembly source, and the features
    it exercises (names, for classifying divergences)."""
    seed: int
    source: str                                               # names its console input (console_input())
    features: set[str] = field(default_factory=set)
    unspecified: dict[str, str] = field(default_factory=dict)    # state not compared -> why


@dataclass
class Context:
    """Where operations are being emitted: the kernel body or a user snippet."""
    user: bool
    lines: list[str]
    reserved: set[int] = field(default_factory=set)    # registers the code must not write


def console_input(source: str) -> bytes:
    """The console input a program names (none if it names none)."""
    for line in source.splitlines():
        if line.startswith(INPUT_MARK):
            return bytes.fromhex(line[len(INPUT_MARK):])
    return b""


def generate(seed: int, ops: tuple[int, int] = KERNEL_OPS, disabled: frozenset[str] = frozenset()) -> Program:
    """The program of `seed`: a body of between ops[0] and ops[1] operations.
    `disabled` names operations never to emit (Generator method names, e.g.
    "program_timer" or "user_excursion"), to tell one divergence from another."""
    return Generator(seed, ops, disabled).program()


class Generator:
    """One program being generated.  Tracks what the docs make statically
    known: paging on/off, the kernel's IE, the timer's mode, the page tables."""

    def __init__(self, seed: int, ops: tuple[int, int], disabled: frozenset[str] = frozenset()):
        self.seed, self.rng, self.disabled = seed, random.Random(seed), disabled
        self.ops = self.rng.randint(*ops)
        self.features: set[str] = set()
        self.labels = 0
        self.paging = self.rng.random() < 0.6
        self.ie = False
        self.timer = "off"                    # "off", "periodic", "oneshot"
        self.checkpoints = 0
        self.user_pages: list[list[str]] = [[], []]
        self.user_words = [0, 0]
        self.tables = L.initial_tables({frame: self.frame_flags(frame) for frame in L.RANDOM_FLAG_FRAMES},
                                       {d: (self.random_pde(1), self.random_pde(2)) for d in L.DIRECTORIES},
                                       [self.random_region2_pte() for _ in range(L.REGION2_PAGES)])
        self.tables.root = self.rng.choice(L.DIRECTORIES)
        self.initial = {frame: dict(entries) for frame, entries in self.tables.entries.items()}
        self.ctx = Context(False, [])
        self.unspecified: dict[str, str] = {}

    # --- the whole program ---------------------------------------------------------------------

    def program(self) -> Program:
        """Generate the body, then lay out every page around it."""
        rng = self.rng
        seeds = {L.REG_NAMES[r]: self.value() for r in FREE_REGS if rng.random() < 0.85}
        setup = L.setup_code(seeds, self.value(), self.value(), self.tables.root if self.paging else None)
        if self.paging:
            self.features.add("paging")
        for _ in range(self.ops):
            self.kernel_op()
        self.ctx.lines.append(f"{FIXED_MARK}the end")
        self.end()
        handler = L.trap_handler(rng.randint(2, 12), rng.choice((3000, 20000, 60000)))
        lines = [f"# Kite32 differential program, seed {self.seed} (tests/differential/generator.py)",
                 f"# link: kite-ld -Ttext {L.TEXT:#x}; run with --mem {L.RAM_SIZE >> 10}K",
                 f"{INPUT_MARK}{self.rng.randbytes(self.rng.choice((0, 0, 1, 4, 16, 40))).hex()}",
                 f"{FIXED_MARK}the page tables, kdata and the data pages",
                 "        .text", "        .globl _start"]
        lines += self.table_pages(("page_dir", "pt0", "pt1", "pt_mmio"))
        lines += ["kdata:", f"        .space  {L.PAGE}"]
        for i in range(len(L.DATA)):
            lines += [f"data{i}:"] + self.data_page()
        for i, page in enumerate(self.user_pages):
            lines += [f"{FIXED_MARK}user page {i}", f"user{i}:"] + page
            lines += [f"{FIXED_MARK}end of user page {i}", "        syscall", f"        .balign {L.PAGE}"]
        lines += self.table_pages(("page_dir2",))
        lines += [f"{FIXED_MARK}kernel text", "ktext:"] + setup + ["body_start:"] + self.ctx.lines
        lines += [f"{FIXED_MARK}the trap handler", "body_end:"] + handler + ["ktext_end:"]
        return Program(self.seed, "\n".join(lines) + "\n", self.features, self.unspecified)

    def table_pages(self, names: tuple[str, ...]) -> list[str]:
        """The named table pages (layout.LAYOUT_LABELS) with their boot-time contents."""
        boot = L.Tables()
        boot.entries = self.initial
        return [line for name in names for line in [f"{name}:"] + boot.render(L.LAYOUT_LABELS[name])]

    def data_page(self) -> list[str]:
        """A data page: random words at its start and its end, zeros between."""
        head = [f"        .word   {self.value():#010x}" for _ in range(64)]
        tail = [f"        .word   {self.value():#010x}" for _ in range(4)]
        return head + [f"        .space  {L.PAGE - 68 * 4}"] + tail

    def end(self) -> None:
        """halt; a power-off store with a random exit code (then halt); or a
        stop on an exception that cannot be handled: tvec 0, or a trap vector
        whose fetch faults (a triple fault)."""
        roll = self.rng.random()
        if roll < 0.3:
            self.emit("halt")
            return
        if roll < 0.45:
            self.emit("mtcr    tvec, zero")
            self.features.add("unhandled")
            self.final_exception()
            return
        if roll < 0.55 and self.triple_fault():
            return
        base, value = self.rng.sample([r for r in FREE_REGS if r not in self.ctx.reserved], 2)
        self.emit(f"li      {self.name(base)}, {POWER_BASE:#x}")
        self.emit(f"li      {self.name(value)}, {self.rng.getrandbits(32):#x}")
        self.emit(f"sw      {self.name(value)}, 0({self.name(base)})")
        self.emit("halt")

    def final_exception(self) -> None:
        """An instruction that raises an exception, then halt (never reached)."""
        self.choose([(self.trap, 2), (self.illegal, 1), (self.divide_by_zero, 1)])
        self.emit("halt")

    def divide_by_zero(self) -> None:
        zero = self.pick_reg()
        self.emit(f"li      {self.name(zero)}, 0")
        self.emit(f"divu    {self.name(self.pick_reg(True))}, {self.name(self.src())}, {self.name(zero)}")

    def triple_fault(self) -> bool:
        """tvec = an address whose fetch faults, then an exception.  What
        status, pc and the trap registers hold after such a stop is not in
        docs/isa.md ("Trap entry and rfe" only says the machine stops), so
        they are not compared."""
        targets = [va for va in (0, 0x00300000, L.ABOVE_RAM, L.REGION3, 0xC0000000, UART_BASE)
                   if self.tables.fetch_faults(va, self.paging, False)]
        if not targets:
            return False
        reg = self.name(self.pick_reg())
        self.emit(f"li      {reg}, {self.rng.choice(targets) + 4 * self.rng.randrange(16):#x}")
        self.emit(f"mtcr    tvec, {reg}")
        self.final_exception()
        why = ("docs/isa.md, \"Trap entry and rfe\": an exception raised by the first instruction of a trap "
               "handler \"stop[s] the machine\"; the state it leaves is not specified")
        self.unspecified.update(pc=why, crs=why)
        self.features.add("triple-fault")
        return True

    # --- small helpers ---------------------------------------------------------------------------

    def emit(self, text: str) -> None:
        self.ctx.lines.append(f"        {text}")

    def label(self) -> str:
        self.labels += 1
        return f"L{self.labels}"

    def place(self, label: str) -> None:
        self.ctx.lines.append(f"{label}:")

    @staticmethod
    def name(reg: int) -> str:
        return L.REG_NAMES[reg]

    def pick_reg(self, zero_ok: bool = False) -> int:
        """A register the code may write (never sp, never a reserved one)."""
        if zero_ok and self.rng.random() < 0.05:
            return 0
        return self.rng.choice([r for r in FREE_REGS if r not in self.ctx.reserved])

    def src(self) -> int:
        """Any register as a source (zero and sp included)."""
        return self.rng.choice(range(16)) if self.rng.random() < 0.2 else self.rng.choice(FREE_REGS)

    def value(self) -> int:
        """An interesting or random 32-bit value."""
        if self.rng.random() < 0.5:
            return self.rng.choice(INTERESTING)
        return self.rng.getrandbits(self.rng.choice((8, 16, 32)))

    def imm18(self) -> int:
        roll = self.rng.random()
        if roll < 0.3:
            return self.rng.choice((0, 1, -1, 2, 4, 0x7FF, 0xFFF, 0x1FFFF, -0x20000, 0x8000, -0x8000))
        if roll < 0.7:
            return self.rng.randint(-2048, 2047)
        return self.rng.randint(-0x20000, 0x1FFFF)

    def random_flags(self) -> int:
        rng = self.rng
        return ((PTE_P if rng.random() < 0.85 else 0) | (PTE_W if rng.random() < 0.6 else 0)
                | (PTE_U if rng.random() < 0.6 else 0) | (PTE_A if rng.random() < 0.25 else 0)
                | (PTE_D if rng.random() < 0.25 else 0))

    def frame_flags(self, frame: int) -> int:
        """Flags for the identity PTE of a random-flag frame: the user pages
        are mostly runnable (P and U), so snippets get to run."""
        flags = self.random_flags()
        if frame in L.USER and self.rng.random() < 0.7:
            flags |= PTE_P | PTE_U
        return flags

    def random_pde(self, which: int) -> int:
        """A value for PDE 1 (usually pt1) or PDE 2 (usually absent)."""
        rng = self.rng
        if which == 1:
            frame = rng.choices((L.PT1, L.PT0, L.PAGE_DIR, L.PAGE_DIR2, L.PT_MMIO, L.ABOVE_RAM, TIMER_BASE),
                                (70, 7, 4, 4, 6, 5, 5))[0]
            return frame | self.random_flags()
        return rng.choices((0, L.FAR_ABOVE_RAM | PTE_P | PTE_W | PTE_U, L.PT1 | self.random_flags(),
                            L.PT0 | PTE_P | PTE_U), (50, 20, 20, 10))[0]

    def random_region2_pte(self) -> int:
        """A pt1 entry: usually a data frame, sometimes a table, code, a device
        or nothing; random flags."""
        rng = self.rng
        if rng.random() < 0.1:
            return 0
        frame = rng.choices(
            (rng.choice(L.DATA), rng.choice(L.FREE_FRAMES), L.BOOTINFO, 0, L.ABOVE_RAM, L.FAR_ABOVE_RAM,
             UART_BASE, TIMER_BASE, POWER_BASE, L.DISK_PAGE, rng.choice(L.TABLE_FRAMES), L.KDATA,
             rng.choice(L.USER), L.KTEXT),
            (40, 6, 3, 3, 4, 2, 4, 5, 2, 2, 10, 3, 4, 3))[0]
        return frame | self.random_flags()

    # --- operation selection ---------------------------------------------------------------------

    def kernel_op(self) -> None:
        """One random operation of the kernel body."""
        ops = [(self.alu_r, 12), (self.alu_i, 10), (self.load_constant, 4), (self.divide, 3),
               (self.memory, 20), (self.branch, 5), (self.loop, 2), (self.jump, 3),
               (self.bad_jump, 1.5), (self.trap, 2), (self.illegal, 2), (self.interrupt_enable, 2),
               (self.write_status, 1), (self.rdsr, 1.5), (self.wrsr, 1.5), (self.mfcr, 2),
               (self.mtcr, 2), (self.tlb, 1.5), (self.rewrite_table, 6), (self.toggle_paging, 1.5),
               (self.program_timer, 2), (self.wfi, 1.5), (self.user_excursion, 4), (self.uart, 1.5),
               (self.checkpoint, 2), (self.patch_code, 1.5), (self.console_irq, 0.7)]
        self.choose(ops)

    def user_op(self) -> None:
        """One random operation of a user snippet."""
        ops = [(self.alu_r, 12), (self.alu_i, 10), (self.load_constant, 4), (self.divide, 1.5),
               (self.memory, 20), (self.branch, 4), (self.jump, 2), (self.bad_jump, 0.5), (self.trap, 0.7),
               (self.illegal, 0.5), (self.rdsr, 1.5), (self.wrsr, 1.5), (self.privileged, 0.7)]
        self.choose(ops)

    def simple_op(self) -> None:
        """One operation that neither jumps nor changes machine state: for
        branch shadows and loop bodies."""
        ops = [(self.alu_r, 10), (self.alu_i, 8), (self.load_constant, 2), (self.divide, 2),
               (self.memory, 12)]
        if not self.ctx.user:
            ops += [(self.trap, 1), (self.illegal, 1)]
        self.choose(ops)

    def choose(self, ops: list[tuple]) -> None:
        """Run one of the weighted operations `ops`, never a disabled one."""
        ops = [(op, weight) for op, weight in ops if op.__name__ not in self.disabled]
        op = self.rng.choices([op for op, _ in ops], [weight for _, weight in ops])[0]
        self.ctx.lines.append(f"{OP_MARK}{op.__name__}")
        op()

    # --- ALU ---------------------------------------------------------------------------------------

    def alu_r(self) -> None:
        op = self.rng.choice(R_OPS)
        self.emit(f"{op:<7} {self.name(self.pick_reg(True))}, {self.name(self.src())}, {self.name(self.src())}")

    def alu_i(self) -> None:
        rng, rd, rs = self.rng, self.name(self.pick_reg(True)), self.name(self.src())
        roll = rng.random()
        if roll < 0.3:
            self.emit(f"{rng.choice(SHIFT_I_OPS):<7} {rd}, {rs}, {rng.choice((0, 1, 15, 16, 31, rng.randint(0, 31)))}")
        elif roll < 0.4:
            self.emit(f"lui     {rd}, {rng.getrandbits(20):#x}")
        else:
            self.emit(f"{rng.choice(I_OPS):<7} {rd}, {rs}, {self.imm18()}")

    def load_constant(self) -> None:
        self.emit(f"li      {self.name(self.pick_reg())}, {self.value():#x}")

    def divide(self) -> None:
        """Division by zero (the divide exception, rd kept), -2^31 / -1, or random operands."""
        rng, op, rd = self.rng, self.rng.choice(DIV_OPS), self.name(self.pick_reg(True))
        roll = rng.random()
        if roll < 0.4:
            zero = self.pick_reg()
            self.emit(f"li      {self.name(zero)}, 0")
            self.emit(f"{op:<7} {rd}, {self.name(self.src())}, {self.name(zero)}")
            self.features.add("divide-by-zero")
        elif roll < 0.55:
            a, b = self.pick_reg(), self.pick_reg()
            if a == b:
                return
            self.emit(f"li      {self.name(a)}, 0x80000000")
            self.emit(f"li      {self.name(b)}, -1")
            self.emit(f"{op:<7} {rd}, {self.name(a)}, {self.name(b)}")
        else:
            self.emit(f"{op:<7} {rd}, {self.name(self.src())}, {self.name(self.src())}")

    # --- memory ------------------------------------------------------------------------------------

    def memory(self) -> None:
        """A load or store of a random width at a random address (see address())."""
        rng = self.rng
        store = rng.random() < 0.45
        mnemonic = rng.choice(tuple(STORES if store else LOADS))
        width = (STORES if store else LOADS)[mnemonic]
        address = self.address(store, width)
        if address is None:
            return
        data = self.name(self.src() if store else self.pick_reg(True))
        if address < 0x20000 and rng.random() < 0.25:
            self.emit(f"{mnemonic:<7} {data}, {address}(zero)")
            return
        base = self.pick_reg()
        offset = rng.choice((0, 0, rng.randint(-2048, 2047), rng.randint(-0x20000, 0x1FFFF)))
        self.emit(f"li      {self.name(base)}, {(address - offset) & L.M32:#x}")
        self.emit(f"{mnemonic:<7} {data}, {offset}({self.name(base)})")

    def address(self, store: bool, width: int) -> int | None:
        """A virtual address for an access of `width`, misaligned now and then.
        A store never reaches a frame holding tables or code (layout.PROTECTED)
        nor a device register whose write would change what the generator
        tracks (the timer's CTRL and INTERVAL, UART CTRL, power EXIT)."""
        for _ in range(8):
            page = self.page()
            offset = self.offset(page, width)
            address = (page + offset) & L.M32
            if width > 1 and self.rng.random() < 0.1:
                address = (address & ~(width - 1)) + self.rng.randint(1, width - 1)
                self.features.add("misaligned")
            if not store or self.store_allowed(address):
                return address
        return None

    def page(self) -> int:
        """A page to access: RAM of every kind, devices, nothing."""
        rng = self.rng
        if not self.paging:
            return rng.choices(
                (rng.choice(L.STORE_FRAMES), rng.choice(L.PROTECTED),
                 rng.choice((L.ABOVE_RAM, L.FAR_ABOVE_RAM, 0x7FFFF000, 0xEFFFF000)),
                 rng.choice(L.MMIO_PAGES)), (55, 15, 12, 18))[0]
        return rng.choices(
            (rng.choice(L.DATA + (L.BOOTINFO,)), L.REGION2 + rng.randrange(L.REGION2_PAGES + 2) * L.PAGE,
             rng.choice(L.PROTECTED), rng.choice(L.MMIO_PAGES),
             rng.choice((0, L.ABOVE_RAM, 0x00300000, L.REGION3, L.REGION3 + 0x5000, 0xC0000000))),
            (35, 35, 10, 10, 10))[0]

    def offset(self, page: int, width: int) -> int:
        rng = self.rng
        if page & PTE_FRAME_MASK in L.MMIO_PAGES or self.tables.frame(page, self.paging) in L.MMIO_PAGES:
            return rng.choice((0, 4, 8, 12, 0x10, rng.randrange(0, L.PAGE, 4)))
        roll = rng.random()
        if roll < 0.6:
            return rng.randrange(0, 256, width)
        if roll < 0.8:
            return rng.randrange(L.PAGE - 16, L.PAGE, width)
        return rng.randrange(0, L.PAGE, width)

    def store_allowed(self, address: int) -> bool:
        frame = self.tables.frame(address, self.paging)
        if frame is None or self.paging and self.tables.store_faults(address, self.ctx.user):
            return True
        if frame in L.PROTECTED:
            return False
        register = address & 0xFFC
        if frame == UART_BASE:
            return register == 0 or register >= 0x10
        if frame == TIMER_BASE:
            return register == 0xC or register >= 0x10
        if frame == POWER_BASE:
            return register >= 4
        return True

    def checkpoint(self) -> None:
        """Dump every register into the next checkpoint slot in kdata."""
        slot = L.CHECKPOINTS + (self.checkpoints % L.CHECKPOINT_SLOTS) * L.CHECKPOINT_SIZE
        self.checkpoints += 1
        for r in FREE_REGS:
            self.emit(f"sw      {self.name(r)}, {slot + 4 * r}(sp)")

    def console_irq(self) -> None:
        """Turn the UART's RX interrupt on or off (the handler reads a byte per interrupt)."""
        base, value = self.rng.sample([r for r in FREE_REGS if r not in self.ctx.reserved], 2)
        self.emit(f"li      {self.name(value)}, {int(self.rng.random() < 0.6)}")
        self.emit(f"li      {self.name(base)}, {UART_BASE:#x}")
        self.emit(f"sw      {self.name(value)}, 12({self.name(base)})")
        self.features.add("console-irq")

    def uart(self) -> None:
        byte, base = self.rng.randint(0x20, 0x7E), self.pick_reg()
        value = self.pick_reg()
        if base == value:
            return
        self.emit(f"li      {self.name(value)}, {byte}")
        self.emit(f"li      {self.name(base)}, {UART_BASE:#x}")
        self.emit(f"sw      {self.name(value)}, 0({self.name(base)})")

    def patch_code(self) -> None:
        """Store a known ALU instruction (or an illegal word) over an
        instruction of the body, then run it: once, or in a counted loop that
        runs the old word first and the new one after (docs/isa.md, "Memory
        access": "a store is visible to the next instruction, including to
        instruction fetch")."""
        rng = self.rng
        data, base, counter = rng.sample([r for r in FREE_REGS if r not in self.ctx.reserved], 3)
        self.ctx.reserved |= {counter, data, base}
        word = self.alu_word()
        self.ctx.reserved -= {counter, data, base}
        slot = self.label()
        store = [f"li      {self.name(data)}, {word:#010x}", f"la      {self.name(base)}, {slot}",
                 f"sw      {self.name(data)}, 0({self.name(base)})"]
        if rng.random() < 0.5:
            for line in store:
                self.emit(line)
            for _ in range(rng.randint(0, 2)):
                self.alu_r()
            self.place(slot)
            self.alu_r()
        else:
            top = self.label()
            self.emit(f"li      {self.name(counter)}, {rng.randint(2, MAX_LOOP)}")
            self.place(top)
            self.place(slot)
            self.ctx.reserved |= {counter, data, base}
            self.alu_r()
            self.ctx.reserved -= {counter, data, base}
            for line in store:
                self.emit(line)
            self.emit(f"addi    {self.name(counter)}, {self.name(counter)}, -1")
            self.emit(f"bnez    {self.name(counter)}, {top}")
        self.features.add("self-modifying")

    def alu_word(self) -> int:
        """A random ALU instruction word (encodings.alu_word), or now and then
        an illegal word; it writes neither sp nor a reserved register."""
        rng = self.rng
        if rng.random() < 0.15:
            return illegal_word(rng)
        return alu_word(rng, self.pick_reg(True), self.src(), self.src(), self.imm18())

    # --- control flow ------------------------------------------------------------------------------

    def branch(self) -> None:
        """A forward branch over a few simple operations."""
        skip = self.label()
        self.emit(f"{self.rng.choice(BRANCHES):<7} {self.name(self.src())}, {self.name(self.src())}, {skip}")
        for _ in range(self.rng.randint(1, 5)):
            self.simple_op()
        self.place(skip)

    def loop(self) -> None:
        """A counted loop of at most MAX_LOOP iterations; its counter is
        reserved, so no operation in the body writes it."""
        counter, top = self.pick_reg(), self.label()
        self.emit(f"li      {self.name(counter)}, {self.rng.randint(1, MAX_LOOP)}")
        self.place(top)
        self.ctx.reserved.add(counter)
        for _ in range(self.rng.randint(1, 4)):
            self.simple_op()
        self.ctx.reserved.discard(counter)
        self.emit(f"addi    {self.name(counter)}, {self.name(counter)}, -1")
        self.emit(f"bnez    {self.name(counter)}, {top}")
        self.features.add("loop")

    def jump(self) -> None:
        """jal or jalr forward (jalr with a misaligned target now and then:
        the misaligned exception, rd kept)."""
        rng, target, link = self.rng, self.label(), self.name(self.pick_reg(True))
        roll = rng.random()
        if roll < 0.4:
            self.emit(f"jal     {link}, {target}")
        else:
            base = self.name(self.pick_reg())
            self.emit(f"la      {base}, {target}")
            misaligned = roll > 0.85
            self.emit(f"jalr    {link}, {base}, {rng.randint(1, 3) if misaligned else 0}")
            if misaligned:
                self.features.add("misaligned-jalr")
        for _ in range(rng.randint(0, 3)):
            self.simple_op()
        self.place(target)

    def bad_jump(self) -> None:
        """jalr to an address whose fetch certainly faults (not present, no U
        in user mode, no RAM behind it, a device): the handler resumes at the
        continuation stored in [CONT] (the kernel) or ends the snippet (user)."""
        candidates = [0, 0x00300000, L.ABOVE_RAM, L.FAR_ABOVE_RAM, 0xC0000000, L.REGION3, UART_BASE,
                      TIMER_BASE, L.NO_DEVICE_PAGE, 0xFFFFF000]
        candidates += [L.REGION2 + i * L.PAGE for i in range(L.REGION2_PAGES + 2)]
        candidates += list(L.DATA) + list(L.USER) + [L.KTEXT]
        user = self.ctx.user
        faulting = [va for va in candidates if self.tables.fetch_faults(va, self.paging, user)]
        if not faulting:
            return
        target = self.rng.choice(faulting) + self.rng.randrange(0, 64, 4)
        base, cont = self.pick_reg(), self.label()
        if not user:
            self.emit(f"la      {self.name(base)}, {cont}")
            self.emit(f"sw      {self.name(base)}, {L.CONT}(sp)")
        self.emit(f"li      {self.name(base)}, {target:#x}")
        self.emit(f"jalr    {self.name(self.pick_reg(True))}, {self.name(base)}, 0")
        self.place(cont)
        self.features.add("fetch-fault")

    def trap(self) -> None:
        self.emit(self.rng.choice(("syscall", "break")))

    def illegal(self) -> None:
        self.emit(f".word   {illegal_word(self.rng):#010x}")
        self.features.add("illegal")

    # --- privileged state --------------------------------------------------------------------------

    def interrupt_enable(self) -> None:
        self.ie = self.rng.random() < 0.6
        self.emit("ei" if self.ie else "di")

    def write_status(self) -> None:
        """mtcr status with KM kept at 1, random IE, PKM, PIE, UF and undefined bits."""
        rng = self.rng
        value = (STATUS_KM | (STATUS_IE if rng.random() < 0.5 else 0) | (STATUS_PKM if rng.random() < 0.5 else 0)
                 | (STATUS_PIE if rng.random() < 0.5 else 0) | rng.getrandbits(8) << 8)
        if rng.random() < 0.3:
            value |= rng.getrandbits(32) & ~0xFF0F
        self.ie = bool(value & STATUS_IE)
        reg = self.name(self.pick_reg())
        self.emit(f"li      {reg}, {value:#x}")
        self.emit(f"mtcr    status, {reg}")

    def rdsr(self) -> None:
        """rdsr masked to the UF byte (module doc: the sensitive pair)."""
        rd = self.name(self.pick_reg())
        self.emit(f"rdsr    {rd}")
        self.emit(f"andi    {rd}, {rd}, 0xFF00")
        self.features.add("rdsr")

    def wrsr(self) -> None:
        """wrsr: any value in user mode; in kernel mode, with interrupts off,
        the current privileged bits (read with mfcr status) plus random UF and
        undefined bits (module doc: the sensitive pair)."""
        if self.ctx.user:
            self.emit(f"wrsr    {self.name(self.src())}")
            self.features.add("wrsr")
            return
        if self.ie:
            return
        status, extra = self.pick_reg(), self.pick_reg()
        if status == extra:
            return
        junk = self.rng.getrandbits(32) & ~0xFF0F if self.rng.random() < 0.3 else 0
        self.emit(f"mfcr    {self.name(status)}, status")
        self.emit(f"andi    {self.name(status)}, {self.name(status)}, 0xF")
        self.emit(f"li      {self.name(extra)}, {self.rng.getrandbits(8) << 8 | junk:#x}")
        self.emit(f"or      {self.name(status)}, {self.name(status)}, {self.name(extra)}")
        self.emit(f"wrsr    {self.name(status)}")
        self.features.add("wrsr")

    def mfcr(self) -> None:
        cr = self.rng.choice(("status", "tvec", "cause", "badaddr", "epc", "scratch", "ptb", "timer"))
        self.emit(f"mfcr    {self.name(self.pick_reg(True))}, {cr}")

    def mtcr(self) -> None:
        self.emit(f"mtcr    {self.rng.choice(L.CR_FREE)}, {self.name(self.src())}")

    def privileged(self) -> None:
        """A privileged instruction in user mode: the privileged-instruction exception."""
        op = self.rng.choice(PRIVILEGED_IN_USER)
        reg = self.name(self.src())
        self.emit({"tlbinv": f"tlbinv  {reg}", "mfcr": f"mfcr    {reg}, status",
                   "mtcr": f"mtcr    {self.rng.choice(('status', 'ptb', 'tvec', 'scratch'))}, {reg}"}.get(op, op))

    def tlb(self) -> None:
        if self.rng.random() < 0.4:
            self.emit("tlbflush")
            return
        reg = self.pick_reg()
        self.emit(f"li      {self.name(reg)}, {self.rng.choice((self.page(), self.value())):#x}")
        self.emit(f"tlbinv  {self.name(reg)}")

    def toggle_paging(self) -> None:
        """Paging off (ptb = 0), or on with either page directory (from the
        other one: an address-space switch; the same one: a reload, a flush)."""
        if self.paging and self.rng.random() < 0.4:
            self.emit("mtcr    ptb, zero")
            self.paging = False
            return
        self.tables.root = self.rng.choice(L.DIRECTORIES)
        reg = self.name(self.pick_reg())
        self.emit(f"li      {reg}, {self.tables.root | 1:#x}")
        self.emit(f"mtcr    ptb, {reg}")
        self.paging = True
        self.features.add("paging")
        if self.tables.root == L.PAGE_DIR2:
            self.features.add("second-directory")

    def rewrite_table(self) -> None:
        """Store a new known value into a PDE or PTE (a whole word, or its low
        byte or half), then flush before anything can use it."""
        rng, tables = self.rng, self.tables
        roll = rng.random()
        if roll < 0.25:
            which = rng.choice((1, 1, 2))
            frame, i, value = rng.choice(L.DIRECTORIES), which, self.random_pde(which)
        elif roll < 0.5:
            target = rng.choice(L.RANDOM_FLAG_FRAMES)
            frame, i, value = L.PT0, L.index(target, 1), target | self.frame_flags(target)
        else:
            frame, i, value = L.PT1, rng.randrange(L.REGION2_PAGES), self.random_region2_pte()
        old, width = tables.get(frame, i), rng.choices((4, 2, 1), (70, 15, 15))[0]
        if width == 2 and frame != L.PT1:
            width = 1        # keep pt0 an identity map and every PDE on a table of the layout
        if width < 4:
            mask = (1 << 8 * width) - 1
            value = (old & ~mask) | (value & mask)
            self.features.add("partial-pte-store")
        address = frame + 4 * i
        alias = self.writable_alias(frame)
        if alias is not None and rng.random() < 0.4:
            address = alias + 4 * i
            self.features.add("alias-pte-store")
        data, base = self.pick_reg(), self.pick_reg()
        if data == base:
            return
        touched = self.mapped_through(frame, i)
        self.touch(touched)
        part = value & ((1 << 8 * width) - 1)
        self.emit(f"li      {self.name(data)}, {part:#x}")
        self.emit(f"li      {self.name(base)}, {address:#x}")
        self.emit(f"{ {4: 'sw', 2: 'sh', 1: 'sb'}[width]:<7} {self.name(data)}, 0({self.name(base)})")
        tables.set(frame, i, value)
        self.flush_after(frame, i)
        self.touch(touched)
        self.features.add("pte-rewrite")

    def mapped_through(self, frame: int, i: int) -> list[int]:
        """Pages of the current address space whose translation uses entry i
        of the table in `frame` (a PDE: one page of its 4 MiB)."""
        if frame == self.tables.root:
            return [i << 22 | self.rng.randrange(L.REGION2_PAGES) << 12]
        return [u << 22 | i << 12 for u in self.tables.users_of(frame)]

    def touch(self, pages: list[int]) -> None:
        """Now and then, access one of `pages` (paging on): before a table
        change it fills the TLB, after the flush it must see the change."""
        if not self.paging or not pages or self.rng.random() < 0.4:
            return
        address = self.rng.choice(pages) + self.rng.randrange(0, 256, 4)
        store = self.rng.random() < 0.3 and self.store_allowed(address)
        base, data = self.pick_reg(), self.pick_reg(not store)
        self.emit(f"li      {self.name(base)}, {address:#x}")
        self.emit(f"{'sw' if store else self.rng.choice(('lw', 'lbu')):<7} {self.name(data)}, 0({self.name(base)})")
        self.features.add("tlb-touch")

    def writable_alias(self, frame: int) -> int | None:
        """A region-2 page that certainly maps `frame` writable in kernel mode
        (P and W at both levels), if paging is on and there is one."""
        if not self.paging:
            return None
        for j in range(L.REGION2_PAGES):
            va = L.REGION2 + j * L.PAGE
            pde, pte = self.tables.walk(va)
            if pte is not None and pte & PTE_FRAME_MASK == frame and pde & pte & PTE_W and pde & pte & PTE_P:
                return va
        return None

    def flush_after(self, frame: int, i: int) -> None:
        """The flush a change of entry i of the table in `frame` needs: tlbinv
        when exactly one page can have cached it, else tlbflush (or a ptb
        reload)."""
        users = self.tables.users_of(frame) if frame not in L.DIRECTORIES else []
        if len(users) == 1 and self.rng.random() < 0.6:
            reg = self.name(self.pick_reg())
            self.emit(f"li      {reg}, {(users[0] << 22 | i << 12 | self.rng.randrange(L.PAGE)):#x}")
            self.emit(f"tlbinv  {reg}")
        elif self.paging and self.rng.random() < 0.3:
            reg = self.name(self.pick_reg())
            self.emit(f"li      {reg}, {self.tables.root | 1:#x}")
            self.emit(f"mtcr    ptb, {reg}")
        else:
            self.emit("tlbflush")

    # --- timer and user mode -------------------------------------------------------------------------

    def program_timer(self) -> None:
        """Start the timer (periodic or one-shot) at a random interval, or stop it."""
        rng = self.rng
        interval = rng.choices((rng.randint(1, 20), rng.randint(21, 200), rng.randint(201, 3000)),
                               (30, 50, 20))[0]
        mode = rng.choices(("periodic", "oneshot", "off"), (70, 15, 15))[0]
        base, value = self.pick_reg(), self.pick_reg()
        if base == value:
            return
        self.emit(f"li      {self.name(base)}, {TIMER_BASE:#x}")
        if mode != "off":
            self.emit(f"li      {self.name(value)}, {interval}")
            self.emit(f"sw      {self.name(value)}, 4({self.name(base)})")
        self.emit(f"li      {self.name(value)}, {({'periodic': 3, 'oneshot': 1, 'off': 0})[mode]}")
        self.emit(f"sw      {self.name(value)}, 0({self.name(base)})")
        self.timer = mode
        self.features.add("timer")

    def wfi(self) -> None:
        """wfi: usually while a periodic timer runs (the handler never stops
        it, so the body goes on); now and then with no source left, which
        stops the machine (module doc)."""
        if self.timer == "periodic":
            self.emit("wfi")
            self.features.add("wfi")
        elif self.rng.random() < 0.1:
            self.emit("wfi")
            self.features.add("wfi-maybe-no-source")

    def user_excursion(self) -> None:
        """Enter user mode with rfe into a new snippet; every exception there
        (the snippet ends with syscall) brings the kernel back to the
        continuation, with IE = the IE the snippet ran with."""
        page = min((0, 1), key=lambda p: self.user_words[p])
        if self.user_words[page] > USER_PAGE_BUDGET or not self.paging and self.rng.random() < 0.6:
            return
        if not self.paging:
            self.features.add("user-paging-off")
        entry, cont, reg = f"usr{self.labels}", self.label(), self.name(self.pick_reg())
        pie = self.rng.random() < 0.6
        self.emit(f"li      {reg}, {L.user_entry_status(pie, self.rng.getrandbits(8)):#x}")
        self.emit(f"mtcr    status, {reg}")
        self.emit(f"la      {reg}, {cont}")
        self.emit(f"sw      {reg}, {L.CONT}(sp)")
        self.emit(f"la      {reg}, {entry}")
        self.emit(f"mtcr    epc, {reg}")
        self.emit("rfe")
        self.place(cont)
        self.ie = pie
        kernel, self.ctx = self.ctx, Context(True, [f"{FIXED_MARK}snippet", f"{entry}:"])
        for _ in range(self.rng.randint(*SNIPPET_OPS)):
            self.user_op()
        self.emit("syscall")
        self.user_pages[page] += self.ctx.lines
        self.user_words[page] += sum(2 if line.split()[0] in ("li", "la") else 1
                                     for line in self.ctx.lines if line.startswith(" "))
        self.ctx = kernel
        self.features.add("user")


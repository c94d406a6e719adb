"""Machine simulation: the lecture's "approach 1", for `kite run --sim` and `kite compare`.

The VMM interprets every guest instruction in software: fetch through a
software walk of the guest's page tables, decode with the ISA table, execute
one mnemonic's function, check for interrupts, repeat.  There is no direct
execution and no TLB: every fetch and every load or store walks the guest's
tables (`guestwalk.GuestTables`, the same rules as the hardware walker), and
each walk's memory references are counted.  The guest sees a whole simulated
Kite32 machine: its own RAM, the UART, timer and power devices, the bare
boot state.

This is a second, deliberately independent implementation of the
architecture's instruction semantics (trap entry, rfe, status writes and load
extension included: none of it calls asm.arch, whose rules the machine and
the VMM share), so that it can serve as the oracle of the differential
tests: they run the same images and random programs here, on the machine and
under the VMM, and require the same architectural state, console output,
exit code and instruction count.  It shares with the machine only what is not
instruction semantics: the ISA table's decoder, the software page walker
(guestwalk, held to the MMU by its own tests), the devices, the loader, and
the wording of stop messages.

How it goes fast without changing a count (none of it is the machine's
translator; the semantics stay this module's tables):
- Decode cache per physical page: the first fetch of a word decodes it into
  an executor, a function of the pc made from this module's tables
  (REGISTER_OPS and the others compile once per entry into a factory); a
  write to the page drops its executors (PhysicalMemory.code_pages).
- Walks remembered: a successful walk is kept per (ptb, mode, page,
  access).  The same walk again reads the same PDE and PTE, finds A (and D)
  set and writes nothing, so while no guest store has touched the pages of
  those two entries it is counted as one walk and two references without
  being made.  The walker's own A/D write-backs cannot change a remembered
  outcome, so they need no watching.
- The devices are brought to each tick as before, but only when the tick
  reaches the next device event or an instruction touched a device: the UART
  has no timed events and the timer none before its deadline.

Checkpoints (`--sim --checkpoint-at`, vmm/monitor/sim_checkpoint.py): the
simulated CPU gives and takes its state in the bare CPU's checkpoint form
(checkpoint, restore) without calling the machine CPU; the decode cache and
the remembered walks are caches and start empty.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import BinaryIO

from asm.arch import Access, triple_fault_message, unhandled_trap_message
from asm.isa import (BOOTINFO_ADDR, CAUSE_ERRCODE_SHIFT, CAUSE_INTERRUPT, CR_BADADDR, CR_CAUSE,
                     CR_EPC, CR_NAMES, CR_PTB, CR_STATUS, CR_TVEC, EXC_BREAKPOINT, EXC_BUS_ERROR, EXC_DIVIDE,
                     EXC_ILLEGAL, EXC_MISALIGNED, EXC_PAGE_FAULT, EXC_PRIVILEGED, EXC_SYSCALL,
                     LOAD_WIDTHS, MMIO_DEVICE_SIZE, NUM_REGS, MARKER_BASE, POWER_BASE, REG_A0,
                     STATUS_DEFINED, STATUS_IE, STATUS_KM, STATUS_PIE, STATUS_PKM, STATUS_PRIVILEGED,
                     STATUS_UF, STORE_WIDTHS, TIMER_BASE, UART_BASE, DISK_BASE, PAGE_SHIFT, PAGE_SIZE,
                     PRIVILEGED, base_decode)
from vmm.machine.bus import Bus
from vmm.machine.costs import DEFAULT_COST_MODEL, CostModel, modeled_cycles
from vmm.machine.devices.disk import Disk, DiskImage
from vmm.machine.devices.marker import Marker
from vmm.machine.devices.power import Power
from vmm.machine.devices.timer import Timer
from vmm.machine.devices.uart import ConsoleInput, Uart
from vmm.machine.errors import BusError
from vmm.machine.irq import InterruptLines
from vmm.machine.loader import load
from vmm.machine.outcome import CpuState, EndReason, RunResult, end_of_run
from vmm.machine.phases import split
from vmm.machine.stats import MachineStats, disk_figures, exception_names, interrupt_names
from vmm.machine.memory import ACCESSORS, PhysicalMemory
from vmm.machine.symbols import Symbolizer
from vmm.monitor.guestwalk import GuestFault, GuestTables, TableBusError

M32 = 0xFFFFFFFF


class SimTrap(Exception):
    """An exception the simulated instruction raised: it has no effect."""

    def __init__(self, cause: int, badaddr: int | None = None):
        super().__init__(cause)
        self.cause, self.badaddr = cause, badaddr


class CountingRAM:
    """The simulated RAM as the software walker sees it: an identity
    guest-physical map whose every table read and A/D write is counted."""

    def __init__(self, memory: PhysicalMemory):
        self.memory, self.refs = memory, 0

    def gpa_to_ma(self, address: int) -> int | None:
        return address if self.memory.contains(address, 4) else None

    def read(self, address: int, width: int) -> int:
        self.refs += 1
        return self.memory.read(address, width)

    def write(self, address: int, width: int, value: int) -> None:
        self.refs += 1
        self.memory.write(address, width, value)


class SimulatedDma:
    """The simulated disk's DMA: physical RAM, as on the bare machine, and
    every page it writes forgets the walks that read it (a DMA into a page
    table changes what a walk would find, as a store does)."""

    def __init__(self, simulator: "Simulator"):
        self.simulator, self.memory = simulator, simulator.memory

    def contains(self, paddr: int, length: int) -> bool:
        return self.memory.contains(paddr, length)

    def read_bytes(self, paddr: int, length: int) -> bytes:
        return self.memory.read_bytes(paddr, length)

    def write_bytes(self, paddr: int, data: bytes) -> None:
        self.memory.write_bytes(paddr, data)
        for page in range(paddr >> PAGE_SHIFT, (paddr + len(data) + PAGE_SIZE - 1) >> PAGE_SHIFT):
            self.simulator._stored(page << PAGE_SHIFT)


def signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def divide(a: int, b: int, remainder: bool) -> int:
    """Signed division toward zero (-2^31 / -1 wraps; rem takes the dividend's sign)."""
    if b == 0:
        raise SimTrap(EXC_DIVIDE)
    a, b = signed(a), signed(b)
    quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    return (a - b * quotient if remainder else quotient) & M32


def shift_right_arithmetic(value: int, amount: int) -> int:
    return (signed(value) >> min(amount, 31)) & M32


# The semantics of the ALU and branch instructions, as Python expressions: each table entry is
# compiled once into the factory of its executors (_factory), with a = rs1's value and
# b = rs2's or i = the sign-extended immediate (u = i as 32 bits); every result is 32-bit.
# rd = the expression, for the R format
REGISTER_OPS = {
    "add": "(a + b) & M32", "sub": "(a - b) & M32", "and": "a & b", "or": "a | b", "xor": "a ^ b",
    "sll": "(a << b) & M32 if b < 32 else 0", "srl": "a >> b if b < 32 else 0",
    "sra": "shift_right_arithmetic(a, b)", "slt": "int(signed(a) < signed(b))", "sltu": "int(a < b)",
    "mul": "(a * b) & M32", "div": "divide(a, b, False)", "rem": "divide(a, b, True)",
    "divu": "a // b if b else divide(a, b, False)", "remu": "a % b if b else divide(a, b, True)",
}
# rd = the expression, for the I format
IMMEDIATE_OPS = {
    "addi": "(a + i) & M32", "andi": "a & u", "ori": "a | u", "xori": "a ^ u",
    "slli": "(a << i) & M32", "srli": "a >> i", "srai": "shift_right_arithmetic(a, i)",
    "slti": "int(signed(a) < i)", "sltiu": "int(a < u)",
}
# taken when the expression holds: pc + target * 4, else pc + 4
BRANCHES = {
    "beq": "a == b", "bne": "a != b", "blt": "signed(a) < signed(b)", "bge": "signed(a) >= signed(b)",
    "bltu": "a < b", "bgeu": "a >= b",
}
TRAPS = {"syscall": EXC_SYSCALL, "break": EXC_BREAKPOINT, "hypercall": EXC_ILLEGAL}
LOCAL_SYSTEM = {"lui"}     # SYSTEM entries that change only registers and the pc
READ, WRITE, FETCH = 0, 1, 2              # access kinds, as small ints (they key remembered walks)
ACCESSES = (Access.READ, Access.WRITE, Access.FETCH)
MAX_REMEMBERED_WALKS = 1 << 16


class Simulator:
    """A whole Kite32 machine simulated instruction by instruction.  Same
    constructor and results as the bare Machine."""

    def __init__(self, mem_size: int, console_out: BinaryIO | None = None,
                 console_in: ConsoleInput | None = None, cost_model: CostModel = DEFAULT_COST_MODEL,
                 disk: DiskImage | None = None):
        self.memory = PhysicalMemory(mem_size)
        self.ram = CountingRAM(self.memory)
        self.irq, self.bus, self.cost_model = InterruptLines(), Bus(), cost_model
        self.uart = Uart(self.irq, console_out or sys.stdout.buffer, console_in or ConsoleInput(b""))
        self.timer = Timer(self.irq, lambda: self.ticks, lambda: None)
        self.power = Power(lambda reason: None)
        self.marks: list[tuple[int, MachineStats]] = []   # (marker, the figures right after its store)
        self._pending_marks: list[int] = []
        for base, device in ((UART_BASE, self.uart), (TIMER_BASE, self.timer), (POWER_BASE, self.power),
                             (MARKER_BASE, Marker(self._pending_marks.append))):
            self.bus.map(base, MMIO_DEVICE_SIZE, device)
        self.timed = (self.uart, self.timer)     # the devices with events in time
        self.disk: Disk | None = None
        if disk is not None:
            self.disk = Disk(self.irq, SimulatedDma(self), disk, lambda: self.ticks, lambda: None)
            self.bus.map(DISK_BASE, MMIO_DEVICE_SIZE, self.disk)
            self.timed = (self.uart, self.timer, self.disk)
        self.regs, self.cr = [0] * NUM_REGS, [0] * len(CR_NAMES)
        self.pc = self.ticks = self.instructions = self.ticks_idle = self.page_walks = 0
        self.exceptions: dict[int, int] = {}
        self.interrupts: dict[int, int] = {}
        self.state, self.stop_reason = CpuState.RUNNING, ""
        self.symbols = Symbolizer([])
        self.cmdline = ""                 # the kernel command line load() put in the boot-info block
        self.entering_trap = False        # a trap was entered and no instruction has retired since
        # the trace hook (vmm/tracing.py), None without --trace: trace("insn", pc, word) before each
        # instruction runs, trace("trap", cause, epc, badaddr) at each trap entry (_interpret_traced)
        self.trace = None
        # the decode cache: physical page -> its 1024 executors (None until first run), dropped when
        # the page is written (PhysicalMemory.code_pages)
        self._code: dict[int, list] = {}
        self.memory.code_write_listeners.append(self._code_written)
        # walks remembered: (ptb, user) -> {vpn << 2 | access: physical page}; the table of the
        # current ptb and mode (None: paging off); watched: table page -> (table, key) that read it
        self._walks: dict[tuple[int, bool], dict[int, int]] = {}
        self._current: list[dict | None] = [None]
        self._watched: dict[int, list[tuple[dict, int]]] = {}
        self._remembered = 0
        self._cached = [0]                # walks counted from memory by the executors, not yet added
        self._sync = [False]              # set by anything the interpreter loop must look at again

    def load(self, image_path: str, modules=(), cmdline: str = ""):
        """Load the image and modules as the bare machine's loader does; boot state."""
        image = load(self.memory, image_path, list(modules), cmdline)
        self.pc, self.regs[REG_A0], self.cr[CR_STATUS] = image.entry_paddr, BOOTINFO_ADDR, STATUS_KM
        self.symbols, self.cmdline = image.symbols, cmdline
        return image

    def checkpoint(self) -> dict:
        """The CPU's state and counters as JSON values, in the form of the
        machine CPU's checkpoint() (vmm/machine/snapshot.py): with no TLB,
        every translation is a miss and a walk, so translations = tlb_misses
        = page_walks."""
        counters = {"instructions": self.instructions, "ticks_idle": self.ticks_idle,
                    "translations": self.page_walks, "tlb_misses": self.page_walks, "page_walks": self.page_walks,
                    "walk_refs": self.ram.refs,
                    "exceptions": {str(code): count for code, count in self.exceptions.items()},
                    "interrupts": {str(irq): count for irq, count in self.interrupts.items()}}
        return {"regs": list(self.regs), "cr": list(self.cr), "pc": self.pc, "ticks": self.ticks,
                "state": str(self.state), "entering_trap": self.entering_trap, "counters": counters}

    def restore(self, state: dict) -> None:
        """Take a checkpoint()'s `state` (checked by the caller; a bare CPU's
        will do) on a fresh Simulator, whose caches are empty: registers, pc,
        ticks, mode, paging and counters (the walks from page_walks and
        walk_refs)."""
        self.regs[:], self.cr[:] = state["regs"], state["cr"]       # in place: the executors hold them
        self.pc, self.ticks = state["pc"], state["ticks"]
        self.state, self.entering_trap = CpuState(state["state"]), state["entering_trap"]
        counters = state["counters"]
        self.instructions, self.ticks_idle = counters["instructions"], counters["ticks_idle"]
        self.page_walks, self.ram.refs = counters["page_walks"], counters["walk_refs"]
        self.exceptions.update({int(code): count for code, count in counters["exceptions"].items()})
        self.interrupts.update({int(irq): count for irq, count in counters["interrupts"].items()})

    # --- the interpreter loop -------------------------------------------------------------

    def run(self, max_instructions: int | None = None) -> RunResult:
        """Interpret until the guest halts, powers off, stops on a fault, or
        `max_instructions` retire; then the disk's dirty sectors are written
        back (DiskError if that fails) and its lock released, as the bare
        machine does."""
        finished = False
        try:
            result = self._run(max_instructions)
            finished = True
        finally:
            if self.disk is not None:
                try:
                    if finished:
                        self.disk.image.write_back()
                finally:
                    self.disk.image.close()
        return result

    def _run(self, max_instructions: int | None) -> RunResult:
        """run() without the disk's write-back."""
        limit = max_instructions if max_instructions is not None else 1 << 62
        while self.state in (CpuState.RUNNING, CpuState.WAITING):
            if self.instructions >= limit:
                return self._result(EndReason.INSTRUCTION_LIMIT, max_instructions)
            if self.state is CpuState.WAITING and not self._idle():
                return self._result(EndReason.NO_INTERRUPT_SOURCE, max_instructions)
            (self._interpret if self.trace is None else self._interpret_traced)(limit)
            if self._pending_marks:
                self._take_marks()
        if self.state is CpuState.HALTED:
            return self._result(EndReason.HALT, max_instructions)
        if self.power.exit_code is not None:
            return self._result(EndReason.POWER_OFF, max_instructions)
        return self._result(EndReason.FAULT, max_instructions)

    def step(self) -> None:
        """One instruction (or one interrupt entry), then the devices catch up."""
        if self._take_interrupt(self.pc):
            return
        (self._interpret if self.trace is None else self._interpret_traced)(self.instructions + 1)

    def _take_interrupt(self, pc: int) -> bool:
        """Enter the lowest pending interrupt at `pc` if IE allows one; whether it did."""
        pending = self.irq.pending
        if not (pending and self.cr[CR_STATUS] & STATUS_IE):
            return False
        irq_number = (pending & -pending).bit_length() - 1
        self.interrupts[irq_number] = self.interrupts.get(irq_number, 0) + 1
        self.pc = pc
        self._enter_trap(CAUSE_INTERRUPT | irq_number, pc, None)
        return True

    def _interpret(self, limit: int) -> None:
        """Interpret instructions until `limit` retire, the state leaves
        RUNNING or a phase mark is pending.  Per instruction, as the
        hardware: an interrupt pending and enabled is taken; else fetch (a
        walk when paging is on), decode, execute, retire, the devices catch
        up.  The fetch's walk is made once per page and then counted as made
        again, for as long as nothing it read can have changed (_translate);
        so are the data accesses' (the executors).  Within a page the pc
        stays aligned between fetches made in full: only rfe and trap entry
        can make it misaligned, and both make the next fetch a full one."""
        irq, sync = self.irq, self._sync
        start = ticks = self.ticks
        end, pc = ticks + limit - self.instructions, self.pc
        deadline = self._deadline()
        fetch_vpn, slots, base, paging, fetches = -1, None, 0, 0, 0
        entering = self.entering_trap
        while ticks < end and self.state is CpuState.RUNNING:
            fetching = True
            try:
                while ticks < end:
                    if irq.pending and self._take_interrupt(pc):
                        pc, fetch_vpn, entering = self.pc, -1, True
                        if self.state is not CpuState.RUNNING:
                            break
                        continue
                    fetching = True
                    if pc >> PAGE_SHIFT != fetch_vpn or sync[0]:
                        sync[0] = False
                        slots, base, paging = self._fetch_page(pc)
                        fetch_vpn = pc >> PAGE_SHIFT
                    else:
                        fetches += paging
                    fetching = False
                    index = (pc & 0xFFF) >> 2
                    pc = (slots[index] or self._decode_slot(slots, index, base))(pc)
                    if entering:
                        self.entering_trap = entering = False
                    self.ticks = ticks = ticks + 1
                    if ticks >= deadline or sync[0]:
                        deadline = self._catch_up(ticks, deadline)
                        if sync[0] and (self.state is not CpuState.RUNNING or self._pending_marks):
                            break
                else:
                    continue
                break
            except SimTrap as trap:
                code = trap.cause & 0xFF
                self.exceptions[code] = self.exceptions.get(code, 0) + 1
                self.pc = pc
                self._enter_trap(trap.cause, pc, trap.badaddr)
                if entering and self.state is not CpuState.STOPPED:
                    self.state = CpuState.STOPPED
                    self.stop_reason = triple_fault_message(trap.cause, pc, trap.badaddr, fetching)
                pc, fetch_vpn, entering = self.pc, -1, self.entering_trap
                deadline = self._deadline()
        self.pc = pc
        self.instructions += ticks - start
        cached, self._cached[0] = self._cached[0] + fetches, 0
        self.page_walks += cached
        self.ram.refs += 2 * cached

    def _interpret_traced(self, limit: int) -> None:
        """_interpret with the trace on, the same steps in the same order:
        each instruction reported before it runs, and fetched in full (its
        walk made or remembered, counted as _interpret counts the fetches it
        skips: one walk and two references), so the figures do not change."""
        irq, sync, trace = self.irq, self._sync, self.trace
        start = ticks = self.ticks
        end, pc = ticks + limit - self.instructions, self.pc
        deadline = self._deadline()
        entering = self.entering_trap
        while ticks < end and self.state is CpuState.RUNNING:
            fetching = True
            try:
                if irq.pending and self._take_interrupt(pc):
                    pc, entering = self.pc, True
                    continue
                sync[0] = False
                slots, base, _ = self._fetch_page(pc)
                fetching = False
                index = (pc & 0xFFF) >> 2
                executor = slots[index] or self._decode_slot(slots, index, base)
                trace("insn", pc, self.memory.read(base | index << 2, 4))
                pc = executor(pc)
                if entering:
                    self.entering_trap = entering = False
                self.ticks = ticks = ticks + 1
                if ticks >= deadline or sync[0]:
                    deadline = self._catch_up(ticks, deadline)
                    if sync[0] and (self.state is not CpuState.RUNNING or self._pending_marks):
                        break
            except SimTrap as trap:
                code = trap.cause & 0xFF
                self.exceptions[code] = self.exceptions.get(code, 0) + 1
                self.pc = pc
                self._enter_trap(trap.cause, pc, trap.badaddr)
                if entering and self.state is not CpuState.STOPPED:
                    self.state = CpuState.STOPPED
                    self.stop_reason = triple_fault_message(trap.cause, pc, trap.badaddr, fetching)
                pc, entering = self.pc, self.entering_trap
                deadline = self._deadline()
        self.pc = pc
        self.instructions += ticks - start
        cached, self._cached[0] = self._cached[0], 0
        self.page_walks += cached
        self.ram.refs += 2 * cached

    def _catch_up(self, ticks: int, deadline: int) -> int:
        """After an instruction that reached the next device event or may
        have changed the devices or the state: the devices catch up, power
        off is noticed; the new next event."""
        if self._sync[0]:
            deadline = self._deadline()
        if ticks >= deadline:
            for device in self.timed:
                device.advance(ticks)
            deadline = self._deadline()
        if self._sync[0] and self.power.exit_code is not None:
            self.state = CpuState.OFF
        return deadline

    def _deadline(self) -> int:
        """The tick of the next device event (none: never)."""
        events = [event for event in (device.next_event() for device in self.timed) if event is not None]
        return min(events) if events else 1 << 64

    def _fetch_page(self, pc: int) -> tuple[list, int, int]:
        """Fetch the instruction at `pc` (its walk made and counted): the
        executors of its physical page, the page's address, and 1 if the
        fetch walks (paging on), else 0.  Raises SimTrap for a failing fetch."""
        if pc & 3:
            raise SimTrap(EXC_MISALIGNED, pc)
        self._current[0] = self._walk_table()
        pa = self._translate(pc, FETCH)
        if not self.memory.contains(pa, 4):
            raise SimTrap(EXC_BUS_ERROR, pc)
        ppn = pa >> PAGE_SHIFT
        slots = self._code.get(ppn)
        if slots is None:
            slots = self._code[ppn] = [None] * (PAGE_SIZE // 4)
            self.memory.code_pages.add(ppn)
        return slots, ppn << PAGE_SHIFT, self.cr[CR_PTB] & 1

    def _decode_slot(self, slots: list, index: int, base: int):
        """Decode word `index` of the physical page at `base` (whose
        executors are `slots`) and remember its executor."""
        slots[index] = executor = self._executor(self.memory.read(base | index << 2, 4))
        return executor

    def _code_written(self, ppn: int) -> None:
        """A page holding decoded instructions was written: decode it again."""
        self._code.pop(ppn, None)
        self._sync[0] = True

    def _take_marks(self) -> None:
        """The figures for each phase mark the instruction just retired made."""
        self.marks += [(marker, self.stats()) for marker in self._pending_marks]
        self._pending_marks.clear()

    def _idle(self) -> bool:
        """wfi: skip to the next device event; False if none can ever come."""
        events = [event for event in (device.next_event() for device in self.timed) if event is not None]
        if not self.irq.pending and not events and not self.uart.wait_for_input():
            return False
        if events and not self.irq.pending:
            skipped = max(0, min(events) - self.ticks)
            self.ticks, self.ticks_idle = self.ticks + skipped, self.ticks_idle + skipped
            for device in self.timed:
                device.advance(self.ticks)
        if self.irq.pending:
            self.state = CpuState.RUNNING
        return True

    def _enter_trap(self, cause: int, epc: int, badaddr: int | None) -> None:
        """Trap entry exactly as the hardware does it (docs/isa.md)."""
        if self.trace is not None:
            self.trace("trap", cause, epc, badaddr)
        cr = self.cr
        cr[CR_EPC], cr[CR_CAUSE] = epc, cause
        if badaddr is not None:
            cr[CR_BADADDR] = badaddr
        if cr[CR_TVEC] == 0:
            self.state = CpuState.STOPPED
            self.stop_reason = unhandled_trap_message(cause, epc, badaddr)
            return
        status = cr[CR_STATUS]
        cr[CR_STATUS] = ((status & ~STATUS_PRIVILEGED) | STATUS_KM | (STATUS_PKM if status & STATUS_KM else 0)
                         | (STATUS_PIE if status & STATUS_IE else 0))
        self.pc = cr[CR_TVEC]
        self.entering_trap = True
        self._sync[0] = True

    # --- memory --------------------------------------------------------------------------------

    def _translate(self, va: int, access: int) -> int:
        """A software walk of the guest's tables on every access (paging on),
        counted as one page walk and its references.  A walk that succeeded
        is remembered: the same walk again, while nothing it read has been
        stored to, reads the same PDE and PTE (two references), finds A (and
        D) already set and writes nothing, so it is counted so without
        reading them (the executors do that part inline)."""
        table = self._current[0]
        if table is None:
            return va
        self.page_walks += 1
        key = va >> PAGE_SHIFT << 2 | access
        page = table.get(key)
        if page is not None:
            self.ram.refs += 2
            return page | (va & 0xFFF)
        ptb, user = self.cr[CR_PTB], not self.cr[CR_STATUS] & STATUS_KM
        walk = GuestTables(self.ram, self.ram, ptb).walk(va, ACCESSES[access], user)
        if isinstance(walk, GuestFault):
            raise SimTrap(EXC_PAGE_FAULT | walk.error_code << CAUSE_ERRCODE_SHIFT, va)
        if isinstance(walk, TableBusError):
            raise SimTrap(EXC_BUS_ERROR, va)
        self._remember(table, key, walk)
        return walk.gpa

    def _walk_table(self) -> dict | None:
        """The remembered walks of the current ptb and mode (None: paging off)."""
        ptb = self.cr[CR_PTB]
        if not ptb & 1:
            return None
        return self._walks.setdefault((ptb, not self.cr[CR_STATUS] & STATUS_KM), {})

    def _remember(self, table: dict, key: int, walk) -> None:
        """Remember the walk `key` in `table`, watching the pages of its PDE
        and PTE.  The walker's own A/D write-backs need no watching: a
        remembered walk already found A set, and D matters only to the write
        walk that sets it."""
        self._remembered += 1
        if self._remembered > MAX_REMEMBERED_WALKS:
            for other in self._walks.values():
                other.clear()
            self._watched.clear()
            self._remembered = 1
        table[key] = walk.gpa & ~0xFFF
        for page in {walk.pde_gpa >> PAGE_SHIFT, walk.pte_gpa >> PAGE_SHIFT}:
            self._watched.setdefault(page, []).append((table, key))

    def _stored(self, pa: int) -> None:
        """A guest store to RAM at `pa`: forget the walks that read its page."""
        for table, key in self._watched.pop(pa >> PAGE_SHIFT, ()):
            table.pop(key, None)
        self._sync[0] = True

    def _device(self, pa: int, width: int, value: int | None, va: int) -> int:
        """Read (value None) or write a device; bus errors become SimTrap."""
        self._sync[0] = True
        try:
            if value is None:
                return self.bus.read(pa, width)
            self.bus.write(pa, width, value)
            return 0
        except BusError:
            raise SimTrap(EXC_BUS_ERROR, va) from None

    # --- execution ----------------------------------------------------------------------------

    def _executor(self, word: int):
        """The function executing `word`: executor(pc) -> next pc, raising
        SimTrap with no effect done.  Built from the tables below, once per
        word of a decoded page."""
        decoded = base_decode(word)          # the simulated machine has no optional extension (docs/isa.md)
        if decoded is None:
            return _raiser(EXC_ILLEGAL)
        name, ops = decoded.insn.mnemonic, decoded.operands
        execute = self._plain_executor(name, ops)
        if decoded.insn.has(PRIVILEGED):
            return _privileged(self.cr, execute)
        return execute

    def _plain_executor(self, name: str, ops: dict):
        regs = self.regs
        if name in REGISTER_OPS:
            return _factory("R", REGISTER_OPS[name])(regs, ops["rd"], ops["rs1"], ops["rs2"])
        if name in IMMEDIATE_OPS:
            return _factory("I", IMMEDIATE_OPS[name])(regs, ops["rd"], ops["rs1"], ops["imm"])
        if name in LOAD_WIDTHS:
            return self._load_executor(LOAD_WIDTHS[name], ops["rd"], ops["rs1"], ops["imm"])
        if name in STORE_WIDTHS:
            return self._store_executor(STORE_WIDTHS[name], ops["rs2"], ops["rs1"], ops["imm"])
        if name in BRANCHES:
            return _factory("B", BRANCHES[name])(regs, ops["rs1"], ops["rs2"], ops["target"] * 4)
        if name in JUMPS:
            return JUMPS[name](regs, ops)
        if name in TRAPS:
            return _raiser(TRAPS[name])
        return _system_executor(self, SYSTEM[name], ops, name not in LOCAL_SYSTEM)

    def _load_executor(self, width_and_sign: tuple[int, bool], rd: int, rs1: int, imm: int):
        """Load: alignment, the walk, RAM or a device, the extension."""
        width, sign = width_and_sign
        regs, ram, current, cached, translate, device = (self.regs, self.memory.ram, self._current,
                                                         self._cached, self._translate, self._device)
        unpack, size, top, extension = ACCESSORS[width][0], self.memory.size, 8 * width - 1, 1 << 8 * width

        def execute(pc: int) -> int:
            va = (regs[rs1] + imm) & M32
            if va & (width - 1):
                raise SimTrap(EXC_MISALIGNED, va)
            table = current[0]
            if table is None:
                pa = va
            else:
                page = table.get(va >> PAGE_SHIFT << 2 | READ)
                if page is None:
                    pa = translate(va, READ)
                else:
                    cached[0] += 1
                    pa = page | (va & 0xFFF)
            value = unpack(ram, pa)[0] if 0 <= pa <= size - width else device(pa, width, None, va)
            if sign and value >> top:
                value = (value - extension) & M32
            if rd:
                regs[rd] = value & M32
            return pc + 4
        return execute

    def _store_executor(self, width: int, rs2: int, rs1: int, imm: int):
        """Store: alignment, the walk, RAM (telling the memory's listeners of
        a write to decoded code, and forgetting the walks that read the page)
        or a device."""
        regs, memory, current, cached, translate, device = (self.regs, self.memory, self._current,
                                                            self._cached, self._translate, self._device)
        ram, code_pages, watched, stored = memory.ram, memory.code_pages, self._watched, self._stored
        pack, size, mask = ACCESSORS[width][1], memory.size, (1 << 8 * width) - 1

        def execute(pc: int) -> int:
            va = (regs[rs1] + imm) & M32
            if va & (width - 1):
                raise SimTrap(EXC_MISALIGNED, va)
            table = current[0]
            if table is None:
                pa = va
            else:
                page = table.get(va >> PAGE_SHIFT << 2 | WRITE)
                if page is None:
                    pa = translate(va, WRITE)
                else:
                    cached[0] += 1
                    pa = page | (va & 0xFFF)
            value = regs[rs2] & mask
            if 0 <= pa <= size - width:
                pack(ram, pa, value)
                page = pa >> PAGE_SHIFT
                if page in code_pages:
                    memory.written(pa, width)
                if page in watched:
                    stored(pa)
            else:
                device(pa, width, value, va)
            return pc + 4
        return execute

    def _write(self, rd: int, value: int, pc: int) -> int:
        if rd:
            self.regs[rd] = value & M32
        return pc + 4

    # --- figures -------------------------------------------------------------------------------

    def _result(self, reason: EndReason, max_instructions: int | None) -> RunResult:
        """Package the end of the run, with the bare machine's exit codes and messages."""
        self.uart.flush()
        exit_code, message = end_of_run(reason, self.power.exit_code, self.stop_reason,
                                        self.symbols.describe(self.pc), max_instructions)
        figures = self.stats(reason, exit_code)
        return RunResult(exit_code, reason, message, self.pc, replace(figures, phases=split(self.marks, figures)))

    def stats(self, reason: str = "", exit_code: int | None = None) -> MachineStats:
        """The bare machine's figures; with no TLB every translation is a walk."""
        counters = {"instructions": self.instructions, "walk_refs": self.ram.refs,
                    "exceptions": self.exceptions, "interrupts": self.interrupts}
        cycles = (modeled_cycles(counters, {"reads": self.bus.reads, "writes": self.bus.writes}, self.cost_model)
                  + self.instructions * (self.cost_model.sim_instruction - self.cost_model.instruction))
        return MachineStats(
            instructions=self.instructions, ticks_idle=self.ticks_idle, tlb_hits=0, tlb_misses=self.page_walks,
            page_walks=self.page_walks, walk_refs=self.ram.refs, exceptions=exception_names(self.exceptions),
            interrupts=interrupt_names(self.interrupts), ticks=self.ticks, device_reads=self.bus.reads,
            device_writes=self.bus.writes, modeled_cycles=cycles, reason=str(reason), exit_code=exit_code,
            io=disk_figures(self.disk))


# --- executors: one function per decoded instruction, built from the tables ----------------------

def _raiser(cause: int):
    def execute(pc: int) -> int:
        raise SimTrap(cause)
    return execute


def _privileged(cr: list[int], execute):
    """`execute` in kernel mode; the privileged-instruction exception in user mode."""
    def checked(pc: int) -> int:
        if not cr[CR_STATUS] & STATUS_KM:
            raise SimTrap(EXC_PRIVILEGED)
        return execute(pc)
    return checked


# executor factories by format: the table's expression in place of EXPRESSION; a result for r0
# is computed (a division by zero still traps) and dropped
FACTORY_SOURCES = {
    "R": """
def make(regs, rd, rs1, rs2):
    if not rd:
        def execute(pc):
            a, b = regs[rs1], regs[rs2]
            EXPRESSION
            return pc + 4
        return execute
    def execute(pc):
        a, b = regs[rs1], regs[rs2]
        regs[rd] = EXPRESSION
        return pc + 4
    return execute
""",
    "I": """
def make(regs, rd, rs1, i):
    u = i & M32
    if not rd:
        return lambda pc: pc + 4
    def execute(pc):
        a = regs[rs1]
        regs[rd] = EXPRESSION
        return pc + 4
    return execute
""",
    "B": """
def make(regs, rs1, rs2, offset):
    def execute(pc):
        a, b = regs[rs1], regs[rs2]
        return (pc + offset) & M32 if EXPRESSION else pc + 4
    return execute
""",
}


def _factory(form: str, expression: str):
    """The executor factory for `expression` in format `form` (FACTORY_SOURCES), compiled once."""
    found = FACTORIES.get((form, expression))
    if found is None:
        namespace = {"M32": M32, "signed": signed, "divide": divide,
                     "shift_right_arithmetic": shift_right_arithmetic}
        exec(compile(FACTORY_SOURCES[form].replace("EXPRESSION", expression), f"<sim {expression}>", "exec"),
             namespace)
        found = FACTORIES[form, expression] = namespace["make"]
    return found


FACTORIES: dict[tuple[str, str], object] = {}


def _system_executor(sim: "Simulator", function, ops: dict, resync: bool):
    """SYSTEM[name]; `resync` for those that may change what the loop holds
    (mode, paging, IE, the state)."""
    if not resync:
        return lambda pc: function(sim, ops, pc)
    flag = sim._sync

    def execute(pc: int) -> int:
        next_pc = function(sim, ops, pc)
        flag[0] = True
        return next_pc
    return execute


def _jal_executor(regs: list[int], ops: dict):
    """jal: rd = pc + 4, pc = pc + target * 4."""
    rd, offset = ops["rd"], ops["target"] * 4

    def execute(pc: int) -> int:
        if rd:
            regs[rd] = (pc + 4) & M32
        return (pc + offset) & M32
    return execute


def _jalr_executor(regs: list[int], ops: dict):
    """jalr: the target rs1 + imm (read before rd is written; misaligned:
    the exception, nothing done), rd = pc + 4, pc = target."""
    rd, rs1, imm = ops["rd"], ops["rs1"], ops["imm"]

    def execute(pc: int) -> int:
        target = (regs[rs1] + imm) & M32
        if target & 3:
            raise SimTrap(EXC_MISALIGNED, target)
        if rd:
            regs[rd] = (pc + 4) & M32
        return target
    return execute


JUMPS = {"jal": _jal_executor, "jalr": _jalr_executor}     # executor factories: (registers, operands)


def _lui(sim, ops, pc):
    return sim._write(ops["rd"], ops["imm"] << 12, pc)


def _rdsr(sim, ops, pc):
    return sim._write(ops["rd"], sim.cr[CR_STATUS], pc)


def _wrsr(sim, ops, pc):
    """Kernel: every defined bit; user: only the user flags, silently."""
    value, status = sim.regs[ops["rs1"]], sim.cr[CR_STATUS]
    if status & STATUS_KM:
        sim.cr[CR_STATUS] = value & STATUS_DEFINED
    else:
        sim.cr[CR_STATUS] = (status & ~STATUS_UF) | (value & STATUS_UF)
    return pc + 4


def _mfcr(sim, ops, pc):
    return sim._write(ops["rd"], sim.cr[ops["cr"]], pc)


def _mtcr(sim, ops, pc):
    value = sim.regs[ops["rs1"]]
    sim.cr[ops["cr"]] = value & STATUS_DEFINED if ops["cr"] == CR_STATUS else value
    return pc + 4


def _rfe(sim, ops, pc):
    status = sim.cr[CR_STATUS]
    sim.cr[CR_STATUS] = ((status & ~(STATUS_KM | STATUS_IE)) | (STATUS_KM if status & STATUS_PKM else 0)
                         | (STATUS_IE if status & STATUS_PIE else 0))
    return sim.cr[CR_EPC]


def _halt(sim, ops, pc):
    sim.state = CpuState.HALTED
    return pc + 4


def _wfi(sim, ops, pc):
    if not sim.irq.pending:
        sim.state = CpuState.WAITING
    return pc + 4


def _interrupt_enable(on: bool):
    def execute(sim, ops, pc):
        sim.cr[CR_STATUS] = sim.cr[CR_STATUS] | STATUS_IE if on else sim.cr[CR_STATUS] & ~STATUS_IE
        return pc + 4
    return execute


def _no_tlb(sim, ops, pc):
    """tlbflush / tlbinv: the simulation has no TLB to flush."""
    return pc + 4


SYSTEM = {"lui": _lui, "rdsr": _rdsr, "wrsr": _wrsr, "mfcr": _mfcr,
          "mtcr": _mtcr, "rfe": _rfe, "halt": _halt, "wfi": _wfi, "ei": _interrupt_enable(True),
          "di": _interrupt_enable(False), "tlbflush": _no_tlb, "tlbinv": _no_tlb}

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
                     STATUS_UF, STORE_WIDTHS, TIMER_BASE, UART_BASE, PRIVILEGED, Decoded, decode)
from vmm.machine.bus import Bus
from vmm.machine.costs import DEFAULT_COST_MODEL, CostModel, modeled_cycles
from vmm.machine.devices.marker import Marker
from vmm.machine.devices.power import Power
from vmm.machine.devices.timer import Timer
from vmm.machine.devices.uart import ConsoleInput, Uart
from vmm.machine.errors import BusError
from vmm.machine.irq import InterruptLines
from vmm.machine.loader import load
from vmm.machine.outcome import CpuState, EndReason, RunResult, end_of_run
from vmm.machine.phases import split
from vmm.machine.stats import MachineStats, exception_names, interrupt_names
from vmm.machine.memory import PhysicalMemory
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


# rd = f(rs1, rs2) for the R format
REGISTER_OPS = {
    "add": lambda a, b: (a + b) & M32, "sub": lambda a, b: (a - b) & M32,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
    "sll": lambda a, b: (a << b) & M32 if b < 32 else 0, "srl": lambda a, b: a >> b if b < 32 else 0,
    "sra": shift_right_arithmetic, "slt": lambda a, b: int(signed(a) < signed(b)),
    "sltu": lambda a, b: int(a < b), "mul": lambda a, b: (a * b) & M32,
    "div": lambda a, b: divide(a, b, False), "rem": lambda a, b: divide(a, b, True),
    "divu": lambda a, b: a // b if b else divide(a, b, False),
    "remu": lambda a, b: a % b if b else divide(a, b, True),
}
# rd = f(rs1, imm) for the I format (imm sign-extended)
IMMEDIATE_OPS = {
    "addi": lambda a, i: (a + i) & M32, "andi": lambda a, i: a & (i & M32),
    "ori": lambda a, i: a | (i & M32), "xori": lambda a, i: a ^ (i & M32),
    "slli": lambda a, i: (a << i) & M32, "srli": lambda a, i: a >> i,
    "srai": shift_right_arithmetic, "slti": lambda a, i: int(signed(a) < i),
    "sltiu": lambda a, i: int(a < (i & M32)),
}
BRANCHES = {
    "beq": lambda a, b: a == b, "bne": lambda a, b: a != b,
    "blt": lambda a, b: signed(a) < signed(b), "bge": lambda a, b: signed(a) >= signed(b),
    "bltu": lambda a, b: a < b, "bgeu": lambda a, b: a >= b,
}
TRAPS = {"syscall": EXC_SYSCALL, "break": EXC_BREAKPOINT, "hypercall": EXC_ILLEGAL}


class Simulator:
    """A whole Kite32 machine simulated instruction by instruction.  Same
    constructor and results as the bare Machine, minus the disk."""

    def __init__(self, mem_size: int, console_out: BinaryIO | None = None,
                 console_in: ConsoleInput | None = None, cost_model: CostModel = DEFAULT_COST_MODEL):
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
        self.regs, self.cr = [0] * NUM_REGS, [0] * len(CR_NAMES)
        self.pc = self.ticks = self.instructions = self.ticks_idle = self.page_walks = 0
        self.exceptions: dict[int, int] = {}
        self.interrupts: dict[int, int] = {}
        self.decoded: dict[int, Decoded | None] = {}
        self.state, self.stop_reason = CpuState.RUNNING, ""
        self.symbols = Symbolizer([])
        self.entering_trap = False        # a trap was entered and no instruction has retired since

    def load(self, image_path: str, modules=(), cmdline: str = ""):
        """Load the image and modules as the bare machine's loader does; boot state."""
        image = load(self.memory, image_path, list(modules), cmdline)
        self.pc, self.regs[REG_A0], self.cr[CR_STATUS] = image.entry_paddr, BOOTINFO_ADDR, STATUS_KM
        self.symbols = image.symbols
        return image

    # --- the interpreter loop -------------------------------------------------------------

    def run(self, max_instructions: int | None = None) -> RunResult:
        """Interpret until the guest halts, powers off, stops on a fault, or
        `max_instructions` retire."""
        limit = max_instructions if max_instructions is not None else 1 << 62
        while self.state in (CpuState.RUNNING, CpuState.WAITING):
            if self.instructions >= limit:
                return self._result(EndReason.INSTRUCTION_LIMIT, max_instructions)
            if self.state is CpuState.WAITING and not self._idle():
                return self._result(EndReason.NO_INTERRUPT_SOURCE, max_instructions)
            self.step()
            if self._pending_marks:
                self._take_marks()
        if self.state is CpuState.HALTED:
            return self._result(EndReason.HALT, max_instructions)
        if self.power.exit_code is not None:
            return self._result(EndReason.POWER_OFF, max_instructions)
        return self._result(EndReason.FAULT, max_instructions)

    def step(self) -> None:
        """One instruction (or one interrupt entry), then the devices catch up."""
        pending = self.irq.pending
        if pending and self.cr[CR_STATUS] & STATUS_IE:
            irq = (pending & -pending).bit_length() - 1
            self.interrupts[irq] = self.interrupts.get(irq, 0) + 1
            self._enter_trap(CAUSE_INTERRUPT | irq, self.pc, None)
            return
        pc, fetching = self.pc, True
        try:
            word = self._fetch(pc)
            fetching = False
            next_pc = self._execute(self._decode(word), pc)
        except SimTrap as trap:
            self.exceptions[trap.cause & 0xFF] = self.exceptions.get(trap.cause & 0xFF, 0) + 1
            triple = self.entering_trap
            self._enter_trap(trap.cause, pc, trap.badaddr)
            if triple and self.state is not CpuState.STOPPED:
                self.state = CpuState.STOPPED
                self.stop_reason = triple_fault_message(trap.cause, pc, trap.badaddr, fetching)
            return
        self.entering_trap = False
        self.pc = next_pc
        self.instructions += 1
        self.ticks += 1
        for device in (self.uart, self.timer):
            device.advance(self.ticks)
        if self.power.exit_code is not None:
            self.state = CpuState.OFF

    def _take_marks(self) -> None:
        """The figures for each phase mark the instruction just retired made."""
        self.marks += [(marker, self.stats()) for marker in self._pending_marks]
        self._pending_marks.clear()

    def _idle(self) -> bool:
        """wfi: skip to the next device event; False if none can ever come."""
        events = [event for event in (self.timer.next_event(), self.uart.next_event()) if event is not None]
        if not self.irq.pending and not events and not self.uart.wait_for_input():
            return False
        if events and not self.irq.pending:
            skipped = max(0, min(events) - self.ticks)
            self.ticks, self.ticks_idle = self.ticks + skipped, self.ticks_idle + skipped
            for device in (self.uart, self.timer):
                device.advance(self.ticks)
        if self.irq.pending:
            self.state = CpuState.RUNNING
        return True

    def _enter_trap(self, cause: int, epc: int, badaddr: int | None) -> None:
        """Trap entry exactly as the hardware does it (docs/isa.md)."""
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

    # --- memory --------------------------------------------------------------------------------

    def _translate(self, va: int, access: Access) -> int:
        """A software walk of the guest's tables on every access (paging on)."""
        ptb = self.cr[CR_PTB]
        if not ptb & 1:
            return va
        self.page_walks += 1
        user = not self.cr[CR_STATUS] & STATUS_KM
        walk = GuestTables(self.ram, self.ram, ptb).walk(va, access, user)
        if isinstance(walk, GuestFault):
            raise SimTrap(EXC_PAGE_FAULT | walk.error_code << CAUSE_ERRCODE_SHIFT, va)
        if isinstance(walk, TableBusError):
            raise SimTrap(EXC_BUS_ERROR, va)
        return walk.gpa

    def _fetch(self, pc: int) -> int:
        """The instruction word at `pc`; raises SimTrap for a failing fetch."""
        if pc & 3:
            raise SimTrap(EXC_MISALIGNED, pc)
        pa = self._translate(pc, Access.FETCH)
        if not self.memory.contains(pa, 4):
            raise SimTrap(EXC_BUS_ERROR, pc)
        return self.memory.read(pa, 4)

    def _decode(self, word: int) -> Decoded:
        """The decoded instruction; raises the illegal-instruction SimTrap."""
        if word not in self.decoded:
            self.decoded[word] = decode(word)
        decoded = self.decoded[word]
        if decoded is None:
            raise SimTrap(EXC_ILLEGAL)
        return decoded

    def _load(self, va: int, width: int) -> int:
        if va & (width - 1):
            raise SimTrap(EXC_MISALIGNED, va)
        pa = self._translate(va, Access.READ)
        if self.memory.contains(pa, width):
            return self.memory.read(pa, width)
        try:
            return self.bus.read(pa, width)
        except BusError:
            raise SimTrap(EXC_BUS_ERROR, va) from None

    def _store(self, va: int, width: int, value: int) -> None:
        if va & (width - 1):
            raise SimTrap(EXC_MISALIGNED, va)
        pa = self._translate(va, Access.WRITE)
        value &= (1 << 8 * width) - 1
        if self.memory.contains(pa, width):
            self.memory.write(pa, width, value)
            return
        try:
            self.bus.write(pa, width, value)
        except BusError:
            raise SimTrap(EXC_BUS_ERROR, va) from None

    # --- execution ----------------------------------------------------------------------------

    def _execute(self, decoded: Decoded, pc: int) -> int:
        """Execute one instruction; returns the next pc.  Raises SimTrap with no effect done."""
        name, ops, regs = decoded.insn.mnemonic, decoded.operands, self.regs
        if decoded.insn.has(PRIVILEGED) and not self.cr[CR_STATUS] & STATUS_KM:
            raise SimTrap(EXC_PRIVILEGED)
        if name in REGISTER_OPS:
            return self._write(ops["rd"], REGISTER_OPS[name](regs[ops["rs1"]], regs[ops["rs2"]]), pc)
        if name in IMMEDIATE_OPS:
            return self._write(ops["rd"], IMMEDIATE_OPS[name](regs[ops["rs1"]], ops["imm"]), pc)
        if name in LOAD_WIDTHS:
            width, sign = LOAD_WIDTHS[name]
            value = self._load((regs[ops["rs1"]] + ops["imm"]) & M32, width)
            if sign and value >> (8 * width - 1):
                value = (value - (1 << 8 * width)) & M32
            return self._write(ops["rd"], value, pc)
        if name in STORE_WIDTHS:
            self._store((regs[ops["rs1"]] + ops["imm"]) & M32, STORE_WIDTHS[name], regs[ops["rs2"]])
            return pc + 4
        if name in BRANCHES:
            taken = BRANCHES[name](regs[ops["rs1"]], regs[ops["rs2"]])
            return (pc + ops["target"] * 4) & M32 if taken else pc + 4
        if name in TRAPS:
            raise SimTrap(TRAPS[name])
        return SYSTEM[name](self, ops, pc)

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
            device_writes=self.bus.writes, modeled_cycles=cycles, reason=str(reason), exit_code=exit_code)


def _jal(sim, ops, pc):
    return _link(sim, ops["rd"], pc, (pc + ops["target"] * 4) & M32)


def _link(sim, rd: int, pc: int, target: int) -> int:
    """rd = pc + 4 (after reading the operands), pc = target."""
    if rd:
        sim.regs[rd] = (pc + 4) & M32
    return target


def _jalr(sim, ops, pc):
    target = (sim.regs[ops["rs1"]] + ops["imm"]) & M32
    if target & 3:
        raise SimTrap(EXC_MISALIGNED, target)
    return _link(sim, ops["rd"], pc, target)


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


SYSTEM = {"jal": _jal, "jalr": _jalr, "lui": _lui, "rdsr": _rdsr, "wrsr": _wrsr, "mfcr": _mfcr,
          "mtcr": _mtcr, "rfe": _rfe, "halt": _halt, "wfi": _wfi, "ei": _interrupt_enable(True),
          "di": _interrupt_enable(False), "tlbflush": _no_tlb, "tlbinv": _no_tlb}

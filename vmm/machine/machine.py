"""The bare Kite32 machine: RAM, bus, interrupt lines, devices and CPU, wired
together, and the run loop that moves time between them.

Time is the CPU's tick count (retired instructions plus idle ticks in wfi).
The loop runs the CPU up to the next device event, lets every device catch up
to the current tick, and skips idle time while the CPU waits in wfi:

    deadline = min(next device event, instruction limit)
    running: cpu.run(deadline)      waiting: cpu.ticks = deadline (idle)
    every device: advance(cpu.ticks); a pending line wakes a waiting CPU

A device that moves its next event earlier while the CPU is inside `run`
(the guest programmed the timer or started a disk command) asks the CPU to
stop after the current instruction; the loop recognises its own request
(PREEMPT_REASON) and carries on with the new deadline, so events land on the
exact tick.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import BinaryIO, Callable

from asm.isa import (BOOTINFO_ADDR, CR_NAMES, DISK_BASE, MMIO_DEVICE_SIZE,
                     MARKER_BASE, POWER_BASE, REG_ABI_NAMES, TIMER_BASE, UART_BASE)
from vmm.machine.bus import Bus
from vmm.machine.costs import DEFAULT_COST_MODEL, CostModel, modeled_cycles
from vmm.machine.devices.disk import Disk, DiskImage
from vmm.machine.devices.marker import Marker
from vmm.machine.devices.power import Power
from vmm.machine.devices.timer import Timer
from vmm.machine.devices.uart import ConsoleInput, Uart
from vmm.machine.irq import InterruptLines
from vmm.machine.loader import LoadedImage, load
from vmm.machine.outcome import CpuState, EndReason, RunResult, end_of_run
from vmm.machine.phases import split
from vmm.machine.stats import MachineStats, disk_figures, exception_names, interrupt_names
from vmm.machine.symbols import Symbolizer

PREEMPT_REASON = "preempt: a device event moved earlier"
MARK_REASON = "mark: snapshot the figures"
OWN_STOPS = (PREEMPT_REASON, MARK_REASON)      # stops the loop asks for itself, then resumes
NO_LIMIT = 1 << 62
ACTIVE = (CpuState.RUNNING, CpuState.WAITING)


class Machine:
    """One Kite32 machine.  `disk` is a path or a DiskImage; `console_in` the
    input bytes or a ConsoleInput (None: no input); `console_out` a binary
    stream (None: stdout).  `memory_factory(size)` and
    `cpu_factory(memory, bus, irq)` default to PhysicalMemory and CPU; tests
    pass stand-ins to drive the loop with a scripted CPU.  Raises DiskError."""

    def __init__(self, mem_size: int, disk: str | DiskImage | None = None,
                 console_in: bytes | ConsoleInput | None = None, console_out: BinaryIO | None = None,
                 cmdline: str = "", cost_model: CostModel = DEFAULT_COST_MODEL,
                 memory_factory: Callable | None = None, cpu_factory: Callable | None = None):
        if memory_factory is None:
            from vmm.machine.memory import PhysicalMemory as memory_factory
        if cpu_factory is None:
            from vmm.machine.cpu import CPU as cpu_factory
        self.memory = memory_factory(mem_size)
        self.bus = Bus()
        self.irq = InterruptLines()
        self.cpu = cpu_factory(self.memory, self.bus, self.irq)
        self.cmdline = cmdline
        self.cost_model = cost_model
        self.image: LoadedImage | None = None
        self._run_deadline: int | None = None
        clock = self._clock
        if not isinstance(console_in, ConsoleInput):
            console_in = ConsoleInput(console_in or b"")
        self.uart = Uart(self.irq, console_out or sys.stdout.buffer, console_in)
        self.timer = Timer(self.irq, clock, self._schedule_changed)
        self.power = Power(self.cpu.request_stop)
        self.bus.map(UART_BASE, MMIO_DEVICE_SIZE, self.uart)
        self.bus.map(TIMER_BASE, MMIO_DEVICE_SIZE, self.timer)
        self.disk: Disk | None = None
        if disk is not None:
            image = disk if isinstance(disk, DiskImage) else DiskImage.open(disk)
            self.disk = Disk(self.irq, self.memory, image, clock, self._schedule_changed)
            self.bus.map(DISK_BASE, MMIO_DEVICE_SIZE, self.disk)
        self.bus.map(POWER_BASE, MMIO_DEVICE_SIZE, self.power)
        self.bus.map(MARKER_BASE, MMIO_DEVICE_SIZE, Marker(self._marked))
        self.marks: list[tuple[int, MachineStats]] = []     # (marker, the figures right after its store)
        self.restored_symbols: Symbolizer | None = None     # a restored checkpoint's (vmm/machine/snapshot.py)
        self._pending_marks: list[int] = []

    def _marked(self, marker: int) -> None:
        """A phase mark: the figures are taken once the marking store retires."""
        self._pending_marks.append(marker)
        self.cpu.request_stop(MARK_REASON)

    def _clock(self) -> int:
        """The current tick, for devices."""
        return self.cpu.ticks

    def _schedule_changed(self) -> None:
        """A device moved its next event: if that is before the end of the
        CPU's current slice, stop the CPU after this instruction (see module doc)."""
        if self._run_deadline is None:
            return
        if any(event is not None and event < self._run_deadline for event in self._device_events()):
            self.cpu.request_stop(PREEMPT_REASON)

    def _device_events(self) -> list[int | None]:
        return [device.next_event() for device in self.bus.devices]

    @property
    def symbols(self) -> Symbolizer:
        """The loaded image's symbolizer (a restored checkpoint's, or an empty one before `load`)."""
        if self.image is not None:
            return self.image.symbols
        return self.restored_symbols or Symbolizer([])

    def load(self, image_path: str, modules: list[str] = ()) -> LoadedImage:
        """Load the kernel and boot modules and put the CPU in its boot state.
        Raises ImageError."""
        self.image = load(self.memory, image_path, list(modules), self.cmdline)
        self.cpu.reset(self.image.entry_paddr, BOOTINFO_ADDR)
        return self.image

    def watch_writes(self, pages) -> None:
        """Dirty logging: write-protect the RAM pages `pages` (memory.py's
        write-watch) and empty the CPU's fast write tables, so the first write
        to each one from now on is logged in memory.dirty."""
        self.memory.watch(pages)
        self.cpu.mmu.clear_fast()

    def run(self, max_instructions: int | None = None) -> RunResult:
        """Run until the guest halts, powers off or faults, or `max_instructions`
        retire.  Flushes the console and writes dirty disk sectors back at the
        end (DiskError if that fails)."""
        try:
            reason = self.advance(max_instructions)
        finally:
            self.uart.flush()
        if self.disk is not None:
            try:
                self.disk.image.write_back()
            finally:
                self.disk.image.close()
        return self._result(reason, max_instructions)

    def advance(self, max_instructions: int | None) -> EndReason:
        """The run loop (module doc) until the guest stops or `max_instructions`
        retire; returns why it ended.  run() is this plus the end of the run
        (console flushed, disk written back, the result packaged); a debugger
        calls it again and again."""
        cpu = self.cpu
        while cpu.state in ACTIVE:
            limit_tick = self._limit_tick(max_instructions)
            if limit_tick is not None and limit_tick <= cpu.ticks and cpu.state == CpuState.RUNNING:
                return EndReason.INSTRUCTION_LIMIT
            events = [event for event in self._device_events() if event is not None]
            deadline = min(events + [limit_tick if limit_tick is not None else NO_LIMIT])
            if cpu.state == CpuState.WAITING:
                if not events and not self.uart.wait_for_input():
                    return EndReason.NO_INTERRUPT_SOURCE
                if events:
                    self._idle_until(min(events))
            else:
                self._run_cpu(deadline)
            for device in self.bus.devices:
                device.advance(cpu.ticks)
            if self.irq.pending and cpu.state == CpuState.WAITING:
                cpu.state = CpuState.RUNNING
        return self._end_reason()

    def _limit_tick(self, max_instructions: int | None) -> int | None:
        """The tick at which the instruction limit is reached, or None without one."""
        if max_instructions is None:
            return None
        return self.cpu.ticks + max_instructions - self.cpu.counters.instructions

    def _idle_until(self, tick: int) -> None:
        """Skip the waiting CPU's clock forward to `tick`."""
        skipped = max(0, tick - self.cpu.ticks)
        self.cpu.ticks += skipped
        self.cpu.counters.ticks_idle += skipped

    def _run_cpu(self, deadline: int) -> None:
        """cpu.run(deadline), resuming after our own preemption request."""
        self._run_deadline = deadline
        try:
            self.cpu.run(deadline)
        finally:
            self._run_deadline = None
        self.marks += [(marker, self.stats()) for marker in self._pending_marks]
        self._pending_marks.clear()
        if self.cpu.state == CpuState.STOPPED and self.cpu.stop_reason in OWN_STOPS:
            self.cpu.state = CpuState.RUNNING
            self.cpu.stop_reason = None

    def _end_reason(self) -> EndReason:
        """Why the CPU left the running/waiting states."""
        if self.cpu.state == CpuState.HALTED:
            return EndReason.HALT
        if self.power.exit_code is not None:
            return EndReason.POWER_OFF
        return EndReason.FAULT

    def _result(self, reason: EndReason, max_instructions: int | None) -> RunResult:
        """Package the end of the run."""
        pc = self.cpu.pc
        exit_code, message = end_of_run(reason, self.power.exit_code, self.cpu.stop_reason,
                                        self.symbols.describe(pc), max_instructions)
        figures = self.stats(reason, exit_code)
        return RunResult(exit_code, reason, message, pc, replace(figures, phases=split(self.marks, figures)))

    def stats(self, reason: str = "", exit_code: int | None = None) -> MachineStats:
        """The run's figures: the CPU's counters, exceptions and interrupts
        by name, device reads and writes, modelled cycles, and how the run
        ended (`reason`, `exit_code`)."""
        counters, bus = self.cpu.counters, self.bus
        cycles = modeled_cycles({**counters.as_dict(), "exceptions": dict(counters.exceptions),
                                 "interrupts": dict(counters.interrupts)},
                                {"reads": bus.reads, "writes": bus.writes}, self.cost_model)
        return MachineStats(
            instructions=counters.instructions, ticks_idle=counters.ticks_idle, tlb_hits=counters.tlb_hits,
            tlb_misses=counters.tlb_misses, page_walks=counters.page_walks, walk_refs=counters.walk_refs,
            exceptions=exception_names(counters.exceptions), interrupts=interrupt_names(counters.interrupts),
            ticks=self.cpu.ticks, device_reads=bus.reads, device_writes=bus.writes, modeled_cycles=cycles,
            reason=str(reason), exit_code=exit_code, io=disk_figures(self.disk),
            vm_entries=counters.vm.vm_entries, vm_exits=counters.vm.exits,
            nested_walk_refs=counters.vm.nested_walk_refs, pwc_hits=counters.vm.pwc_hits,
            nested_faults=counters.vm.nested_faults)

    def register_dump(self) -> str:
        """All registers with ABI names, the pc symbolized, and the control registers."""
        cpu = self.cpu
        lines = [f"pc  {self.symbols.describe(cpu.pc)}"]
        for row in range(0, len(REG_ABI_NAMES), 4):
            lines.append("  ".join(f"{name:>4} {cpu.regs[index]:#010x}" for index, name in
                                   enumerate(REG_ABI_NAMES[row:row + 4], start=row)))
        for row in range(0, len(CR_NAMES), 4):
            lines.append("  ".join(f"{name:>7} {cpu.cr[index]:#010x}" for index, name in
                                   enumerate(CR_NAMES[row:row + 4], start=row)))
        return "\n".join(lines)

    def set_trace(self, emit: Callable[[str], None]) -> None:
        """Report every executed instruction and trap to `emit`, one line each,
        named with the kernel's symbols (`kite run --trace` uses
        vmm.tracing.attach_machine, which adds modules, lines and categories)."""
        from vmm.tracing import SourceMap, TraceConfig, Tracer
        source_map = SourceMap(self.symbols, {})
        self.cpu.trace = Tracer(TraceConfig(emit), lambda: (None, source_map))

"""`kite run --trace`: what happened, event by event, as text or JSON Lines (docs/tracing.md).

Categories (`--trace-events`, QEMU `-d` style; default insn,trap):

    insn       every instruction the CPU starts (a faulting one too), before it runs
    trap       every exception and interrupt entry (under the VMM: every exit's cause)
    exit       every VM exit, after the VMM handled it, with the reasons its VM's
               `exits` counters gained (docs/vmm.md "Figures")           VMM only
    hypercall  name, arguments and result of every dispatched hypercall  VMM only
    mmu        every page walk of the machine's MMU (a TLB miss, or the walk again
               for D): the walked tables are the guest's on the bare machine and
               the shadow or direct tables under the VMM               not --sim
    io         every device register read and write that succeeded (the VMM: the
               VM's virtual devices, whether the guest's MMIO or the VMM on its
               behalf, as console_write)

Every event has a pc: the instruction's, the trap's or exit's epc, the
hypercall's, the instruction that made the walk or the device access.  The
address filter (`--trace-filter START..END[,...]`) keeps the events whose pc
is in one of the ranges, [START, END); START and END are address
expressions (vmm/debug/symbols.py: `0x400000`, `main`, `user-hello:main+8`).

Symbols and source lines are the kernel's and every boot module's: a module
pc is named after the module whose code the current address space maps there
(vmm.debug.symbols.Symbols), and its file:line comes from that image's
`.debug_line` (asm.lines.address_lines).

Nothing here changes the guest or a counter: the hooks only read.  The CPU
runs its traced loop (one uncached instruction at a time, same counts) only
when a category needs the pc of every instruction (insn, trap, mmu, io);
exit and hypercall alone leave the fast loop running.  Without --trace no
hook is installed at all.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from asm.arch import Access, describe_cause, sets_badaddr
from asm.disasm import disassemble_word
from vmm.debug.symbols import Symbols, short_file
from vmm.machine.errors import KiteError
from vmm.machine.translate import EXIT_HYPERCALL

CATEGORIES = ("insn", "trap", "exit", "hypercall", "mmu", "io")
DEFAULT_EVENTS = ("insn", "trap")
FORMATS = ("text", "jsonl")
VMM_ONLY = ("exit", "hypercall")
NEED_EVERY_PC = ("insn", "trap", "mmu", "io")   # categories that need the CPU's traced loop (VMM: not trap)


def parse_events(text: str) -> frozenset[str]:
    """The categories of `--trace-events` (comma-separated, or `all`).  Raises
    ValueError naming the bad one."""
    names = [name.strip() for name in text.split(",")]
    if names == ["all"]:
        return frozenset(CATEGORIES)
    for name in names:
        if name not in CATEGORIES:
            raise ValueError(f"'{name}' is not a trace category (choose from {', '.join(CATEGORIES)}, or all)")
    return frozenset(names)


def parse_filter(text: str) -> tuple[tuple[str, str], ...]:
    """The ranges of `--trace-filter`: START..END[,START..END...], the ends
    still unresolved text (symbols need the images).  Raises ValueError."""
    ranges = []
    for part in text.split(","):
        start, dots, end = part.partition("..")
        if not dots or not start.strip() or not end.strip():
            raise ValueError(f"'{part}' is not a range START..END (e.g. 0x400000..0x401000 or main..exit)")
        ranges.append((start.strip(), end.strip()))
    return tuple(ranges)


@dataclass(frozen=True)
class TraceConfig:
    """What --trace asked for: the line sink, the categories, the filter's
    ranges (unresolved), and the format ("text" or "jsonl")."""
    emit: Callable[[str], None]
    events: frozenset[str] = frozenset(DEFAULT_EVENTS)
    ranges: tuple[tuple[str, str], ...] = ()
    format: str = "text"


def cause_name(cause: int) -> str:
    """describe_cause, and `hypercall` for the VMM's hypercall exit."""
    return "hypercall" if cause == EXIT_HYPERCALL else describe_cause(cause)


# --- symbols and source lines ----------------------------------------------------------------


def resolve_ranges(ranges: tuple[tuple[str, str], ...], symbols) -> list[tuple[int, int]]:
    """The filter's [start, end) addresses, its ends evaluated as address
    expressions against `symbols`.  Raises KiteError (unknown symbol, empty range)."""
    from vmm.debug.symbols import DebugError, evaluate

    def no_register(name: str) -> int:
        raise DebugError(f"registers (${name}) cannot appear in --trace-filter")

    resolved = []
    for start_text, end_text in ranges:
        try:
            start, end = (evaluate(text, symbols, no_register) for text in (start_text, end_text))
        except DebugError as error:
            raise KiteError(f"--trace-filter {start_text}..{end_text}: {error}") from None
        if end <= start:
            raise KiteError(f"--trace-filter {start_text}..{end_text}: the range is empty "
                            f"({start:#010x}..{end:#010x})")
        resolved.append((start, end))
    return resolved


# --- the tracer ------------------------------------------------------------------------------------


class Tracer:
    """The one formatter and filter of every trace event.  `context()` gives
    (the running VM's name or None, its Symbols: names and source lines).  As the CPU's (and the
    simulator's) trace hook it takes ("insn", pc, word) and ("trap", cause,
    epc, badaddr); the VMM, MMU and device hooks call the other methods."""

    def __init__(self, config: TraceConfig, context: Callable[[], tuple[str | None, Symbols]],
                 ranges: list[tuple[int, int]] = ()):
        self._emit, self._context, self._ranges = config.emit, context, list(ranges)
        self._events = config.events
        self._jsonl = config.format == "jsonl"
        self._insn, self._trap = "insn" in self._events, "trap" in self._events
        self.pc = 0                  # the instruction running now (the last one reported to the hook)

    def wants(self, category: str) -> bool:
        return category in self._events

    def _kept(self, pc: int) -> bool:
        return not self._ranges or any(start <= pc < end for start, end in self._ranges)

    def __call__(self, kind: str, first: int, second: int, badaddr: int | None = None) -> None:
        """The CPU's hook: trace("insn", pc, word) or trace("trap", cause, epc, badaddr)."""
        if kind == "insn":
            self.pc = first
            if self._insn and self._kept(first):
                self.insn(first, second)
        elif self._trap and self._kept(second):
            self.trap(first, second, badaddr)

    def _write(self, text: str, record: dict) -> None:
        self._emit(json.dumps(record, separators=(",", ":")) if self._jsonl else text)

    def insn(self, pc: int, word: int) -> None:
        vm, symbols = self._context()
        text = disassemble_word(word, pc, symbols)
        source = symbols.source(pc)
        if self._jsonl:
            self._write("", {"event": "insn", "vm": vm, "pc": pc, "symbol": symbols(pc), "word": word,
                             "disasm": text, "file": source.file if source else None,
                             "line": source.line if source else None})
            return
        line = f"{symbols.describe(pc)}  {text}"
        self._emit(f"{line}  # {short_file(source.file)}:{source.line}" if source else line)

    def trap(self, cause: int, epc: int, badaddr: int | None) -> None:
        shown = badaddr if sets_badaddr(cause) else None
        text = f"trap: {cause_name(cause)} epc={epc:#010x}"
        if shown is not None:
            text += f" badaddr={shown:#010x}"
        self._write(text, {"event": "trap", "vm": self._context()[0], "pc": epc, "cause": cause,
                           "name": cause_name(cause), "badaddr": shown})

    def exit(self, vm: str, cause: int, epc: int, badaddr: int | None, reasons: list[str], resume: int) -> None:
        if not self._kept(epc):
            return
        shown = badaddr if sets_badaddr(cause) else None
        said = ", ".join(reasons) or f"vmm: {cause_name(cause)}"
        describe = self._context()[1].describe
        text = f"exit: {vm} {said} epc={describe(epc)}" + (f" badaddr={shown:#010x}" if shown is not None else "")
        self._write(f"{text} -> {describe(resume)}",
                    {"event": "exit", "vm": vm, "pc": epc, "cause": cause, "name": cause_name(cause),
                     "badaddr": shown, "reasons": reasons, "resume": resume})

    def hypercall(self, vm: str, epc: int, name: str, args: list[int], result: int | None) -> None:
        if not self._kept(epc):
            return
        shown = "" if result is None else f" = {result}"
        where = self._context()[1].describe(epc)
        self._write(f"hypercall: {vm} {name}({', '.join(f'{arg:#x}' for arg in args)}){shown} epc={where}",
                    {"event": "hypercall", "vm": vm, "pc": epc, "name": name, "args": args, "result": result})

    def mmu(self, va: int, access: Access, user: bool, entry: int | None, fault: int | None) -> None:
        pc = va if access is Access.FETCH else self.pc     # a fetch walks before its instruction is reported
        if not self._kept(pc):
            return
        mode, kind = "user" if user else "kernel", access.name.lower()
        outcome = f"entry={entry:#010x}" if fault is None else f"fault {cause_name(fault)}"
        self._write(f"mmu: walk {kind} {mode} va={va:#010x} {outcome} pc={pc:#010x}",
                    {"event": "mmu", "vm": self._context()[0], "pc": pc, "va": va, "access": kind,
                     "user": user, "entry": entry, "fault": None if fault is None else cause_name(fault)})

    def io(self, vm: str | None, device: str, op: str, offset: int, width: int, value: int) -> None:
        if not self._kept(self.pc):
            return
        where = f"{vm} " if vm else ""
        self._write(f"io: {where}{device} {op} offset={offset:#x} width={width} value={value:#x} pc={self.pc:#010x}",
                    {"event": "io", "vm": vm, "pc": self.pc, "device": device, "op": op, "offset": offset,
                     "width": width, "value": value})


# --- attaching to an engine --------------------------------------------------------------------


def check_events(events: frozenset[str], engine: str) -> None:
    """KiteError if `engine` ("bare", "sim" or "vmm") cannot produce one of `events`."""
    if engine != "vmm" and events & set(VMM_ONLY):
        wanted = ",".join(sorted(events & set(VMM_ONLY)))
        raise KiteError(f"--trace-events {wanted}: only the VMM makes exits and hypercalls "
                        f"(use --paging or --vm)")
    if engine == "sim" and "mmu" in events:
        raise KiteError("--trace-events mmu: the simulator has no MMU or TLB to trace (every access walks "
                        "in software, counted in page_walks)")


def _machine_space_reader(memory, cr):
    """read_virtual(va, n) of the address space the CPU's (or simulator's) ptb selects, without side effects."""
    from asm.isa import CR_PTB
    from vmm.debug.target import Identity, Space

    def read_virtual(va: int, length: int):
        return Space(memory, Identity(memory.size), cr[CR_PTB], "physical").read_virtual(va, length)
    return read_virtual


def attach_machine(machine, image: str, modules: tuple[str, ...], config: TraceConfig) -> Tracer:
    """Trace the bare machine (after `machine.load`)."""
    check_events(config.events, "bare")
    symbols = Symbols.load(image, modules, _machine_space_reader(machine.memory, machine.cpu.cr))
    tracer = Tracer(config, lambda: (None, symbols), resolve_ranges(config.ranges, symbols))
    _hook_cpu(machine.cpu, tracer)
    if tracer.wants("io"):
        for device in list(machine.bus.devices):
            _watch_device(device, tracer, None)
    return tracer


def attach_simulator(simulator, image: str, modules: tuple[str, ...], config: TraceConfig) -> Tracer:
    """Trace the machine simulator (after `simulator.load`)."""
    check_events(config.events, "sim")
    symbols = Symbols.load(image, modules, _machine_space_reader(simulator.memory, simulator.cr))
    tracer = Tracer(config, lambda: (None, symbols), resolve_ranges(config.ranges, symbols))
    simulator.trace = tracer
    if tracer.wants("io"):
        for device in list(simulator.bus.devices):
            _watch_device(device, tracer, None)
    return tracer


def attach_monitor(monitor, config: TraceConfig) -> Tracer:
    """Trace the VMM and its VMs (after they are created).  The filter's
    symbols are the first VM's."""
    from vmm.debug.target import vm_space
    check_events(config.events, "vmm")
    maps = {vm.vm_id: Symbols.load(vm.config.image, vm.config.modules,
                                     lambda va, n, vm=vm: vm_space(vm).read_virtual(va, n))
            for vm in monitor.vms}

    def context() -> tuple[str | None, Symbols]:
        vm = monitor.current or monitor.vms[0]
        return vm.name, maps[vm.vm_id]

    tracer = Tracer(config, context, resolve_ranges(config.ranges, maps[monitor.vms[0].vm_id]))
    _hook_cpu(monitor.cpu, tracer, every_pc=("insn", "mmu", "io"))
    traps = tracer.wants("trap") and monitor.cpu.trace is None
    if tracer.wants("exit") or traps:
        _hook_exits(monitor, tracer, traps)
    if tracer.wants("hypercall"):
        monitor.trace_hypercall = lambda vm, epc, name, args, result: tracer.hypercall(
            vm.name, epc, name, args, result)
    if tracer.wants("io"):
        for vm in monitor.vms:
            for device in list(vm.devices.values()):
                _watch_device(device, tracer, vm.name)
    return tracer


def _hook_cpu(cpu, tracer: Tracer, every_pc: tuple[str, ...] = NEED_EVERY_PC) -> None:
    """The CPU's trace hook when a category of `every_pc` is wanted, and the MMU's walks for mmu."""
    if tracer.wants("mmu"):
        _watch_walks(cpu.mmu, tracer)
    if any(tracer.wants(category) for category in every_pc):
        cpu.trace = tracer


def _hook_exits(monitor, tracer: Tracer, traps: bool) -> None:
    """Report every VM exit after the monitor handled it, with the reasons
    the VMs' exits counters gained (as the debugger's ExitEvent does); with
    `traps`, also its cause as a trap event first, as the CPU's hook would
    (every trap under the VMM is an exit), so the CPU keeps its fast loop;
    the monitor's answer goes back to the CPU (a quiet exit)."""
    cpu, handle = monitor.cpu, monitor.cpu.vm_exit
    exits = tracer.wants("exit")

    def vm_exit(cause: int, epc: int, badaddr: int | None) -> bool:
        if traps:
            tracer("trap", cause, epc, badaddr)
        before = [Counter(vm.exits) for vm in monitor.vms] if exits else None
        vm = monitor.current
        quiet = handle(cause, epc, badaddr)
        if exits:
            reasons = [reason for old, now in zip(before, monitor.vms) for reason in now.exits
                       if now.exits[reason] != old[reason]]
            tracer.exit(vm.name, cause, epc, badaddr, reasons, cpu.pc)
        return quiet

    cpu.vm_exit = vm_exit


def _watch_walks(mmu, tracer: Tracer) -> None:
    """Report each walk of `mmu` (its `_walk`, wrapped on the instance: the MMU calls it on every
    TLB miss and every walk again for D) with its outcome; the walk itself is unchanged."""
    from vmm.machine.mmu import Fault
    walk = mmu._walk

    def traced_walk(va: int, access: Access, user: bool) -> int:
        try:
            entry = walk(va, access, user)
        except Fault as fault:
            tracer.mmu(va, access, user, None, fault.cause)
            raise
        tracer.mmu(va, access, user, entry, None)
        return entry

    mmu._walk = traced_walk


def _watch_device(device, tracer: Tracer, vm: str | None) -> None:
    """Report each register read and write of `device` that succeeds (its own
    read/write, wrapped on the instance, so the device stays the same object)."""
    read, write = device.read, device.write

    def traced_read(offset: int, width: int) -> int:
        value = read(offset, width)
        tracer.io(vm, device.name, "read", offset, width, value)
        return value

    def traced_write(offset: int, width: int, value: int) -> None:
        write(offset, width, value)
        tracer.io(vm, device.name, "write", offset, width, value)

    device.read, device.write = traced_read, traced_write

"""What `kite debug` debugs: the bare machine, the simulator, or the VMM and its VMs.

A Target runs the guest only through the engine's own run loop, with an
instruction limit (`advance`), and hands out a View of the selected context:
its registers, control registers and address space.  Everything a View reads
is read without side effects: page tables are walked in software with no A/D
bits set (guestwalk.GuestTables, set_bits=False), the TLB is never filled,
device registers are never read.

Under the VMM the CPU's `vm_exit` hook (the monitor's exit method) is wrapped:
each exit is handed to the session as an ExitEvent (the reasons the VM's
`exits` counters gained, docs/vmm.md "Figures"); if the session wants to stop
there, the CPU is asked to stop after the exit (cpu.request_stop with
DEBUG_STOP), and `advance` turns that stop back into a running CPU.

The bare machine is advanced with Machine.advance, its run loop without the
end of the run.

Going back (vmm/debug/reverse.py) replaces the engine: `adopt` points the
Target at a fresh engine restored from a checkpoint, `replay_to` runs it
forward with no exit reported to the session, and `finish` ends the run on
whichever engine is current.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

from asm.arch import Access, describe_cause
from asm.isa import CR_CAUSE, CR_PTB, CR_STATUS, PAGE_MASK, PAGE_SIZE, STATUS_KM, STATUS_UF
from vmm.machine.outcome import CpuState, EndReason
from vmm.monitor.guestwalk import GuestTables, Translation
from vmm.debug.symbols import DebugError, Symbols

DEBUG_STOP = "debugger: stop requested"
ACTIVE = (CpuState.RUNNING, CpuState.WAITING)
TRAP_REASONS = ("reflect: ", "true page fault", "interrupt injected", "bus error")


class Identity:
    """The physmap interface of a machine with no VMM: physical = machine, RAM only."""

    def __init__(self, size: int):
        self.size = size

    def gpa_to_ma(self, pa: int) -> int | None:
        return pa if 0 <= pa < self.size else None


class Space:
    """One address space: `ptb` walked through `physmap` (gpa -> ma) over
    machine `memory`.  `physical` names what the tables point into."""

    def __init__(self, memory, physmap, ptb: int, physical: str):
        self.memory, self.physmap, self.ptb, self.physical = memory, physmap, ptb, physical
        self.tables = GuestTables(memory, physmap, ptb)

    def walk(self, va: int):
        """The walk of `va` for a kernel-mode read, changing nothing."""
        return self.tables.walk(va & 0xFFFFFFFF, Access.READ, user=False, set_bits=False)

    def to_physical(self, va: int) -> int | None:
        """The physical (table-side) address of `va`, or None if unmapped."""
        found = self.walk(va)
        return found.gpa if isinstance(found, Translation) else None

    def read_virtual(self, va: int, length: int) -> bytes | None:
        """`length` bytes at virtual `va`, or None if any page is unmapped or not RAM."""
        return self._read(va, length, self.to_physical)

    def read_physical(self, pa: int, length: int) -> bytes | None:
        """`length` bytes at physical `pa`, or None outside RAM."""
        return self._read(pa, length, lambda address: address)

    def read_machine(self, ma: int, length: int) -> bytes | None:
        """`length` bytes of machine RAM at `ma`, or None outside it."""
        return self.memory.read_bytes(ma, length) if self.memory.contains(ma, length) else None

    def _read(self, address: int, length: int, to_physical: Callable[[int], int | None]) -> bytes | None:
        """Read page by page, each through `to_physical` and the physmap."""
        chunks = []
        while length > 0:
            step = min(length, PAGE_SIZE - (address & PAGE_MASK))
            pa = to_physical(address)
            ma = None if pa is None else self.physmap.gpa_to_ma(pa)
            if ma is None or not self.memory.contains(ma, step):
                return None
            chunks.append(self.memory.read_bytes(ma, step))
            address, length = (address + step) & 0xFFFFFFFF, length - step
        return b"".join(chunks)

    def word(self, va: int) -> int | None:
        """The little-endian word at virtual `va`, or None."""
        data = self.read_virtual(va, 4)
        return None if data is None else int.from_bytes(data, "little")


@dataclass
class View:
    """The selected guest context, now.  `cr` as the guest sees them (the
    virtual CPU's under the VMM), `machine_cr` the machine's (VMM only)."""
    label: str
    regs: list[int]
    pc: int
    cr: list[int]
    space: Space
    symbols: Symbols
    tlb: dict[int, int] | None
    machine_cr: list[int] | None = None
    vm: object = None

    @property
    def kernel(self) -> bool:
        return bool(self.cr[CR_STATUS] & STATUS_KM)


@dataclass(frozen=True)
class ExitEvent:
    """One VM exit: the VM, the cause, where, and the exits counters' reasons it added."""
    vm: object
    cause: int
    epc: int
    badaddr: int | None
    reasons: tuple[str, ...]
    pc_after: int            # where the guest goes on

    def trap(self) -> str | None:
        """The trap reflected into the guest by this exit ('page fault', ...), or None."""
        for reason in self.reasons:
            if reason.startswith("reflect: "):
                return reason.removeprefix("reflect: ")
            if reason in TRAP_REASONS:
                return "page fault" if reason == "true page fault" else \
                    describe_cause(self.vm.vcpu.cr[CR_CAUSE]) if reason == "interrupt injected" else reason
        return None


class MachineTarget:
    """The bare machine (`machine`), or the VMM's machine when `monitor` is given."""

    def __init__(self, machine, symbols_for: Callable[[object], Symbols], monitor=None):
        self.kind = "bare machine" if monitor is None else "VMM"
        self._symbols_for = symbols_for
        self.on_exit: Callable[[ExitEvent], bool] | None = None
        self.adopt(monitor or machine)

    def adopt(self, engine) -> None:
        """Debug `engine` from now on: a Machine, or a Monitor (its machine)."""
        from vmm.monitor.monitor import Monitor
        monitor = engine if isinstance(engine, Monitor) else None
        self.machine = engine.machine if monitor else engine
        self.cpu, self.monitor = self.machine.cpu, monitor
        self.selected = monitor.vms[0] if monitor else None
        self._symbols: dict[int, Symbols] = {}
        self._stuck = False
        if monitor is not None:
            self._wrap_exit()

    @property
    def engine(self):
        """What runs: the Monitor under the VMM, else the Machine."""
        return self.monitor or self.machine

    def finish(self, max_instructions: int | None):
        """The end of the run on the current engine: its own run (Machine.run,
        or Monitor.run_on), not the debugger's that replaced it (cli.attach)."""
        if self.monitor is not None:
            return type(self.monitor).run_on(self.monitor, max_instructions)
        return type(self.machine).run(self.machine, max_instructions)

    def replay_to(self, instructions: int) -> None:
        """Run forward to `instructions`, no exit reported to the session."""
        with self.unobserved():
            self.advance(instructions)
        replayed_to(self, instructions)

    @contextlib.contextmanager
    def unobserved(self) -> Iterator[None]:
        """While inside, no exit is reported to the session (a replay's exits are not the run's)."""
        on_exit, self.on_exit = self.on_exit, None
        try:
            yield
        finally:
            self.on_exit = on_exit

    # --- running ----------------------------------------------------------------

    @property
    def instructions(self) -> int:
        return self.cpu.counters.instructions

    @property
    def active(self) -> bool:
        """Whether the guest can still run (not ended, not waiting for an interrupt nothing can raise)."""
        return self.cpu.state in ACTIVE and not self._stuck

    @property
    def pc(self) -> int:
        """The pc of whatever runs now (the current VM under the VMM)."""
        return self.cpu.pc

    def machine_word(self, ma: int) -> int:
        """The word of machine RAM at `ma` (word-aligned, in RAM)."""
        return self.machine.memory.read(ma, 4)

    def traps_taken(self) -> int:
        """Exceptions raised plus interrupts taken so far (bare machine: a trap is one of them)."""
        counters = self.cpu.counters
        return sum(counters.exceptions.values()) + sum(counters.interrupts.values())

    def guest_traps(self) -> int:
        """Traps the guests have taken so far: on the bare machine traps_taken,
        under the VMM the traps reflected to the VMs (not the exits the VMM
        handled by itself, such as hidden page faults)."""
        if self.monitor is None:
            return self.traps_taken()
        return sum(vm.reflections for vm in self.monitor.vms)

    def advance(self, limit: int) -> None:
        """Run the machine's loop until `limit` instructions, a debugger stop or the end."""
        self._stuck = self.machine.advance(limit) is EndReason.NO_INTERRUPT_SOURCE
        if self.cpu.state is CpuState.STOPPED and self.cpu.stop_reason == DEBUG_STOP:
            self.cpu.state, self.cpu.stop_reason = CpuState.RUNNING, None

    def _wrap_exit(self) -> None:
        """Route every VM exit through `on_exit` after the monitor handled it
        (module doc); the monitor's answer goes back to the CPU (a quiet exit)."""
        original, cpu, monitor = self.cpu.vm_exit, self.cpu, self.monitor

        def vm_exit(cause: int, epc: int, badaddr: int | None) -> bool:
            before = [Counter(vm.exits) for vm in monitor.vms]
            vm = monitor.current
            quiet = original(cause, epc, badaddr)
            if self.on_exit is None:
                return quiet
            reasons = tuple(reason for vm_before, after in zip(before, monitor.vms)
                            for reason in after.exits if after.exits[reason] != vm_before[reason])
            if self.on_exit(ExitEvent(vm, cause, epc, badaddr, reasons, cpu.pc)) and cpu.state is CpuState.RUNNING:
                cpu.request_stop(DEBUG_STOP)       # the CPU stops after the instruction, in place or not
            return quiet

        cpu.vm_exit = vm_exit

    # --- what the console shows ----------------------------------------------------

    @property
    def vms(self) -> list:
        return self.monitor.vms if self.monitor else []

    def follow_current(self) -> None:
        """Select the VM that runs now (after a stop, as GDB selects the thread that stopped)."""
        if self.monitor is not None and self.monitor.current is not None:
            self.selected = self.monitor.current

    def select(self, which: str) -> None:
        """Select the VM named `which` or numbered `which` (1 = the first)."""
        for number, vm in enumerate(self.vms, 1):
            if which in (str(number), vm.name):
                self.selected = vm
                return
        raise DebugError(f"no VM '{which}' (info vms lists them)" if self.vms else "no VMs: not under the VMM")

    def view(self) -> View:
        """The selected context now."""
        if self.monitor is None:
            cpu = self.cpu
            space = Space(self.machine.memory, Identity(self.machine.memory.size), cpu.cr[CR_PTB], "physical")
            return View("bare machine", cpu.regs, cpu.pc, cpu.cr, space, self.symbols(None), self.cpu.mmu.tlb)
        return self._vm_view(self.selected)

    def _vm_view(self, vm) -> View:
        """A VM's context: the CPU's while it is switched in, its saved one otherwise."""
        running = vm is self.monitor.current
        regs, pc = (self.cpu.regs, self.cpu.pc) if running else (vm.regs, vm.pc)
        user_flags = self.cpu.cr[CR_STATUS] if running else vm.user_flags
        cr = list(vm.vcpu.cr)
        cr[CR_STATUS] = vm.vcpu.status(user_flags & STATUS_UF)
        return View(f"{vm.name} ({vm.config.paging})", regs, pc, cr, vm_space(vm), self.symbols(vm),
                    self.cpu.mmu.tlb if running else None, list(self.cpu.cr), vm)

    def symbols(self, vm) -> Symbols:
        key = 0 if vm is None else vm.vm_id
        if key not in self._symbols:
            self._symbols[key] = self._symbols_for(vm)
        return self._symbols[key]

    def ended(self) -> str:
        """How the run ended, for the console."""
        if self.monitor is not None:
            return "; ".join(f"{vm.name}: {vm.state}, exit code {vm.exit_code}" +
                             (f" ({vm.message})" if vm.message else "") for vm in self.vms)
        if self.cpu.state is CpuState.HALTED:
            return f"halted, exit code {self.machine.power.exit_code or 0}"
        if self.machine.power.exit_code is not None:
            return f"powered off, exit code {self.machine.power.exit_code}"
        return f"stopped: {self.cpu.stop_reason or 'no interrupt can ever wake the waiting CPU'}"


def replayed_to(target, instructions: int) -> None:
    """A replay must land where the forward run was: DebugError otherwise."""
    if target.instructions != instructions:
        raise DebugError(f"internal: the replay reached instruction {target.instructions}, not {instructions}")


def vm_space(vm) -> Space:
    """A VM's address space as its current virtual mode sees it: the guest's
    tables over guest-physical memory (shadow), or the validated root for the
    current mode over the VM's machine frames (direct)."""
    mode = vm.mode
    if vm.config.paging == "direct":
        return Space(mode.memory, mode.owned, mode.machine_ptb(vm.vcpu), "machine")
    return Space(mode.memory, vm.physmap, vm.vcpu.cr[CR_PTB], "guest-physical")


class SimTarget:
    """The machine simulator (`kite run --sim`): no TLB, no VMM."""

    kind = "simulator"
    vms: list = []
    selected = None
    on_exit = None
    monitor = None

    def __init__(self, simulator, symbols_for: Callable[[object], Symbols]):
        self._symbols_for = symbols_for
        self.adopt(simulator)

    def adopt(self, simulator) -> None:
        """Debug `simulator` from now on."""
        self.sim, self._symbols, self._stuck = simulator, None, False

    @property
    def engine(self):
        return self.sim

    def finish(self, max_instructions: int | None):
        """The end of the run: the Simulator's own run (cli.attach replaced the instance's)."""
        return type(self.sim).run(self.sim, max_instructions)

    def replay_to(self, instructions: int) -> None:
        """Run forward to `instructions` (nothing to report on the way)."""
        self.advance(instructions)
        replayed_to(self, instructions)

    @contextlib.contextmanager
    def unobserved(self) -> Iterator[None]:
        """No VM exits to hide: nothing to do."""
        yield

    @property
    def instructions(self) -> int:
        return self.sim.instructions

    @property
    def active(self) -> bool:
        return self.sim.state in ACTIVE and not self._stuck

    def follow_current(self) -> None:
        """One machine: nothing to select."""

    @property
    def pc(self) -> int:
        return self.sim.pc

    def machine_word(self, ma: int) -> int:
        return self.sim.memory.read(ma, 4)

    def traps_taken(self) -> int:
        return sum(self.sim.exceptions.values()) + sum(self.sim.interrupts.values())

    def guest_traps(self) -> int:
        """Traps the guest has taken so far (all of them: nothing runs below it)."""
        return self.traps_taken()

    def advance(self, limit: int) -> None:
        """Interpret until `limit` instructions or the end, through the class's
        own run (the instance's is the debugger's, vmm/debug/cli.py)."""
        self._stuck = type(self.sim).run(self.sim, limit).reason is EndReason.NO_INTERRUPT_SOURCE

    def select(self, which: str) -> None:
        raise DebugError("no VMs: the simulator runs one machine")

    def view(self) -> View:
        sim = self.sim
        space = Space(sim.memory, Identity(sim.memory.size), sim.cr[CR_PTB], "physical")
        return View("simulator", sim.regs, sim.pc, sim.cr, space, self.symbols(None), None)

    def symbols(self, vm) -> Symbols:
        if self._symbols is None:
            self._symbols = self._symbols_for(None)
        return self._symbols

    def ended(self) -> str:
        if self.sim.state is CpuState.HALTED:
            return f"halted, exit code {self.sim.power.exit_code or 0}"
        if self.sim.power.exit_code is not None:
            return f"powered off, exit code {self.sim.power.exit_code}"
        return f"stopped: {self.sim.stop_reason or 'no interrupt can ever wake the waiting CPU'}"


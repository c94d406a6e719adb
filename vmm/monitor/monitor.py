"""The VMM: guest kernels run deprivileged on the Kite32 machine, trap-and-emulate.

Every guest instruction executes on the machine in real USER mode.  Each
exception, interrupt and `hypercall` of the guest leaves the CPU through its
`vm_exit` hook into `Monitor.exit`, one dispatch on the exit reason:

    machine interrupt   the VMM's own timer: virtual devices catch up, VMs wake,
                        the time slice may end
    hypercall           hypercalls.dispatch (refused from virtual user mode)
    privileged insn     emulate.privileged against the virtual CPU (virtual
                        kernel mode), else reflected: the guest's own exception
    page fault          the paging mode classifies it: hidden (fixed, retried),
                        true (reflected with the bare machine's error code),
                        traced page-table write or MMIO (emulated)
    anything else       reflected into the guest's trap vector

then `_resume`: deliver a pending virtual interrupt if the guest enabled
them, switch VMs if the current one cannot run, and program the machine timer
for the next virtual timer event or the end of the slice.

A nested-paging VM (--paging nested) runs in the machine's guest mode
instead: its exits reach Monitor.exit through guestmode.py, which loads its
state into the register file and maps each exit onto this same dispatch;
the one seam here is _run_current (enter it again after the exit), with
load_mode and _inject leaving its state and interrupts to the hardware.

Virtual time is machine time: a guest's timer counts machine ticks, and an
instruction the VMM completes by emulation is charged one tick, so a single
guest sees its timer at the same instruction count as on the bare machine.
Machine frames 0..VMM_FRAMES-1 are the VMM's own; each VM gets its frames
after them, in creation order.  A guest can stop only itself (VM.crash); the
VMM and the other VMs go on.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from typing import BinaryIO, Callable

from asm.arch import (describe_cause, interrupt_to_take, is_fetch_fault, triple_fault_message,
                      unhandled_trap_message)
from asm.isa import (BOOTINFO_ADDR, CAUSE_CODE_MASK, CAUSE_ERRCODE_SHIFT, CAUSE_INTERRUPT, CR_PTB,
                     CR_STATUS, CR_TVEC, EXC_BUS_ERROR, EXC_PAGE_FAULT, EXC_PRIVILEGED, EXCEPTION_NAMES,
                     IRQ_DISK, IRQ_TIMER, PAGE_SHIFT, PF_FETCH, PF_WRITE, POWER_BASE, REG_A0, REG_SP,
                     STATUS_IE, STATUS_PIE, STATUS_PKM, STATUS_UF, TIMER_BASE)
from vmm.machine.costs import DEFAULT_COST_MODEL, CostModel, modeled_cycles
from vmm.machine.cpu import EXIT_HYPERCALL
from vmm.machine.devices.disk import DiskImage
from vmm.machine.devices.power import POWER_EXIT
from vmm.machine.devices.timer import CTRL_ENABLE, TIMER_ACK, TIMER_CTRL, TIMER_INTERVAL
from vmm.machine.devices.uart import ConsoleInput
from vmm.machine.errors import KiteError
from vmm.machine.loader import load
from vmm.machine.machine import Machine
from vmm.machine.outcome import CpuState, RunResult
from vmm.machine.phases import split
from vmm.monitor import boot, emulate, hypercalls
from vmm.monitor.nested import NestedMode
from vmm.monitor.paging import MODES, ShadowMode
from vmm.monitor.physmap import MA, OWNER_FREE, OWNER_VMM, GuestPhysMap, MachineFrames, OutOfFrames
from vmm.monitor.pvcpu import PvCpu, interrupted_status
from vmm.monitor.shadow import FaultKind
from vmm.monitor.blkback import BlockBackend, BlockCounts
from vmm.monitor.bt.runner import BinaryTranslator
from vmm.monitor.vm import (RUNNABLE, WAITING, VM, GuestMemory, SharedConsole, VmConfig, VmConsole, VmState,
                            VmStats, earliest, frames_for)

VMM_FRAMES = 16                 # machine frames kept by the VMM (64 KiB)
DEFAULT_SLICE = 20_000          # modeled cycles' worth of ticks a VM runs before the next one, with several VMs
MAX_EXITS_WITHOUT_PROGRESS = 64  # consecutive exits with no instruction retired: a wedged guest
MIN_SHADOW_PAGES = 8            # a shadow VM's limit is never below this (a root and a few tables)


@dataclass
class VmResult:
    """How one VM ended, and its figures."""
    name: str
    exit_code: int
    state: VmState
    message: str
    stats: VmStats


class Monitor:
    """The VMM on one machine of `mem_size` bytes.  Create VMs, then `run`."""

    def __init__(self, mem_size: int, console_out: BinaryIO | None = None,
                 console_in: ConsoleInput | None = None, cost_model: CostModel = DEFAULT_COST_MODEL,
                 slice_ticks: int = DEFAULT_SLICE):
        self.machine = Machine(mem_size, console_in=console_in, console_out=console_out,
                               cost_model=cost_model)
        self.cpu = self.machine.cpu
        self.cpu.vm_exit = self.exit
        # the trace's hypercall hook (vmm/tracing.py), None unless tracing hypercalls:
        # trace_hypercall(vm, epc, name, args, result: the handler's, None if it set the registers itself)
        self.trace_hypercall: Callable | None = None
        self.console_out = console_out or sys.stdout.buffer
        self._shared_console = SharedConsole(self.console_out)
        self.console_in = console_in or ConsoleInput(b"")
        self.cost_model = cost_model
        self.slice_ticks = slice_ticks
        # what one of a VM's exits costs its time slice: the cost model's price of an exit, in instructions
        self._exit_charge = cost_model.vm_exit // max(cost_model.instruction, 1)
        self.frames = MachineFrames(mem_size >> PAGE_SHIFT)
        self.frames.allocate(OWNER_VMM, VMM_FRAMES)
        self.vms: list[VM] = []
        self.current: VM | None = None
        self._resumed_at = (0, 0)          # (cpu.ticks, idle ticks) when the current VM resumed
        self._walks_at = (0, 0)            # the machine's (tlb_misses, walk_refs) then
        self._slice_end = 0
        self._timer_target: int | None = None
        # quiet exits (exit): no device event of the running or a waiting VM is due before this machine
        # tick (0: unknown); whether the machine timer follows the slice's end (more than one VM runnable)
        self._quiet_until = 0
        self._timer_follows_slice = False
        self._quiet_exit = False

    # --- creating VMs -------------------------------------------------------------------

    def create_vm(self, config: VmConfig, prefix_output: bool = False) -> VM:
        """Give a new VM its frames, load its image (the loader reports a bad
        or missing one first), check its paging note and boot it (paused).
        Raises KiteError (ImageError, out of memory, wrong paging mode)."""
        vm_id = len(self.vms) + 1
        try:
            mfns = self.frames.allocate(vm_id, frames_for(config.mem))
        except OutOfFrames as error:
            raise KiteError(f"{config.name}: not enough machine memory for {config.mem >> 10} KiB: "
                            f"{error}") from None
        physmap = GuestPhysMap(vm_id, mfns)
        memory = self.machine.memory
        mode = MODES[config.paging](memory, self.frames, physmap, vm_id, self.cpu, config)
        output = VmConsole(self._shared_console, f"[{config.name}] ".encode()) if prefix_output \
            else self.console_out
        console_in = self.console_in if not self.vms else ConsoleInput(b"")
        vm = VM(vm_id, config, physmap, mode, output, console_in, self._clock, self._timer_changed)
        image = load(GuestMemory(memory, physmap), config.image, list(config.modules), config.cmdline)
        boot.check_paging_note(config)
        vm.symbols = image.symbols
        vm.pc, vm.regs[REG_A0] = image.entry_paddr, BOOTINFO_ADDR
        if config.paging == "direct":
            boot.build_direct_start(vm, image)
        if config.cpu == "bt":
            self._translate(vm)
        if config.disk is not None:
            vm.attach_disk(DiskImage.open(config.disk, read_only=config.disk_readonly))
        self.vms.append(vm)
        return vm

    def _translate(self, vm: VM) -> None:
        """Make `vm` binary-translated (--cpu bt): its translator, and the
        VMM window in its shadow tables.  Raises KiteError if the machine has
        no frames left for the window."""
        try:
            vm.bt = BinaryTranslator(vm, self.machine, self.frames, vm.mode.counters)
        except OutOfFrames as error:
            raise KiteError(f"{vm.name}: not enough machine memory for the translation cache: {error}") from None
        vm.mode.shadow.window = vm.bt.window_entry
        vm.mode.translated = vm.bt.translates

    # --- running ------------------------------------------------------------------------

    def run(self, max_instructions: int | None = None) -> tuple[RunResult, list[VmResult]]:
        """Run every VM until all are done (or crashed), or the machine's
        instruction limit.  Returns the machine's result and one per VM."""
        self.start()
        return self.run_on(max_instructions)

    def start(self) -> None:
        """Boot the VMs: the first one switched in, the machine timer armed;
        then machine.advance runs them (run() is this and run_on)."""
        if not self.vms:
            raise KiteError("no VM to run")
        self._share_shadow_pool()
        self.cpu.reset(0, 0)
        self._switch_to(self.vms[0])
        self._program_timer()
        self._run_current()

    def settle(self) -> None:
        """Between two stretches of machine.advance: the running VM charged
        its instructions so far, every VM's console output written out."""
        self._account()
        for vm in self.vms:
            vm.uart.flush()

    def switch_in(self, vm: VM) -> None:
        """Between two stretches of machine.advance: make `vm` the running VM
        (the current one charged and saved as at any switch), to capture it."""
        self.settle()
        if self.cpu.in_guest:
            self.current.mode.guest.pause(self.current, self)
        if vm is not self.current:
            self._switch_to(vm)
            self._program_timer()

    def let_go(self, vm: VM, message: str) -> None:
        """`vm` left this monitor whole (VM.move): another VM is scheduled if
        it was running, and its frames and tables are given back; the others
        go on at the next machine.advance."""
        vm.move(message)
        if vm is self.current:
            self._schedule()
        self._contained(vm, lambda vm: "tearing the VM down", self._tear_down, vm)
        vm.torn_down = True
        if self.cpu.state is not CpuState.STOPPED:
            self._program_timer()

    def restore_vm(self, config: VmConfig, prefix_output: bool = False, first_frame: int = VMM_FRAMES) -> VM:
        """A VM for a restored checkpoint (vmm/monitor/checkpoint.py): its
        frames from machine frame `first_frame` on (where it had them: the
        frames below it, another VM's at the checkpoint, are kept out of
        use), its paging mode as create_vm gives it, nothing loaded."""
        vm_id = len(self.vms) + 1
        try:
            self.frames.allocate(OWNER_VMM, first_frame - VMM_FRAMES)
            mfns = self.frames.allocate(vm_id, frames_for(config.mem))
        except OutOfFrames as error:
            raise KiteError(f"{config.name}: not enough machine memory for {config.mem >> 10} KiB: {error}") from None
        physmap = GuestPhysMap(vm_id, mfns)
        mode = MODES[config.paging](self.machine.memory, self.frames, physmap, vm_id, self.cpu, config)
        output = VmConsole(self._shared_console, f"[{config.name}] ".encode()) if prefix_output \
            else self.console_out
        vm = VM(vm_id, config, physmap, mode, output, self.console_in, self._clock, self._timer_changed)
        self.vms.append(vm)
        return vm

    def resume_vm(self, vm: VM, cpu_state: dict, resumed_at: tuple, walks_at: tuple, slice_end: int,
                  timer_target: int | None, user_flags: int) -> None:
        """Make the restored `vm` the running one: the machine CPU as saved
        (CPU.restore), the machine in the mode and root its virtual state
        calls for (a fresh shadow root: the tables refill by hidden faults),
        the monitor's time bookkeeping as saved."""
        self._share_shadow_pool()
        self.cpu.restore(cpu_state)
        self.current = vm
        self.load_mode(vm, user_flags=user_flags)
        self._resumed_at, self._walks_at = resumed_at, walks_at
        self._slice_end, self._timer_target = slice_end, timer_target
        self._quiet_until = 0

    def restore_pv_pages(self, vm: VM, pvcpu_gfn: int | None, ring_gfn: int | None) -> None:
        """Register a restored direct-mode `vm`'s per-vCPU page and block ring
        (`vm` with a disk) at guest frames `pvcpu_gfn` and `ring_gfn` (None:
        not registered) through the hypercalls' path: the validator holds the
        frame writable (hold_writable: this VM's RAM, not a page table), then
        set_pv_cpu / set_block_ring.  Raises direct.Rejected."""
        for gfn, register in ((pvcpu_gfn, self.set_pv_cpu), (ring_gfn, self.set_block_ring)):
            if gfn is not None:
                mfn = vm.physmap.p2m[gfn]
                vm.mode.direct.hold_writable(mfn)
                register(vm, MA(mfn << PAGE_SHIFT))

    def run_on(self, max_instructions: int | None = None) -> tuple[RunResult, list[VmResult]]:
        """run() from where the machine is now (after run() set it up, or a
        restore, or a capture that took a guest-mode VM out of guest mode:
        it enters again first)."""
        self._run_current()
        finished = False
        try:
            result = self.machine.run(max_instructions)
            finished = True
        finally:
            self._account()
            for vm in self.vms:
                vm.uart.flush()
            self.release_disks(write_back=finished)
        if self.current is not None and self.current.bt is not None and self.current.bt.running:
            result = self._stopped_in_translation(result)
        return result, [self._vm_result(vm) for vm in self.vms]

    def _stopped_in_translation(self, result: RunResult) -> RunResult:
        """The machine stopped (at its instruction limit) in a VM's translated
        code: the VM's state in the guest's terms, as at an exit (bt/runner.py
        leave), and the result naming the guest's pc instead of the TC's."""
        vm, stopped_at = self.current, self.cpu.pc
        self._contained(vm, lambda *_: f"stopping in translated code at {stopped_at:#010x}", vm.bt.leave,
                        self, vm, 0, stopped_at, None)
        return replace(result, pc=self.cpu.pc,
                       message=result.message.replace(f"{stopped_at:#010x}", f"{self.cpu.pc:#010x}"))

    def release_disks(self, write_back: bool) -> None:
        """Every VM's disk image: its dirty sectors into the file if
        `write_back` (DiskImage.write_back, atomic: a run that did not finish
        writes nothing), then its lock released.  Raises the first DiskError."""
        failure = None
        for vm in self.vms:
            if vm.disk is not None:
                try:
                    if write_back:
                        vm.disk.image.write_back()
                except KiteError as error:
                    failure = failure or error
                vm.disk.image.close()
        if failure is not None:
            raise failure

    def _share_shadow_pool(self) -> None:
        """Give each shadow-paging VM an equal share of the free machine frames
        as its shadow-page limit, so no VM can starve another."""
        shadow_vms = [vm for vm in self.vms if isinstance(vm.mode, ShadowMode)]
        if shadow_vms:
            share = len(self.frames.owned_by(OWNER_FREE)) // len(shadow_vms)
            for vm in shadow_vms:
                vm.mode.shadow.max_pages = max(share, MIN_SHADOW_PAGES)

    def _clock(self) -> int:
        return self.cpu.ticks

    def _timer_changed(self) -> None:
        """A virtual timer moved its next event: the machine timer follows at resume."""
        self._timer_target = None
        self._quiet_until = 0

    # --- the exit handler ----------------------------------------------------------------

    def exit(self, cause: int, epc: int, badaddr: int | None, dispatch: Callable | None = None) -> bool:
        """The CPU's vm_exit hook: devices current, one dispatch on the exit
        reason (`dispatch`, else Monitor.dispatch), then resume, and back into guest
        mode if the VM to run next uses it (guestmode.py maps its exits
        here).  The one time discipline (module doc): every VM's devices
        are brought up to the current tick before the exit is handled, so a
        device access, an interrupt decision or a time-reading hypercall sees
        what the bare machine would see at this tick.  An exit from a
        binary-translated VM's translated code is first put in the guest's
        terms (bt/runner.py: leave).

        While no device event of the running VM or of a waiting one is due
        (_due), a page fault or a privileged instruction needs none of that
        work before its handling, which reads no device but where it says so
        (an MMIO outcome: fault_outcome; wfi: emulate.py).  A quiet exit (a
        hidden fault, a traced page-table write, a privileged instruction
        that leaves the virtual interrupt flag and mode alone: `quiet`)
        changes no device, interrupt line, virtual interrupt flag, mode or
        VM state, so resuming a trap-and-emulate VM after it is the previous
        resume's decision again (_resume_quietly); returns True then, for the
        CPU (an exit in place may let the block go on: cpu.py), else False."""
        vm = self.current
        if vm.bt is not None and vm.bt.running:
            self._contained(vm, lambda *_: f"leaving translated code at {epc:#010x}", vm.bt.leave,
                            self, vm, cause, epc, badaddr)
            cause, epc, badaddr, dispatch = vm.bt.exit_as
        if self._account():
            vm.entering_trap, vm.stalled = False, 0
        elif not cause & CAUSE_INTERRUPT:
            vm.stalled += 1
        if not cause & CAUSE_INTERRUPT:
            self._slice_end -= self._exit_charge      # fair shares: the slice is spent in modeled cycles
        if cause & CAUSE_INTERRUPT or cause & CAUSE_CODE_MASK not in (EXC_PAGE_FAULT, EXC_PRIVILEGED) or self._due():
            self.bring_devices_current()
        if vm.pvcpu is not None:
            vm.pvcpu.sync_in(vm.vcpu)
        self._quiet_exit = False
        self._contained(vm, self._handling, dispatch or self.dispatch, vm, cause, epc, badaddr)
        if self._quiet_exit and self._trap_and_emulate(vm) and vm.state is RUNNABLE and not self._due():
            self._resume_quietly()
            return True
        self._take_marks(vm)
        self._resume()
        self._run_current()
        return False

    def quiet(self) -> None:
        """The exit being handled is a quiet one (exit)."""
        self._quiet_exit = True

    @staticmethod
    def _trap_and_emulate(vm: VM) -> bool:
        """Whether `vm` runs deprivileged on the machine with nothing of its own
        to enter or share at resume: not in guest mode, not translated, no
        per-vCPU page (exit: a quiet exit's resume)."""
        return vm.bt is None and vm.pvcpu is None and not isinstance(vm.mode, NestedMode)

    def _due(self) -> bool:
        """Whether a device event of the running VM or a waiting one may be due
        by now, or the slice ends (exit: a quiet exit needs neither)."""
        return self.cpu.ticks >= self._quiet_until or self.cpu.ticks >= self._slice_end

    def _take_marks(self, vm: VM) -> None:
        """The VM's figures for each phase mark its emulated store just made
        (the store charged, so the marking exit counts in the phase before)."""
        if vm.pending_marks:
            vm.marks += [(marker, self.vm_stats(vm)) for marker in vm.pending_marks]
            vm.pending_marks.clear()

    def _contained(self, vm: VM, doing: Callable[..., str], action: Callable[..., None], *args) -> None:
        """Run `action(*args)`, the VMM's work for `vm`; whatever it raises
        stops `vm` only.  Running out of machine frames is the guest's limit
        (a crash); any other exception is the VMM's own failure, reported as
        an internal VMM error (what it was doing: `doing(*args)`, worded only
        then) with its traceback in a log file the message names."""
        try:
            action(*args)
        except OutOfFrames as error:
            vm.crash(f"out of machine memory for the VMM's tables: {error}")
        except Exception as error:      # noqa: BLE001 -- the containment boundary of one guest
            what = doing(*args)
            log = log_internal_error(vm.name, what, error)
            vm.fail_internally(f"internal VMM error while {what}: {error!r} (traceback in {log})")

    @staticmethod
    def _handling(vm: VM, cause: int, epc: int, badaddr: int | None) -> str:
        """What the VMM was doing for an exit, as an internal error names it."""
        return f"handling {describe_cause(cause)} at {epc:#010x}"

    def dispatch(self, vm: VM, cause: int, epc: int, badaddr: int | None) -> None:
        """One dispatch on the exit reason (module doc)."""
        if cause & CAUSE_INTERRUPT:
            self._machine_interrupt(cause & CAUSE_CODE_MASK)
        elif vm.stalled > MAX_EXITS_WITHOUT_PROGRESS:
            vm.crash(f"no progress: {vm.stalled} exits in a row without an instruction at pc {epc:#010x}")
        elif cause == EXIT_HYPERCALL:
            hypercalls.dispatch(self, vm, epc)
        elif cause & CAUSE_CODE_MASK == EXC_PRIVILEGED:
            emulate.privileged(self, vm, epc)
        elif cause & CAUSE_CODE_MASK == EXC_PAGE_FAULT:
            self.page_fault(vm, cause, epc, badaddr)
        else:
            self.reflect(vm, cause, epc, badaddr, f"reflect: {EXCEPTION_NAMES.get(cause, cause)}")

    def _account(self) -> int:
        """Charge the current VM the instructions retired, and the machine's TLB
        misses and walk references made, since it resumed; returns the instructions."""
        counters = self.cpu.counters
        ticks, idle = self.cpu.ticks, counters.ticks_idle
        retired = (ticks - idle) - (self._resumed_at[0] - self._resumed_at[1])
        if self.current is not None:
            if self.current.bt is not None:
                retired -= self._translation_overhead(self.current)
            self.current.instructions += retired
            self.current.tlb_misses += counters.tlb_misses - self._walks_at[0]
            self.current.walk_refs += counters.walk_refs - self._walks_at[1]
        self._resumed_at, self._walks_at = (ticks, idle), (counters.tlb_misses, counters.walk_refs)
        return retired

    def _translation_overhead(self, vm: VM) -> int:
        """The instructions binary-translated `vm`'s translated code ran beyond
        the guest's own since the last accounting (bt/runner.py)."""
        vm.bt.settle(self.cpu)
        overhead, vm.accounted_offset = vm.tick_offset - vm.accounted_offset, vm.tick_offset
        return overhead

    def complete(self, vm: VM, next_pc: int) -> None:
        """The VMM finished the guest's instruction by emulation: charge its
        tick and go on at `next_pc`."""
        vm.emulated += 1
        vm.stalled = 0
        self.cpu.ticks += 1
        self._resumed_at = (self._resumed_at[0] + 1, self._resumed_at[1])
        self.cpu.pc = next_pc

    def reflect(self, vm: VM, cause: int, epc: int, badaddr: int | None, reason: str) -> None:
        """Deliver `cause` to the guest as the bare machine would: virtual trap
        entry, continue at the guest's trap vector in virtual kernel mode.  A
        guest with no trap vector, or faulting again at it, is stopped."""
        vm.exits[reason] += 1
        vm.reflections += 1
        if vm.entering_trap and epc == vm.vcpu.cr[CR_TVEC] and not cause & CAUSE_INTERRUPT:
            vm.vcpu.enter_trap(cause, epc, badaddr)       # records it, as the bare machine does
            vm.crash(triple_fault_message(cause, epc, badaddr, is_fetch_fault(cause, epc, badaddr)))
            return
        interrupted = interrupted_status(vm.vcpu, self.cpu.cr[CR_STATUS])
        tvec = vm.vcpu.enter_trap(cause, epc, badaddr)
        if tvec == 0:
            vm.crash(unhandled_trap_message(cause, epc, badaddr))
            return
        if vm.pvcpu is not None:
            vm.pvcpu.deliver(cause, epc, badaddr, interrupted, self.cpu.regs[REG_SP])
            if cause == CAUSE_INTERRUPT | IRQ_TIMER or (cause == CAUSE_INTERRUPT | IRQ_DISK and vm.blk is not None):
                vm.irq.clear_line(cause & CAUSE_CODE_MASK)        # the delivery is the acknowledgement
        vm.entering_trap = True
        self.cpu.pc = tvec
        self.load_mode(vm)

    def page_fault(self, vm: VM, cause: int, epc: int, gva: int) -> None:
        """A machine page fault of the guest, classified by its paging mode."""
        code = (cause >> CAUSE_ERRCODE_SHIFT) & 0xF
        outcome = vm.mode.page_fault(vm.vcpu, gva, bool(code & PF_WRITE), bool(code & PF_FETCH), code)
        self.fault_outcome(vm, outcome, epc, gva)

    def fault_outcome(self, vm: VM, outcome, epc: int, gva: int) -> None:
        """What the guest's access at `gva` from `epc` gets, given its paging
        mode's classification `outcome` (shadow.FaultOutcome).  The commonest
        kinds are tested first: on CPython 3.11 each `FaultKind.X` costs as
        much as a call."""
        kind = outcome.kind
        if kind is FaultKind.TRACED_WRITE:
            vm.exits["page-table write"] += 1
            emulate.traced_write(self, vm, epc, outcome.gpa)
            self.quiet()
        elif kind is FaultKind.HIDDEN:
            vm.exits["hidden page fault"] += 1
            self.quiet()
        elif kind is FaultKind.TRUE:
            self.reflect(vm, EXC_PAGE_FAULT | outcome.error_code << CAUSE_ERRCODE_SHIFT, epc, gva,
                         "true page fault")
        elif kind is FaultKind.BUS_ERROR:
            self.reflect(vm, EXC_BUS_ERROR, epc, gva, "bus error")
        else:
            vm.exits["mmio"] += 1
            self.bring_devices_current()     # exit may have left them as they were
            emulate.mmio(self, vm, epc, outcome.gpa)

    def _machine_interrupt(self, irq: int) -> None:
        """The VMM's own interrupt: acknowledge the machine timer; the rest
        happens in _resume."""
        if irq == IRQ_TIMER:
            self.machine.bus.write(TIMER_BASE + TIMER_ACK, 4, 0)
            self._timer_target = None
        else:
            self.machine.irq.clear_line(irq)

    # --- resuming -----------------------------------------------------------------------

    def _resume(self) -> None:
        """After an exit: devices current again (an emulated instruction was
        charged a tick), pick the VM to run, inject its pending interrupt (and
        pick again if that stopped it), tear ended VMs down, program the
        machine timer; power the machine off when no VM is left."""
        self.bring_devices_current()
        if not self.current.alive or self.current.state == WAITING or self.cpu.ticks >= self._slice_end:
            self._schedule()
        if self.cpu.state is CpuState.RUNNING:
            self._inject(self.current)
            if not self.current.alive:           # the injection stopped it (no trap vector, triple fault)
                self._schedule()
        for vm in self.vms:
            if not vm.alive and not vm.torn_down:
                self._contained(vm, lambda vm: "tearing the VM down", self._tear_down, vm)
                vm.torn_down = True
            elif vm.alive and vm.pvcpu is not None:
                vm.pvcpu.sync_out(vm.vcpu, vm.irq.pending)
        if self.cpu.state is not CpuState.STOPPED:
            self._program_timer()

    def _resume_quietly(self) -> None:
        """_resume after a quiet exit (exit): the same trap-and-emulate VM runs
        on (nothing for _run_current, no marks to take), the devices
        need no time, the virtual interrupt decision stands; only the
        machine timer follows the slice's end, which the exit's charge moved."""
        if self._timer_follows_slice:
            self._program_timer()

    def bring_devices_current(self) -> None:
        """Every live VM's devices up to the machine tick; a waiting VM with a
        line asserted becomes runnable.  (Bringing them current twice at one
        tick changes nothing.)"""
        now = self.cpu.ticks
        for vm in self.vms:
            if vm.alive:
                vm.advance_devices(now - vm.tick_offset)
                if vm.state == WAITING and vm.irq.pending:
                    vm.state = RUNNABLE

    def _tear_down(self, vm: VM) -> None:
        """A VM has ended: its paging mode gives back every table and checks
        its accounting (direct mode: every type and reference count back to
        zero), and its frames return to the free pool.  Its counters are kept
        as they were, so the teardown's own work does not show in its
        figures.  The machine root may still name its tables until the next
        switch, but no instruction of that VM runs again.  If the teardown
        fails (an internal VMM error), the VM's frames stay out of the free
        pool: leaking them is safe, handing out frames a table may still
        name is not."""
        vm.final_counters = dict(vm.mode.counters)
        self.set_pv_cpu(vm, None)
        if vm.blk is not None:
            self.set_block_ring(vm, None)
        if vm.bt is not None:
            vm.bt.teardown()
        vm.mode.teardown()
        self.frames.release(vm.vm_id, self.frames.owned_by(vm.vm_id))

    def set_pv_cpu(self, vm: VM, page: MA | None) -> None:
        """Register `vm`'s per-vCPU page at machine address `page` (held writable
        by the caller), or none, releasing the one registered before."""
        if vm.pvcpu is not None:
            vm.mode.direct.release_writable(vm.pvcpu.page >> PAGE_SHIFT)
        vm.pvcpu = None if page is None else PvCpu(self.machine.memory, page)

    def set_block_ring(self, vm: VM, ring: MA | None) -> None:
        """Register `vm`'s block ring at machine address `ring` (held writable
        by the caller), or none, releasing the one registered before; a
        batch in flight on the old ring is dropped without responses."""
        if vm.blk is not None:
            vm.mode.direct.release_writable(vm.blk.ring >> PAGE_SHIFT)
        vm.blk_counts = vm.blk_counts or BlockCounts()
        vm.set_block_ring(None if ring is None else BlockBackend(
            self.machine.memory, ring, vm.disk.image, vm.irq, self._clock, self._timer_changed,
            vm.mode.kernel_address, vm.blk_counts, vm.mode.guest_written))
        self._timer_target = None

    def end_slice(self) -> None:
        """The current VM gives up the rest of its slice (yield)."""
        self._slice_end = self.cpu.ticks

    def _schedule(self) -> None:
        """Round robin: the next runnable VM after the current one (the current
        one again if it is the only one).  With none runnable the machine
        waits for the next interrupt (a VM that nothing can ever wake is
        stopped, as the bare machine stops); with none alive it powers off."""
        start = self.vms.index(self.current) + 1
        order = self.vms[start:] + self.vms[:start]
        runnable = [vm for vm in order if vm.state == RUNNABLE]
        if runnable:
            if runnable[0] is not self.current and not self._try_switch(runnable[0]):
                self._schedule()
                return
            self._slice_end = self.cpu.ticks + self.slice_ticks
        elif self._wake_or_stop_waiting():
            self._schedule()
        elif any(vm.alive for vm in self.vms):
            self.cpu.state = CpuState.WAITING
        else:
            self._power_off()

    def _wake_or_stop_waiting(self) -> bool:
        """No VM can run.  Stop each waiting VM that no device event and no
        console input can ever wake ("wfi with no interrupt source", exit
        code 125, as on the bare machine); if the others wait only for
        interactive console input, block for a line.  Returns whether a VM
        became runnable."""
        waiting = [vm for vm in self.vms if vm.state == WAITING]
        for vm in waiting:
            if vm.next_device_event() is None and not vm.uart.input_may_arrive():
                where = vm.symbols.describe(self._pc_of(vm)) if vm.symbols else f"{self._pc_of(vm):#010x}"
                vm.crash(f"wfi with no interrupt source at pc {where}")
        waiting = [vm for vm in waiting if vm.state == WAITING]
        if not waiting or any(vm.next_device_event() is not None for vm in waiting):
            return False
        for vm in waiting:
            if vm.uart.wait_for_input():
                vm.state = RUNNABLE
        return any(vm.state == RUNNABLE for vm in waiting)

    def _pc_of(self, vm: VM) -> int:
        """The guest pc of `vm`: the CPU's while it is switched in."""
        return self.cpu.pc if vm is self.current else vm.pc

    def _try_switch(self, vm: VM) -> bool:
        """Switch to `vm`; if its root cannot be built, stop it and say so."""
        try:
            self._switch_to(vm)
        except OutOfFrames as error:
            vm.crash(f"out of machine memory for the VMM's tables: {error}")
            return False
        return True

    def _switch_to(self, vm: VM) -> None:
        """Save the current VM's machine context and load `vm`'s."""
        cpu, old = self.cpu, self.current
        if old is not None:
            old.regs, old.pc = list(cpu.regs), cpu.pc
            old.user_flags = cpu.cr[CR_STATUS] & STATUS_UF
        self.current = vm
        cpu.regs, cpu.pc = vm.regs, vm.pc
        self.load_mode(vm, user_flags=vm.user_flags)
        self._slice_end = cpu.ticks + self.slice_ticks

    def load_mode(self, vm: VM, user_flags: int | None = None) -> None:
        """Put the machine in the state that follows from vm's virtual state:
        user mode with interrupts on (the VMM's), the guest's user flags, and
        the root for its base and virtual mode (a ptb write: flushes the TLB).
        A guest-mode VM's state is loaded by its entry (_run_current): the
        host only keeps its interrupts on, to take the machine timer while
        no VM runs."""
        if isinstance(vm.mode, NestedMode):
            self.cpu.write_cr(CR_STATUS, STATUS_IE)
            return
        flags = self.cpu.cr[CR_STATUS] & STATUS_UF if user_flags is None else user_flags
        if vm.bt is not None:       # its user code run directly reads them with rdsr, as on bare
            flags |= vm.vcpu.cr[CR_STATUS] & (STATUS_PKM | STATUS_PIE)
        self.cpu.write_cr(CR_STATUS, STATUS_IE | flags)
        self.cpu.write_cr(CR_PTB, vm.mode.machine_ptb(vm.vcpu))

    def _inject(self, vm: VM) -> None:
        """Reflect the pending virtual interrupt the bare machine would take
        (asm.arch.interrupt_to_take) if the guest enabled them; a guest-mode
        VM's are delivered by the hardware (guestmode.py)."""
        if isinstance(vm.mode, NestedMode):
            return
        irq = interrupt_to_take(vm.irq.pending, vm.vcpu.interrupts_enabled)
        if irq is not None:
            self.reflect(vm, CAUSE_INTERRUPT | irq, self.cpu.pc, None, "interrupt injected")

    def _run_current(self) -> None:
        """The seam to hardware-assisted and binary-translated VMs: if the
        current VM runs in the machine's guest mode and may run now, enter
        it (guestmode.py); if it is binary-translated and in virtual kernel
        mode, enter its translated code (bt/runner.py).  The CPU goes on
        there.  A trap-and-emulate VM needs nothing: the machine registers
        are already its own."""
        vm = self.current
        if (isinstance(vm.mode, NestedMode) and vm.state == RUNNABLE and not self.cpu.in_guest
                and self.cpu.state in (CpuState.RUNNING, CpuState.STOPPED)):
            self._contained(vm, lambda vm, monitor: "entering guest mode", vm.mode.guest.enter, vm, self)
        elif (vm.bt is not None and vm.state == RUNNABLE and vm.bt.translates(vm.vcpu) and not vm.bt.running
              and self.cpu.state in (CpuState.RUNNING, CpuState.STOPPED)):
            self._contained(vm, lambda vm, monitor: "entering translated code", vm.bt.enter, vm, self)
        else:
            return
        if not vm.alive:                       # the entry failed (an internal error): the next VM
            self._resume()
            self._run_current()

    def _program_timer(self) -> None:
        """Arm the machine timer for the earliest device event of the running
        VM or of a VM waiting for one, or the end of the slice when another VM
        is ready to run.  A VM that is ready but not running catches up when it
        is switched in, so its timer cannot cost the running VM exits."""
        now, target, runnable = self.cpu.ticks, None, 0
        for vm in self.vms:
            runnable += vm.state == RUNNABLE
            if vm is self.current and vm.alive or vm.state == WAITING:
                event = vm.next_device_event()
                target = earliest(target, None if event is None else event + vm.tick_offset)
        self._quiet_until = target if target is not None else self.cpu.ticks + (1 << 62)
        self._timer_follows_slice = runnable > 1
        if runnable > 1:
            target = earliest(target, self._slice_end)
        if target is not None:
            target = max(target, now + 1)
        if target == self._timer_target:
            return
        self._timer_target = target
        bus = self.machine.bus
        bus.write(TIMER_BASE + TIMER_CTRL, 4, 0)
        if target is not None:
            bus.write(TIMER_BASE + TIMER_INTERVAL, 4, target - now)
            bus.write(TIMER_BASE + TIMER_CTRL, 4, CTRL_ENABLE)

    def _power_off(self) -> None:
        """Every VM has ended: power the machine off with the combined exit
        code (the first nonzero one, in VM order)."""
        codes = [vm.exit_code for vm in self.vms if vm.exit_code]
        self.machine.bus.write(POWER_BASE + POWER_EXIT, 4, codes[0] if codes else 0)

    # --- figures --------------------------------------------------------------------------

    def _vm_result(self, vm: VM) -> VmResult:
        exit_code = vm.exit_code if vm.exit_code is not None else 0
        figures = self.vm_stats(vm)
        return VmResult(vm.name, exit_code, vm.state, vm.message, replace(figures, phases=split(vm.marks, figures)))

    def vm_stats(self, vm: VM) -> VmStats:
        """One VM's figures: exits by reason, its paging mode's counters, guest
        instructions, the machine's TLB misses and walk references while it
        ran, and modelled cycles (instructions, walk references, VM exits and
        hypercalls priced by the cost model; an exit is priced as a VM exit,
        not also as a trap; under nested paging also the nested walk
        references and the traps the guest took in guest mode; under binary
        translation also the translated code's extra instructions, its
        callouts and the instructions translated)."""
        exits = dict(sorted(vm.exits.items()))
        vm_exits = sum(exits.values())
        hypercall_count = sum(count for reason, count in exits.items() if reason.startswith("hypercall"))
        guest_instructions = vm.instructions + vm.emulated
        counters = dict(vm.final_counters if vm.torn_down else vm.mode.counters)
        cycles = modeled_cycles({"instructions": guest_instructions + counters.get("bt_overhead_instructions", 0),
                                 "walk_refs": vm.walk_refs,
                                 "nested_walk_refs": counters.get("nested_walk_refs", 0),
                                 "exceptions": {"in guest mode": counters.get("guest_traps", 0)},
                                 "vm_exits": vm_exits - hypercall_count, "hypercalls": hypercall_count,
                                 "bt_callouts": counters.get("bt_callouts", 0),
                                 "bt_instructions_translated": counters.get("bt_instructions_translated", 0)},
                                {}, self.cost_model)
        return VmStats(paging=vm.config.paging, state=str(vm.state), exit_code=vm.exit_code, message=vm.message,
                       guest_instructions=guest_instructions, emulated_instructions=vm.emulated,
                       vm_exits=vm_exits, hypercalls=hypercall_count, tlb_misses=vm.tlb_misses,
                       walk_refs=vm.walk_refs, exits=exits,
                       counters=counters, modeled_cycles=cycles, io=vm.io_figures())

def log_internal_error(vm_name: str, doing: str, error: BaseException) -> str:
    """Append the traceback of an internal VMM error to this process's log
    file in the temporary directory; returns its path (or a note if it
    cannot be written)."""
    path = os.path.join(tempfile.gettempdir(), f"kite-vmm-error-{os.getpid()}.log")
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} VM {vm_name}: internal VMM error while {doing}\n")
            log.write("".join(traceback.format_exception(error)))
    except OSError as failure:
        return f"no log: {failure.strerror}"
    return path

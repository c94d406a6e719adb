"""Booting an image on one of Kite's machines, in-process: the one set of run
functions behind both `kite run` (vmm/cli.py) and `kite compare` (kite/runs.py).

    run_bare(boot, console, options)      the bare machine: the image owns the hardware
    run_sim(boot, console, options)       machine simulation: every instruction interpreted
    run_vmm(configs, console, options)    the VMM, one or several VMs

Each returns a Finished: how the machine's run ended, how each VM ended, the
figures as one RunStats, and the process exit code `kite run` gives.  Nothing
here prints; bad images, disks and files raise KiteError.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable

from asm.isa import MAX_RAM, PAGE_SIZE
from vmm.machine.costs import DEFAULT_COST_MODEL, CostModel
from vmm.machine.devices.disk import DiskImage
from vmm.machine.devices.uart import ConsoleInput
from vmm.machine.errors import KiteError
from vmm.machine.outcome import EndReason, RunResult
from vmm.machine.stats import MachineStats
from vmm.monitor.vm import VmConfig, VmStats

if TYPE_CHECKING:
    from vmm.tracing import TraceConfig

SHADOW_POOL = 4 << 20    # machine RAM kept free for the VMM's shadow tables
# where the guest OS links its user programs: guestos/include/layout.inc USER_BASE
# (tests/guestos/test_kernel_constants.py holds the two equal)
GUEST_OS_USER_BASE = 0x00400000
# The debugger (vmm/debug), while attached: handed the Machine, Simulator or
# Monitor each run function builds, right before it runs.
ATTACH: ContextVar[Callable[[object], None] | None] = ContextVar("kite_attach", default=None)


@dataclass(frozen=True)
class Boot:
    """What to boot on the bare machine or the simulator."""
    image: str
    modules: tuple[str, ...] = ()
    mem: int = 16 << 20
    cmdline: str = ""


@dataclass(frozen=True)
class Console:
    """The console's input and the stream its output goes to."""
    input: ConsoleInput
    output: BinaryIO


@dataclass(frozen=True)
class Options:
    """How to run: the instruction limit, the cost model, the trace
    (vmm.tracing.TraceConfig: its sink, categories, filter and format), the
    disk of the bare machine or the simulator (a VM's is in its VmConfig),
    and where to stop and write a checkpoint: (instructions, file), bare
    machine only (vmm/machine/snapshot.py)."""
    max_instructions: int | None = None
    cost_model: CostModel = DEFAULT_COST_MODEL
    trace: "TraceConfig | None" = None
    disk: DiskImage | None = None
    checkpoint: tuple[int, str] | None = None


@dataclass(frozen=True)
class RunStats:
    """A run's figures: the machine's, and each VM's under the VMM (None for
    the bare machine and the simulator).  `as_dict()` is `--stats-json`."""
    machine: MachineStats
    vms: dict[str, VmStats] | None = None

    def as_dict(self) -> dict:
        figures = self.machine.as_dict()
        if self.vms is not None:
            figures["vms"] = {name: stats.as_dict() for name, stats in self.vms.items()}
        return figures

    def only_vm(self) -> VmStats | None:
        """The VM's figures of a one-VM run, None without VMs."""
        if self.vms is None:
            return None
        if len(self.vms) != 1:
            raise ValueError(f"expected one VM, these stats have {len(self.vms)}")
        return next(iter(self.vms.values()))


@dataclass
class Finished:
    """A run's end.  `exit_code` is the process exit code: the guest's (of
    several VMs the first nonzero one in VM order), or the machine's at the
    instruction limit or on a fault.  `register_dump()` describes the CPU
    after a fault on the bare machine (None elsewhere)."""
    result: RunResult
    stats: RunStats
    exit_code: int
    vms: list = field(default_factory=list)          # [monitor.VmResult]
    register_dump: Callable[[], str] | None = None
    hint: str = ""                                   # a line of advice for a run that went wrong, or ""
    checkpointed: bool = False                       # the run stopped to write Options.checkpoint


def refuse_direct_image(image: str) -> None:
    """A paravirtual image needs the VMM: KiteError on the bare or simulated machine."""
    from vmm.monitor.boot import image_paging_mode
    from vmm.monitor.hypercall_abi import KITE_PAGING_DIRECT, NOTE_SECTION
    if image_paging_mode(image) == KITE_PAGING_DIRECT:
        raise KiteError(f"{image}: built for direct paging (its {NOTE_SECTION} note says so): "
                        f"run it with --paging direct")


def _attach(engine) -> None:
    """Hand `engine` to the debugger attached (ATTACH), if any."""
    hook = ATTACH.get()
    if hook is not None:
        hook(engine)


def user_program_hint(image: str, entry: int, reason: EndReason) -> str:
    """Advice for an image that faulted on the bare machine with its entry at
    the guest OS's USER_BASE: most likely a user program booted as a kernel."""
    if reason is not EndReason.FAULT or entry != GUEST_OS_USER_BASE:
        return ""
    return (f"hint: {image} starts at {GUEST_OS_USER_BASE:#010x}, where the guest OS links its user programs; "
            f"a user program runs under the guest kernel: kite run --bare guestos/build/kernel-native.elf "
            f"--module {image}")


def run_bare(boot: Boot, console: Console, options: Options) -> Finished:
    """Boot on the bare machine and run to the end."""
    from vmm.machine.machine import Machine
    refuse_direct_image(boot.image)
    machine = Machine(boot.mem, disk=options.disk, console_in=console.input, console_out=console.output,
                      cmdline=boot.cmdline, cost_model=options.cost_model)
    machine.load(boot.image, list(boot.modules))
    if options.trace is not None:
        from vmm.tracing import attach_machine
        attach_machine(machine, boot.image, boot.modules, options.trace)
    _attach(machine)
    if options.checkpoint is not None:
        return _run_to_checkpoint(machine, options, boot.image)
    result = machine.run(options.max_instructions)
    hint = user_program_hint(boot.image, machine.image.entry_paddr, result.reason)
    return Finished(result, RunStats(result.stats), result.exit_code, register_dump=machine.register_dump,
                    hint=hint)


def _run_to_checkpoint(machine, options: Options, image: str) -> Finished:
    """Run to the checkpoint's instruction and write it (Finished with
    checkpointed); a guest that ends first (or an instruction limit before
    it) ends as it would have.  Raises KiteError (CheckpointError)."""
    from vmm.machine import snapshot
    at, path = options.checkpoint
    if machine.disk is not None:
        raise snapshot.CheckpointError("checkpoints of a machine with a disk are not supported yet")
    limit = at if options.max_instructions is None else min(at, options.max_instructions)
    result = machine.run(limit)
    if result.reason is EndReason.INSTRUCTION_LIMIT and limit == at:
        snapshot.write(path, *snapshot.capture(machine))
        return Finished(result, RunStats(result.stats), 0, checkpointed=True)
    hint = user_program_hint(image, machine.image.entry_paddr, result.reason)
    return Finished(result, RunStats(result.stats), result.exit_code, register_dump=machine.register_dump,
                    hint=hint)


def resume_bare(path: str, console_out: BinaryIO, options: Options) -> Finished:
    """Restore the bare-machine checkpoint at `path` on a fresh machine and run
    it to the end.  Raises KiteError (CheckpointError: nothing runs)."""
    from vmm.machine import snapshot
    from vmm.monitor import checkpoint
    engine, state, ram = snapshot.read(path, {"bare": snapshot.check_state, "vmm": checkpoint.check_state})
    if engine == "vmm":
        monitor = checkpoint.restore(state, ram, console_out, options.cost_model)
        _attach(monitor)
        return _vmm_finished(*monitor.run_on(options.max_instructions))
    machine = snapshot.restore(state, ram, console_out, options.cost_model)
    _attach(machine)
    result = machine.run(options.max_instructions)
    return Finished(result, RunStats(result.stats), result.exit_code, register_dump=machine.register_dump)


def run_sim(boot: Boot, console: Console, options: Options) -> Finished:
    """Boot under machine simulation and run to the end."""
    from vmm.monitor.simulate import Simulator
    refuse_direct_image(boot.image)
    simulator = Simulator(boot.mem, console_out=console.output, console_in=console.input,
                          cost_model=options.cost_model, disk=options.disk)
    simulator.load(boot.image, list(boot.modules), boot.cmdline)
    if options.trace is not None:
        from vmm.tracing import attach_simulator
        attach_simulator(simulator, boot.image, boot.modules, options.trace)
    _attach(simulator)
    result = simulator.run(options.max_instructions)
    return Finished(result, RunStats(result.stats), result.exit_code)


def machine_mem_for(configs: list[VmConfig]) -> int:
    """Machine RAM for these VMs: the VMM's frames, every guest's RAM and a
    pool for shadow tables, capped below MMIO."""
    from vmm.monitor.monitor import VMM_FRAMES
    total = VMM_FRAMES * PAGE_SIZE + sum(config.mem for config in configs) + SHADOW_POOL
    return min(total, MAX_RAM)


def run_vmm(configs: list[VmConfig], console: Console, options: Options) -> Finished:
    """Create the VMs (their output prefixed with their names when there
    are several) and run them under the VMM to the end; the trace names
    code with the running VM's symbols."""
    from vmm.monitor.monitor import Monitor
    monitor = Monitor(machine_mem_for(configs), console_out=console.output, console_in=console.input,
                      cost_model=options.cost_model)
    try:
        for config in configs:
            monitor.create_vm(config, prefix_output=len(configs) > 1)
    except KiteError:
        monitor.release_disks(write_back=False)       # the disk locks of the VMs made so far
        raise
    if options.trace is not None:
        from vmm.tracing import attach_monitor
        try:
            attach_monitor(monitor, options.trace)
        except KiteError:
            monitor.release_disks(write_back=False)
            raise
    _attach(monitor)
    if options.checkpoint is None:
        return _vmm_finished(*monitor.run(options.max_instructions))
    from vmm.monitor import checkpoint
    at, path = options.checkpoint
    checkpoint.capture_ok(monitor)
    limit = at if options.max_instructions is None else min(at, options.max_instructions)
    result, vm_results = monitor.run(limit)
    if result.reason is EndReason.INSTRUCTION_LIMIT and limit == at:
        from vmm.machine import snapshot
        snapshot.write(path, *checkpoint.capture(monitor), engine=checkpoint.ENGINE)
        return Finished(result, RunStats(result.stats, {vm.name: vm.stats for vm in vm_results}), 0, vm_results,
                        checkpointed=True)
    return _vmm_finished(result, vm_results)


def _vmm_finished(result, vm_results) -> Finished:
    """The Finished of a VMM run: the machine's exit code at the instruction
    limit, else the first nonzero VM's (0 if none)."""
    stats = RunStats(result.stats, {vm.name: vm.stats for vm in vm_results})
    if result.reason is EndReason.INSTRUCTION_LIMIT:
        exit_code = result.exit_code
    else:
        exit_code = next((vm.exit_code for vm in vm_results if vm.exit_code), 0)
    return Finished(result, stats, exit_code, vm_results)

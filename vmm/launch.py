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

import contextlib
import os
import socket
import subprocess
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
    from vmm.machine.replay import Recorder
    from vmm.monitor.migration import Plan
    from vmm.monitor.vm import VM
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
    """The console's input and the stream its output goes to; `recorder`
    (--record, vmm/machine/replay.py) logs every input arrival with its tick
    once the run starts (`record_input`)."""
    input: ConsoleInput
    output: BinaryIO
    recorder: "Recorder | None" = None

    def record_input(self, clock: Callable[[], int]) -> None:
        """Start the recorder, if any, on the engine's tick count `clock`
        (the machine's, which every VM's timer counts too: docs/replay.md)."""
        if self.recorder is not None:
            self.recorder.start(self.input, clock)


@dataclass(frozen=True)
class Options:
    """How to run: the instruction limit, the cost model, the trace
    (vmm.tracing.TraceConfig: its sink, categories, filter and format), the
    disk of the bare machine or the simulator (a VM's is in its VmConfig),
    where to stop and write a checkpoint: (instructions, file)
    (vmm/machine/snapshot.py), and a live migration (run_vmm only).  In
    `migrate`, `destination` is the command line of the destination process
    (`kite migrate-receive` with the run's report options): "--fd N" is
    added, N the process's end of the migration socket."""
    max_instructions: int | None = None
    cost_model: CostModel = DEFAULT_COST_MODEL
    trace: "TraceConfig | None" = None
    disk: DiskImage | None = None
    checkpoint: tuple[int, str] | None = None
    migrate: "Migrate | None" = None
    move_vm: str | None = None          # the VM a checkpoint or migration takes, of several (None: the only one)


@dataclass(frozen=True)
class Migrate:
    """A live migration: its plan (vmm/monitor/migration.py) and the destination's command line."""
    plan: "Plan"
    destination: tuple[str, ...]


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
    after a fault on the bare machine (None elsewhere).  A run whose VM
    migrated away has `migrated` set, no `result` (the run ends in the
    destination process, which reports it) and the destination's exit code."""
    result: RunResult | None
    stats: RunStats
    exit_code: int
    vms: list = field(default_factory=list)          # [monitor.VmResult]
    register_dump: Callable[[], str] | None = None
    hint: str = ""                                   # a line of advice for a run that went wrong, or ""
    checkpointed: bool = False                       # the run stopped to write Options.checkpoint
    migrated: bool = False                           # the VM went on in the destination (Options.migrate)


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
    """Boot on the bare machine and run to the end (or to the checkpoint)."""
    from vmm.machine import snapshot
    from vmm.machine.machine import Machine
    refuse_direct_image(boot.image)
    machine = Machine(boot.mem, disk=options.disk, console_in=console.input, console_out=console.output,
                      cmdline=boot.cmdline, cost_model=options.cost_model)
    machine.load(boot.image, list(boot.modules))
    if options.trace is not None:
        from vmm.tracing import attach_machine
        attach_machine(machine, boot.image, boot.modules, options.trace)
    _attach(machine)
    console.record_input(lambda: machine.cpu.ticks)

    def finished(result: RunResult) -> Finished:
        hint = user_program_hint(boot.image, machine.image.entry_paddr, result.reason)
        return Finished(result, RunStats(result.stats), result.exit_code, register_dump=machine.register_dump,
                        hint=hint)
    if options.checkpoint is not None:
        return _run_to_checkpoint(machine, options, snapshot.capture, "bare", finished)
    return finished(machine.run(options.max_instructions))


def _run_to_checkpoint(engine, options: Options, capture: Callable, name: str,
                       finished: Callable[[RunResult], Finished]) -> Finished:
    """Run `engine` (a Machine or a Simulator) to the checkpoint's
    instruction and write capture(engine) as a checkpoint of engine `name`
    (Finished with checkpointed); a guest that ends first (or an
    instruction limit before it) ends as it would have: finished(result).
    The run's end writes the disk back first.  Raises KiteError
    (CheckpointError)."""
    from vmm.machine import snapshot
    at, path = options.checkpoint
    limit = at if options.max_instructions is None else min(at, options.max_instructions)
    result = engine.run(limit)
    if result.reason is EndReason.INSTRUCTION_LIMIT and limit == at:
        snapshot.write(path, *capture(engine), engine=name)
        return Finished(result, RunStats(result.stats), 0, checkpointed=True)
    return finished(result)


def resume_bare(path: str, console_out: BinaryIO, options: Options, disk: str | None = None) -> Finished:
    """Restore the checkpoint at `path` on a fresh machine of its engine (the
    bare machine, the simulator or the VMM) and run it to the end (or to
    options.checkpoint, a later one), on the disk image `disk` if it was
    taken with a disk.  Raises KiteError (CheckpointError: nothing runs)."""
    from vmm.machine import snapshot
    from vmm.monitor import checkpoint, sim_checkpoint
    engine, state, ram = snapshot.read(path, {"bare": snapshot.check_state, "sim": sim_checkpoint.check_state,
                                              "vmm": checkpoint.check_state})
    _choose_disk(path, state, disk)
    cpu = state["machine"]["cpu"] if engine == "vmm" else state["cpu"]
    if options.checkpoint is not None and options.checkpoint[0] <= cpu["counters"]["instructions"]:
        raise KiteError(f"{path}: the checkpoint is at instruction {cpu['counters']['instructions']}: "
                        f"--checkpoint-at {options.checkpoint[0]} is not later")
    if engine == "vmm":
        monitor = checkpoint.restore(path, state, ram, console_out, options.cost_model)
        _attach(monitor)
        if options.checkpoint is not None:
            return _vmm_to_checkpoint(monitor, options, monitor.run_on)
        return _vmm_finished(*monitor.run_on(options.max_instructions))
    restore, capture = ((sim_checkpoint.restore, sim_checkpoint.capture) if engine == "sim"
                        else (snapshot.restore, snapshot.capture))
    restored = restore(path, state, ram, console_out, options.cost_model)
    _attach(restored)

    def finished(result: RunResult) -> Finished:
        dump = restored.register_dump if engine == "bare" else None
        return Finished(result, RunStats(result.stats), result.exit_code, register_dump=dump)
    if options.checkpoint is not None:
        return _run_to_checkpoint(restored, options, capture, engine, finished)
    return finished(restored.run(options.max_instructions))


def _choose_disk(path: str, state: dict, disk: str | None) -> None:
    """The checkpoint's disk is the image the user names (`disk`), never a
    path the checkpoint chooses: a checkpoint is untrusted, and the resumed
    run writes its disk.  The saved path only helps the message; the image's
    SHA-256 is checked when it is opened (snapshot.open_disk).  KiteError for
    a disk missing or given in vain."""
    saved = state.get("disk")
    if saved is None and disk is not None:
        raise KiteError(f"{path}: the checkpoint was taken without a disk: --disk {disk} is not its")
    if saved is not None and disk is None:
        raise KiteError(f"{path}: the checkpoint was taken with a disk ({saved['path']}): name its image "
                        f"with --disk FILE")
    if saved is not None:
        saved["path"] = os.path.abspath(disk)


def run_sim(boot: Boot, console: Console, options: Options) -> Finished:
    """Boot under machine simulation and run to the end (or to the checkpoint)."""
    from vmm.monitor import sim_checkpoint
    from vmm.monitor.simulate import Simulator
    refuse_direct_image(boot.image)
    simulator = Simulator(boot.mem, console_out=console.output, console_in=console.input,
                          cost_model=options.cost_model, disk=options.disk)
    simulator.load(boot.image, list(boot.modules), boot.cmdline)
    if options.trace is not None:
        from vmm.tracing import attach_simulator
        attach_simulator(simulator, boot.image, boot.modules, options.trace)
    _attach(simulator)
    console.record_input(lambda: simulator.ticks)

    def finished(result: RunResult) -> Finished:
        return Finished(result, RunStats(result.stats), result.exit_code)
    if options.checkpoint is not None:
        return _run_to_checkpoint(simulator, options, sim_checkpoint.capture, sim_checkpoint.ENGINE, finished)
    return finished(simulator.run(options.max_instructions))


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
    console.record_input(lambda: monitor.cpu.ticks)
    if options.migrate is not None:
        return _run_migrating(monitor, options)
    if options.checkpoint is None:
        return _vmm_finished(*monitor.run(options.max_instructions))
    from vmm.monitor import checkpoint
    vm = _vm_to_take(monitor, options, checkpoint.capture_ok)
    if len(monitor.vms) > 1:
        return _checkpoint_one_of_several(monitor, vm, options)
    return _vmm_to_checkpoint(monitor, options, monitor.run)


def _vmm_to_checkpoint(monitor, options: Options, run: Callable) -> Finished:
    """Run the only VM by `run` (monitor.run from its boot, run_on after a
    restore) to the checkpoint's instruction and write it (Finished with
    checkpointed); a guest that ends first (or an instruction limit before
    it) ends as it would have.  Raises KiteError (CheckpointError)."""
    from vmm.machine import snapshot
    from vmm.monitor import checkpoint
    at, path = options.checkpoint
    limit = at if options.max_instructions is None else min(at, options.max_instructions)
    result, vm_results = run(limit)
    if result.reason is EndReason.INSTRUCTION_LIMIT and limit == at:
        snapshot.write(path, *checkpoint.capture(monitor), engine=checkpoint.ENGINE)
        return Finished(result, RunStats(result.stats, {vm.name: vm.stats for vm in vm_results}), 0, vm_results,
                        checkpointed=True)
    return _vmm_finished(result, vm_results)


def _vm_to_take(monitor, options: Options, check: Callable) -> "VM":
    """The VM a checkpoint or migration takes (options.move_vm, or the only
    one), check(vm) passed.  Raises KiteError, the disks released first."""
    from vmm.monitor import checkpoint
    try:
        vm = checkpoint.vm_named(monitor, options.move_vm)
        check(vm)
    except KiteError:
        monitor.release_disks(write_back=False)
        raise
    return vm


def _checkpoint_one_of_several(monitor, vm, options: Options) -> Finished:
    """Run the VMs to the checkpoint's instruction, write `vm` (its disk
    written back first, then released) and let it go; the others run on to
    their ends (Finished with checkpointed, the others' exit code).  If `vm`
    ended first, nothing is written and every VM runs to its end."""
    from vmm.machine import snapshot
    from vmm.monitor import checkpoint
    (at, path), max_instructions = options.checkpoint, options.max_instructions
    limit = at if max_instructions is None else min(at, max_instructions)
    monitor.start()
    if monitor.machine.advance(limit) is not EndReason.INSTRUCTION_LIMIT or limit != at or not vm.alive:
        return _vmm_finished(*monitor.run_on(max_instructions))
    monitor.switch_in(vm)
    if vm.disk is not None:
        vm.disk.image.write_back()
    snapshot.write(path, *checkpoint.capture(monitor, vm), engine=checkpoint.ENGINE)
    if vm.disk is not None:
        vm.disk.image.close()
    monitor.let_go(vm, f"checkpointed at instruction {at} to {path}")
    finished = _vmm_finished(*monitor.run_on(max_instructions))
    finished.checkpointed = True
    return finished


def _vmm_finished(result, vm_results) -> Finished:
    """The Finished of a VMM run: the machine's exit code at the instruction
    limit, else the first nonzero VM's (0 if none)."""
    stats = RunStats(result.stats, {vm.name: vm.stats for vm in vm_results})
    if result.reason is EndReason.INSTRUCTION_LIMIT:
        exit_code = result.exit_code
    else:
        exit_code = next((vm.exit_code for vm in vm_results if vm.exit_code), 0)
    return Finished(result, stats, exit_code, vm_results)


def _run_migrating(monitor, options: Options) -> Finished:
    """Run the VM to the migration's instruction, pre-copy it to a
    destination process (vmm/monitor/migration.py) and let it go there
    (Finished with migrated and the destination's exit code).  A guest that
    ends first ends here as it would have, and so does the VM if the
    destination fails; the hint says which.  Raises KiteError
    (MigrationError) for a VM this version cannot migrate."""
    from vmm.monitor import migration
    plan, max_instructions = options.migrate.plan, options.max_instructions
    vm = _vm_to_take(monitor, options, migration.migratable)
    limit = plan.at if max_instructions is None else min(plan.at, max_instructions)
    monitor.start()
    if monitor.machine.advance(limit) is not EndReason.INSTRUCTION_LIMIT or limit != plan.at or not vm.alive:
        return _ended_here(monitor, max_instructions, f"kite: the guest ended before instruction {plan.at}: "
                                                      f"no migration")
    monitor.settle()
    monitor.console_out.flush()
    source, destination = socket.socketpair()
    with source:
        with destination:
            child = _start_destination(options.migrate.destination, destination)
        try:
            figures = migration.migrate(monitor, vm, plan, migration.Channel(source, "the destination"),
                                        max_instructions)
        except migration.MigrationError as error:
            monitor.machine.memory.unwatch()
            _stop(child)
            return _ended_here(monitor, max_instructions, f"kite: the migration failed ({error}); the VM went "
                                                          f"on at the source")
    if figures is None:
        child.wait()
        return _ended_here(monitor, max_instructions, "kite: the guest ended during the migration's pre-copy, "
                                                      "at the source")
    if len(monitor.vms) == 1:
        return Finished(None, RunStats(monitor.machine.stats()), child.wait(), migrated=True)
    monitor.let_go(vm, f"migrated live at instruction {plan.at}: it goes on in the destination")
    finished = _vmm_finished(*monitor.run_on(max_instructions))
    finished.exit_code = finished.exit_code or child.wait()
    return finished


def _ended_here(monitor, max_instructions: int | None, hint: str) -> Finished:
    """The VM runs to its end at the source; the Finished says why (`hint`)."""
    finished = _vmm_finished(*monitor.run_on(max_instructions))
    finished.hint = hint
    return finished


def _start_destination(command: tuple[str, ...], end: socket.socket) -> subprocess.Popen:
    """The destination process, handed socket `end` (command + "--fd N").  KiteError if it cannot start."""
    try:
        return subprocess.Popen([*command, "--fd", str(end.fileno())], pass_fds=(end.fileno(),))
    except OSError as error:
        raise KiteError(f"cannot start the migration's destination ({command[0]}): {error.strerror}") from None


def receive_migration(fd: int, console_out: BinaryIO, options: Options) -> tuple[Finished, dict] | None:
    """The destination of a live migration: receive the VM on the socket
    `fd` (vmm/monitor/migration.py), restore it on a fresh monitor, answer
    the source and run it to the end.  (Finished, the migration's figures),
    or None if the source aborted.  Raises KiteError for a stream it
    refuses (the source is told why first, and keeps the VM)."""
    from vmm.monitor import checkpoint, migration
    with socket.socket(fileno=fd) as sock:
        channel = migration.Channel(sock, "the migration stream")
        try:
            received = migration.receive(channel)
            if received is None:
                return None
            state, ram, figures = received
            monitor = checkpoint.restore(channel.name, state, ram, console_out, options.cost_model)
        except KiteError as error:
            with contextlib.suppress(KiteError):
                channel.send({"kind": "refused", "error": str(error)})
            raise
        channel.send({"kind": "ready"})
    _attach(monitor)
    return _vmm_finished(*monitor.run_on(options.max_instructions)), figures


def _stop(child: subprocess.Popen, grace: float = 10.0) -> None:
    """Let a failed migration's destination process finish saying why, then end it."""
    try:
        child.wait(grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()

"""Running one workload under one configuration, in-process, and collecting its figures.

    guestos/workloads.toml --read_workloads--> [Workload]
    Workload + configuration + Kernels --plan--> RunSpec --run--> RunOutcome --figures--> record

The configurations (CONFIGS), each one runner in RUNNERS:

    bare    kernel-native on the bare machine            vmm.machine.machine.Machine
    shadow  kernel-native under the VMM, shadow paging   vmm.monitor.monitor.Monitor
            (shadow-basic: none of its techniques; bt: its kernel code binary-translated, --cpu bt)
    direct  kernel-pv under the VMM, direct paging       vmm.monitor.monitor.Monitor
    nested  kernel-native under the VMM in the machine's guest mode, nested paging
            (page-walk cache on; nested-nopwc: off)      vmm.monitor.monitor.Monitor
            bt, nested and nested-nopwc run only when --configs names them (ALL_CONFIGS)
    sim     kernel-native under machine simulation       vmm.monitor.simulate.Simulator

A workload is a list of boot modules (the first is init) run under the guest
kernel of the configuration, or an `image` of its own run directly (bare,
shadow, nested and sim only: direct needs the paravirtual kernel).  Console output is
captured; console input is the workload's `input`, then end of input.

Every run goes through vmm/launch.py, as `kite run` does.  A run gives a
record per phase (boot, workload, total: vmm/machine/phases.py).  Every
figure in a record is copied from that phase of the run's launch.RunStats,
the figures `kite run --stats-json` writes: the machine's for bare and sim,
the VM's for shadow, direct and nested (TLB misses and walk references
included: the machine's while the VM ran), and the page-fault figures from
the VM's exits by reason (FAULT_EXITS); walk references per TLB miss are
computed for every configuration.  A figure the run's stats do not have is None.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from kite.build import read_tables
from vmm.machine.costs import CostModel
from vmm.machine.errors import KiteError

GUESTOS = Path(__file__).resolve().parent.parent / "guestos"
WORKLOADS = GUESTOS / "workloads.toml"
KERNEL_NATIVE = GUESTOS / "build" / "kernel-native.elf"
KERNEL_PV = GUESTOS / "build" / "kernel-pv.elf"

CONFIGS = ("bare", "shadow", "shadow-basic", "direct", "sim")            # kite compare's default set
ALL_CONFIGS = ("bare", "shadow", "shadow-basic", "bt", "direct", "nested", "nested-nopwc", "sim")   # --configs may name
PV_CONFIGS = ("direct",)                 # the configurations that boot kernel-pv
# the VMM configurations: (paging mode, its options: shadow paging's techniques as for --shadow-opt, nested
# paging's page-walk cache as for --nested-opt; how the guest kernel's code runs, as for --cpu)
VMM_CONFIGS = {"shadow": ("shadow", "all", "trap"), "shadow-basic": ("shadow", "none", "trap"),
               "bt": ("shadow", "all", "bt"), "direct": ("direct", "all", "trap"),
               "nested": ("nested", "pwc", "trap"), "nested-nopwc": ("nested", "nopwc", "trap")}
GUEST_MEM = 16 << 20                     # the guest's RAM, as `kite run`'s default --mem
DEFAULT_MAX_INSTRUCTIONS = 50_000_000    # a runaway guest stops here instead of hanging the compare
VM_NAME = "vm1"
WORKLOAD_KEYS = {"image", "modules", "input", "expected", "exit_code", "max_instructions", "category", "disk",
                 "disk_sectors"}
MAX_DISK_SECTORS = 1 << 16               # a workload's blank disk: at most 32 MiB
CATEGORIES = ("cpu", "syscall", "fork", "memory", "ipc", "io")     # what each workload stresses
PHASES = ("boot", "workload", "total")   # vmm/machine/phases.py; a record per phase

# the paging modes' counters a record carries (None where the paging mode has no such counter): shadow's,
# then nested paging's (vmm/monitor/nested.py: its nested-fault exits, and the machine's nested walk
# references and page-walk-cache hits while the VM ran), then binary translation's (vmm/monitor/bt/runner.py:
# its callouts, the extra instructions of translated code, the guest instructions translated)
PAGING_COUNTERS = ("hidden_faults", "true_faults", "pt_write_traps", "shadow_entries_created",
                   "shadow_entries_invalidated", "nested_faults", "nested_walk_refs", "pwc_hits",
                   "bt_callouts", "bt_overhead_instructions", "bt_instructions_translated")
# the page-fault figures come from the VM's exits by reason, which both paging modes count (direct mode
# has no hidden faults or page-table write traps by design: 0, not "no figure"); the shadow-entry
# figures from the shadow's own counters
FAULT_EXITS = {"hidden_faults": "hidden page fault", "true_faults": "true page fault",
               "pt_write_traps": "page-table write"}


@dataclass(frozen=True)
class Workload:
    """One [workloads.NAME] table of guestos/workloads.toml, validated; paths absolute."""
    name: str
    image: Path | None                 # run directly instead of under a guest kernel
    modules: tuple[Path, ...]          # boot modules under the guest kernel; the first is init
    input: bytes                       # console input
    expected: Path | None              # the output every configuration must print
    exit_code: int | None              # the exit code every configuration must end with
    max_instructions: int
    category: str | None = None        # one of CATEGORIES
    disk: Path | None = None           # the disk image every run starts from (a fresh copy per run)
    disk_sectors: int | None = None    # or a blank (zero) disk of this many sectors

    def configs(self, among: tuple[str, ...] = CONFIGS) -> tuple[str, ...]:
        """The configurations of `among` (the default set unless given) this workload can run under."""
        if self.image is None:
            return among
        return tuple(config for config in among if config not in PV_CONFIGS)


@dataclass(frozen=True)
class Kernels:
    """The guest kernels module workloads boot."""
    native: Path = KERNEL_NATIVE
    pv: Path = KERNEL_PV


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs: what to boot and how."""
    workload: Workload
    config: str
    image: Path                        # the kernel, or the workload's own image
    modules: tuple[Path, ...]
    cost_model: CostModel
    cmdline: str = ""                  # the guest kernel's command line (module workloads only)
    disk: Path | None = None           # the run's own copy of the workload's disk (run() makes it)


@dataclass(frozen=True)
class Ran:
    """What a runner returns: the console output, how the run ended (the
    process exit code `kite run` would give, the end reason or the VM's
    state, a message for an abnormal end, empty otherwise), the figures
    `kite run --stats-json` would write (launch.RunStats) and, for a workload
    with a disk, the disk's bytes at the end (its SHA-256)."""
    output: bytes
    exit_code: int
    reason: str
    message: str
    stats: object
    disk_digest: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """One finished run: its spec, what the runner returned, and the host time it took."""
    spec: RunSpec
    ran: Ran
    wall_seconds: float


# --- the workload list -------------------------------------------------------------------------

def read_workloads(path: Path = WORKLOADS) -> list[Workload]:
    """The workloads in `path`, in file order.  Raises KiteError naming the
    file (and line, for a TOML syntax error) and the bad entry."""
    return [_workload(path, name, entry) for name, entry in read_tables(path, "workloads", KiteError).items()]


def _workload(path: Path, name: str, entry: object) -> Workload:
    """Validate one workload table; paths are made relative to the file's directory."""
    where = f"{path}: workloads.{name}"
    if not re.fullmatch(r"[\w.-]+", name):
        raise KiteError(f"{where}: a workload name is letters, digits, '_', '.' and '-'")
    if not isinstance(entry, dict):
        raise KiteError(f"{where}: must be a table")
    unknown = set(entry) - WORKLOAD_KEYS
    if unknown:
        raise KiteError(f"{where}: unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(WORKLOAD_KEYS))})")
    if ("image" in entry) == ("modules" in entry):
        raise KiteError(f"{where}: give either 'modules' (run under the guest kernels) or 'image'")
    modules = entry.get("modules", [])
    if "modules" in entry and (not isinstance(modules, list) or not modules
                               or not all(isinstance(module, str) for module in modules)):
        raise KiteError(f"{where}: 'modules' must be a non-empty list of paths (the first is init)")
    for key in ("image", "input", "expected"):
        if key in entry and not isinstance(entry[key], str):
            raise KiteError(f"{where}: '{key}' must be a string")
    if "category" in entry and entry["category"] not in CATEGORIES:
        raise KiteError(f"{where}: 'category' must be one of {', '.join(CATEGORIES)}")
    for key, low in (("exit_code", 0), ("max_instructions", 1)):
        if key in entry and not (_is_int(entry[key]) and entry[key] >= low):
            raise KiteError(f"{where}: '{key}' must be an integer of at least {low}")
    if "disk" in entry and not isinstance(entry["disk"], str):
        raise KiteError(f"{where}: 'disk' must be a string")
    if "disk_sectors" in entry and not (_is_int(entry["disk_sectors"]) and 1 <= entry["disk_sectors"]
                                        <= MAX_DISK_SECTORS):
        raise KiteError(f"{where}: 'disk_sectors' must be an integer from 1 to {MAX_DISK_SECTORS}")
    if "disk" in entry and "disk_sectors" in entry:
        raise KiteError(f"{where}: give either 'disk' (an image to start from) or 'disk_sectors' (a blank disk)")
    base = path.parent
    return Workload(name, base / entry["image"] if "image" in entry else None,
                    tuple(base / module for module in modules), entry.get("input", "").encode("utf-8"),
                    base / entry["expected"] if "expected" in entry else None, entry.get("exit_code"),
                    entry.get("max_instructions", DEFAULT_MAX_INSTRUCTIONS), entry.get("category"),
                    base / entry["disk"] if "disk" in entry else None, entry.get("disk_sectors"))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expected_output(workload: Workload) -> bytes | None:
    """The contents of the workload's expected-output file, or None without
    one.  Raises KiteError if it cannot be read."""
    if workload.expected is None:
        return None
    try:
        return workload.expected.read_bytes()
    except OSError as error:
        raise KiteError(f"{workload.expected}: cannot read the expected output of "
                        f"'{workload.name}': {error.strerror}") from None


# --- planning and running ----------------------------------------------------------------------

def plan(workload: Workload, config: str, kernels: Kernels, cost_model: CostModel, cmdline: str = "") -> RunSpec:
    """The run of `workload` under `config` (one of workload.configs()); a
    module workload's kernel gets `cmdline`."""
    if workload.image is not None:
        return RunSpec(workload, config, workload.image, (), cost_model)
    kernel = kernels.pv if config in PV_CONFIGS else kernels.native
    return RunSpec(workload, config, kernel, workload.modules, cost_model, cmdline)


def run(spec: RunSpec, runners: dict[str, Callable[[RunSpec], Ran]] | None = None) -> RunOutcome:
    """Run `spec` with its configuration's runner (RUNNERS unless given),
    timing it, on a fresh copy of the workload's disk if it has one (the
    copy's final digest in the result).  Raises KiteError for a bad image,
    module or disk."""
    runner = (runners or RUNNERS)[spec.config]
    with tempfile.TemporaryDirectory(prefix="kite-compare-") as scratch:
        disk = fresh_disk(spec.workload, Path(scratch))
        started = time.perf_counter()
        ran = runner(spec if disk is None else replace(spec, disk=disk))
        elapsed = time.perf_counter() - started
        if disk is not None:
            ran = replace(ran, disk_digest=hashlib.sha256(disk.read_bytes()).hexdigest())
    return RunOutcome(spec, ran, elapsed)


def fresh_disk(workload: Workload, directory: Path) -> Path | None:
    """A new disk image file in `directory` for one run of `workload`: a copy
    of its `disk`, or `disk_sectors` zero sectors; None without a disk.
    Raises KiteError if the image cannot be read."""
    from vmm.machine.devices.disk import SECTOR_SIZE
    if workload.disk is None and workload.disk_sectors is None:
        return None
    path = directory / "disk.img"
    try:
        data = workload.disk.read_bytes() if workload.disk is not None else bytes(workload.disk_sectors * SECTOR_SIZE)
    except OSError as error:
        raise KiteError(f"{workload.disk}: cannot read the disk of '{workload.name}': {error.strerror}") from None
    path.write_bytes(data)
    return path


def _console(spec: RunSpec, output: io.BytesIO):
    """The run's console: the workload's input, output captured."""
    from vmm.launch import Console
    from vmm.machine.devices.uart import ConsoleInput
    return Console(ConsoleInput(spec.workload.input), output)


def _ran(output: io.BytesIO, finished) -> Ran:
    """What a runner returns for a launch.Finished: under the VMM the VM's
    end (its state and message), unless the machine's instruction limit
    ended the run first."""
    from vmm.machine.outcome import EndReason
    result = finished.result
    if finished.vms and result.reason is not EndReason.INSTRUCTION_LIMIT:
        (vm,) = finished.vms
        return Ran(output.getvalue(), finished.exit_code, vm.state, vm.message, finished.stats)
    return Ran(output.getvalue(), finished.exit_code, result.reason, result.message, finished.stats)


def run_machine(spec: RunSpec) -> Ran:
    """The spec's image on the bare machine (as `kite run --bare`) or under
    machine simulation (as `kite run --sim`), by the configuration's name."""
    from vmm.launch import Boot, Options, run_bare, run_sim
    from vmm.machine.devices.disk import DiskImage
    output = io.BytesIO()
    launch = run_sim if spec.config == "sim" else run_bare
    disk = DiskImage.open(str(spec.disk)) if spec.disk is not None else None
    finished = launch(Boot(str(spec.image), tuple(str(module) for module in spec.modules), GUEST_MEM, spec.cmdline),
                      _console(spec, output), Options(spec.workload.max_instructions, spec.cost_model, disk=disk))
    return _ran(output, finished)


def run_vmm(spec: RunSpec) -> Ran:
    """The spec's image as the only VM under the VMM, as `kite run --paging
    shadow|direct|nested` (shadow-basic: `--paging shadow --shadow-opt none`)."""
    from vmm.launch import Options, run_vmm as launch_vmm
    from vmm.monitor.nested import NestedOptions
    from vmm.monitor.shadow import ShadowOptions
    from vmm.monitor.vm import VmConfig
    paging, options, cpu = VMM_CONFIGS[spec.config]
    nested = NestedOptions.parse(options) if paging == "nested" else NestedOptions()
    config = VmConfig(str(spec.image), paging, GUEST_MEM, VM_NAME,
                      tuple(str(module) for module in spec.modules), spec.cmdline,
                      ShadowOptions.parse(options) if paging == "shadow" else ShadowOptions(),
                      str(spec.disk) if spec.disk is not None else None, nested=nested, cpu=cpu)
    output = io.BytesIO()
    finished = launch_vmm([config], _console(spec, output),
                          Options(spec.workload.max_instructions, spec.cost_model))
    return _ran(output, finished)


RUNNERS: dict[str, Callable[[RunSpec], Ran]] = {"bare": run_machine, "sim": run_machine,
                                               **dict.fromkeys(VMM_CONFIGS, run_vmm)}


# --- figures -----------------------------------------------------------------------------------

def figures(outcome: RunOutcome) -> list[dict]:
    """The run's records, one per phase (PHASES): workload, category, config,
    phase, exit code, and each figure copied from that phase's stats (module
    doc); None where the stats have no such figure.  The host time is the
    whole run's, on the total record only."""
    stats = outcome.ran.stats
    machine, vm = stats.machine, stats.only_vm()
    own = vm if vm is not None else machine
    phases = {**own.phases, "total": own}
    machine_phases = {**machine.phases, "total": machine}
    return [_record(outcome, phase, phases[phase], machine_phases.get(phase) if vm is None else None)
            for phase in PHASES]


def _record(outcome: RunOutcome, phase: str, own, machine) -> dict:
    """One phase's record: `own` is that phase's VM stats under the VMM (then
    `machine` is None) or the machine's stats on bare and sim."""
    vm = own if machine is None else None
    counters = vm.counters if vm is not None else {}
    record = {
        "workload": outcome.spec.workload.name,
        "category": outcome.spec.workload.category,
        "config": outcome.spec.config,
        "phase": phase,
        "exit_code": outcome.ran.exit_code,
        "guest_instructions": vm.guest_instructions if vm is not None else machine.instructions,
        "vm_exits": vm.vm_exits if vm is not None else None,
        "exits": dict(vm.exits) if vm is not None else None,
        "hypercalls": vm.hypercalls if vm is not None else None,
    }
    record.update({name: counters.get(name) for name in PAGING_COUNTERS})
    if vm is not None:
        record.update({name: vm.exits.get(reason, 0) for name, reason in FAULT_EXITS.items()})
    record.update(io_figures(own.io, vm is not None))
    record.update({
        "tlb_misses": own.tlb_misses,
        "walk_refs": own.walk_refs,
        "walk_refs_per_miss": round(own.walk_refs / own.tlb_misses, 2) if own.tlb_misses else None,
        "modeled_cycles": own.modeled_cycles,
        "wall_seconds": round(outcome.wall_seconds, 4) if phase == "total" else None,
    })
    return record


def io_figures(io: dict, under_vmm: bool) -> dict:
    """A phase's disk figures from its stats' `io` ({} without a disk: every
    figure None): requests and bytes; under the VMM also MMIO exits per
    request and ring requests per notification (None without either)."""
    requests = io.get("requests")
    mmio, notifications = io.get("mmio_exits"), io.get("notifications")
    return {
        "io_requests": requests,
        "io_bytes": io.get("bytes"),
        "mmio_exits_per_request": round(mmio / requests, 2) if under_vmm and requests and mmio else None,
        "requests_per_notification": round(requests / notifications, 2) if under_vmm and notifications else None,
    }

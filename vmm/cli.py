"""`kite run`: boot an ELF image on the Kite32 machine.

`--bare`, `--sim`, `--paging shadow|direct|nested` and `--vm` select the machine
(`dispatch_run`): the bare machine (the image owns the hardware), machine
simulation, or the VMM with one or several VMs.  Loading, console, stats and
exit codes are shared.

Exit codes (docs/vmm.md): the guest's (power device, or 0 after halt); 124
when the instruction limit is reached; 125 when the machine stops on a fault
(with a register dump) or the VMM stops a guest; 70 for an internal VMM
error; 2 for a bad image, disk or option; 130 on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import replace
from typing import Callable, Iterator

import click

from asm.files import write_atomically
from asm.isa import MAX_RAM, PAGE_SIZE
from vmm.machine.costs import DEFAULT_COST_MODEL, load_cost_model
from vmm.machine.errors import KiteError
from vmm.machine.outcome import EndReason

DEFAULT_MEM = "16M"
SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as shells report it
PAGING_MODES = ("shadow", "direct", "nested")   # vmm.monitor.paging.MODES, without importing the VMM for --help
CPU_MODES = ("trap", "bt")                      # vmm.monitor.vm.CPU_MODES, likewise


class MemSize(click.ParamType):
    """A RAM size like 65536, 64K, 16M or 1G: a multiple of 4 KiB, at most isa.MAX_RAM."""

    name = "SIZE"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"(\d{1,12})([KMG]?)", value.strip(), re.IGNORECASE)
        if not match:
            self.fail(f"'{value}' is not a size (examples: 65536, 64K, 16M, 1G)", param, ctx)
        size = int(match.group(1)) * SIZE_SUFFIXES[match.group(2).upper()]
        if size == 0 or size % PAGE_SIZE:
            self.fail(f"'{value}' is not a positive multiple of {PAGE_SIZE // 1024} KiB", param, ctx)
        if size > MAX_RAM:
            self.fail(f"'{value}' is more than the {MAX_RAM >> 20} MiB below the MMIO region", param, ctx)
        return size


def format_stats(stats: dict) -> str:
    """The --stats report: one `name: value` line per figure, nested tables indented."""
    lines = ["kite: stats:"]
    for name, value in stats.items():
        if isinstance(value, dict):
            lines.append(f"  {name}:" + ("" if value else " none"))
            lines.extend(f"    {key}: {count}" for key, count in value.items())
        else:
            lines.append(f"  {name}: {value}")
    return "\n".join(lines)


def console_input(input_file: str | None, input_text: str | None, replay: list | None = None):
    """The UART's input: --input FILE, --input-text TEXT, --replay's arrivals
    (replay.Arrival), or stdin."""
    from vmm.machine.devices.uart import ConsoleInput
    if replay is not None:
        return ConsoleInput.replaying(replay)
    if input_text is not None:
        return ConsoleInput(input_text.encode("utf-8"))
    if input_file is not None:
        try:
            with open(input_file, "rb") as source:
                return ConsoleInput(source.read())
        except OSError as error:
            raise KiteError(f"{input_file}: cannot read input: {error.strerror}") from None
    stdin = sys.stdin.buffer
    return ConsoleInput.from_stdin(stdin, stdin.isatty())


@contextlib.contextmanager
def open_trace(path: str | None) -> Iterator[Callable[[str], None] | None]:
    """The line sink for --trace (None without one; '-' is stderr), its file
    closed at the end.  Raises KiteError if the file cannot be written."""
    if path is None:
        yield None
        return
    if path == "-":
        yield lambda line: click.echo(line, err=True)
        return
    try:
        trace_file = open(path, "w")
    except OSError as error:
        raise KiteError(f"{path}: cannot write trace: {error.strerror}") from None
    with trace_file:
        yield lambda line: trace_file.write(line + "\n")


@contextlib.contextmanager
def trace_config(trace: dict) -> Iterator[object]:
    """The vmm.tracing.TraceConfig of the --trace options (None without
    --trace), its sink open while inside.  Raises KiteError."""
    with open_trace(trace["path"]) as emit:
        if emit is None:
            yield None
            return
        from vmm.tracing import TraceConfig
        yield TraceConfig(emit, trace["events"], trace["ranges"], trace["format"])


def trace_options(options: dict, engine: str) -> dict:
    """Take the --trace options out of `options`, checked for `engine`
    ("bare", "sim", "vmm"): {path, events, ranges, format}.  Raises UsageError."""
    from vmm.tracing import DEFAULT_EVENTS, check_events, parse_events, parse_filter
    trace = {"path": options.pop("trace"), "format": options.pop("trace_format") or "text"}
    events_text, filter_text = options.pop("trace_events"), options.pop("trace_filter")
    given = [name for name, value in (("--trace-events", events_text), ("--trace-filter", filter_text),
                                      ("--trace-format", trace["format"] != "text")) if value]
    if given and trace["path"] is None:
        raise click.UsageError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --trace FILE|-")
    trace["events"] = _parsed(parse_events, events_text, "--trace-events") or frozenset(DEFAULT_EVENTS)
    trace["ranges"] = _parsed(parse_filter, filter_text, "--trace-filter") or ()
    try:
        check_events(trace["events"], engine)
    except KiteError as error:
        raise click.UsageError(str(error)) from None
    return trace


def _parsed(parse: Callable, text: str | None, option: str):
    """parse(text), None without text; a ValueError becomes click's BadParameter for `option`."""
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def checkpoint_options(options: dict) -> tuple[int, str] | None:
    """Take --checkpoint-at and --checkpoint out of `options`: (N, FILE) or
    None.  Raises UsageError unless both are given (every machine can be
    checkpointed; a VM whose paging mode cannot is refused when the run
    starts, docs/snapshot.md)."""
    at, path = options.pop("checkpoint_at"), options.pop("checkpoint")
    if at is None and path is None:
        return None
    if at is None or path is None:
        raise click.UsageError("--checkpoint-at N and --checkpoint FILE go together")
    return at, path


def run_bare(image, modules, mem, disk, disk_readonly, max_instructions, trace, stats, stats_json,
             cmdline, input_file, input_text, cost_model, checkpoint=None, record=None, replay=None) -> int:
    """Boot `image` on the bare machine (stopping at `checkpoint`'s (N, FILE)
    to write it, if given); returns the process exit code.  Raises KiteError
    for bad images, disks and files."""
    from vmm.launch import Boot
    from vmm.launch import run_bare as launch_bare
    from vmm.machine.devices.disk import DiskImage
    disk_image = DiskImage.open(disk, read_only=disk_readonly) if disk else None
    with trace_config(trace) as config, console(input_file, input_text, record, replay) as run_console:
        finished = launch_bare(Boot(image, tuple(modules), mem, cmdline), run_console,
                               run_options(max_instructions, cost_model, config, disk_image, checkpoint))
    return report_run(finished, checkpoint, stats, stats_json)


def report_run(finished, checkpoint: tuple[int, str] | None, stats: bool, stats_json: str | None) -> int:
    """A run's end (report), or the checkpoint it stopped to write (of one VM
    out of several: then the others' end too); its exit code."""
    if finished.checkpointed:
        click.echo(f"kite: checkpoint at instruction {checkpoint[0]} written to {checkpoint[1]}", err=True)
        if len(finished.vms) < 2:
            return 0
        report(finished, stats, stats_json)
        return finished.exit_code
    if checkpoint is not None:
        click.echo(f"kite: the guest ended before instruction {checkpoint[0]}: no checkpoint written", err=True)
    report(finished, stats, stats_json)
    return finished.exit_code


def run_sim(image, modules, mem, disk, disk_readonly, max_instructions, trace, stats, stats_json, cmdline,
            input_file, input_text, cost_model, checkpoint=None, record=None, replay=None) -> int:
    """Boot `image` under machine simulation (every instruction interpreted by
    the VMM; stopping at `checkpoint`'s (N, FILE) to write it, if given);
    returns the process exit code.  Raises KiteError."""
    from vmm.launch import Boot
    from vmm.launch import run_sim as launch_sim
    from vmm.machine.devices.disk import DiskImage
    disk_image = DiskImage.open(disk, read_only=disk_readonly) if disk else None
    with trace_config(trace) as config, console(input_file, input_text, record, replay) as run_console:
        finished = launch_sim(Boot(image, tuple(modules), mem, cmdline), run_console,
                              run_options(max_instructions, cost_model, config, disk_image, checkpoint))
    return report_run(finished, checkpoint, stats, stats_json)


def run_vmm(configs, max_instructions, trace, stats, stats_json, input_file, input_text,
            cost_model, checkpoint=None, migrate=None, record=None, replay=None, move_vm=None) -> int:
    """Run the VMs under the VMM (stopping at `checkpoint`'s (N, FILE) to
    write it, or migrating the VM live with `migrate`'s (N, bandwidth,
    rounds), if given); returns the process exit code (the only VM's, or
    the first nonzero one of several; a migrated VM's destination's).
    Raises KiteError."""
    from vmm.launch import run_vmm as launch_vmm
    options = replace(run_options(max_instructions, cost_model, None, None, checkpoint), move_vm=move_vm)
    if migrate is not None:
        options = replace(options, migrate=migration_of(migrate, max_instructions, stats, stats_json, cost_model))
    with trace_config(trace) as config, console(input_file, input_text, record, replay) as run_console:
        finished = launch_vmm(configs, run_console, replace(options, trace=config))
    if finished.migrated:
        return finished.exit_code
    return report_run(finished, checkpoint, stats, stats_json)


def migration_of(migrate: tuple[int, int, int], max_instructions, stats, stats_json, cost_model):
    """launch.Migrate for --migrate-at/--migrate-bandwidth/--migrate-rounds:
    the destination is `kite migrate-receive` with this run's report options."""
    from vmm.launch import Migrate
    from vmm.monitor.migration import Plan
    destination = [sys.executable, "-m", "kite", "migrate-receive"]
    for option, value in (("--max-instructions", max_instructions), ("--stats-json", stats_json),
                          ("--cost-model", cost_model)):
        if value is not None:
            destination += [option, str(value)]
    return Migrate(Plan(*migrate), tuple(destination + ["--stats"] * stats))


def migration_options(options: dict, supported: bool) -> tuple[int, int, int] | None:
    """Take --migrate-at, --migrate-bandwidth and --migrate-rounds out of
    `options`: (N, bandwidth, rounds) or None.  UsageError unless the run
    can migrate (`supported`: under --paging or --vm) and has no checkpoint."""
    at, bandwidth, rounds = (options.pop(key) for key in ("migrate_at", "migrate_bandwidth", "migrate_rounds"))
    if at is None:
        if bandwidth is not None or rounds is not None:
            raise click.UsageError("--migrate-bandwidth and --migrate-rounds go with --migrate-at")
        return None
    if not supported:
        raise click.UsageError("--migrate-at works with --paging and --vm (docs/encapsulation.md)")
    if options.get("checkpoint_at") is not None:
        raise click.UsageError("--migrate-at and --checkpoint-at cannot be combined")
    from vmm.monitor.migration import DEFAULT_BANDWIDTH, DEFAULT_ROUNDS
    return at, bandwidth or DEFAULT_BANDWIDTH, DEFAULT_ROUNDS if rounds is None else rounds


@contextlib.contextmanager
def console(input_file: str | None, input_text: str | None, record: str | None = None,
            replay: list | None = None) -> Iterator[object]:
    """The launch.Console of a `kite run` while it runs: the input it names,
    output to stdout; with `record` (--record FILE), the input log written
    there once the run ends, a Ctrl-C included.  Raises KiteError."""
    from vmm.launch import Console
    from vmm.machine.replay import Recorder
    recorder = Recorder() if record else None
    try:
        yield Console(console_input(input_file, input_text, replay), sys.stdout.buffer, recorder)
    except KeyboardInterrupt:
        if recorder is not None:
            recorder.write(record)
        raise
    if recorder is not None:
        recorder.write(record)


def replay_options(options: dict) -> None:
    """Check --record and --replay, and read --replay's log now, before
    anything runs: options["replay"] becomes its arrivals.  UsageError for
    what cannot go with them; ReplayError (exit 2) for a bad log."""
    if options.get("migrate_at") is not None and (options["record"] or options["replay"]):
        raise click.UsageError("--record and --replay cannot be combined with --migrate-at yet")
    if options["replay"] is None:
        return
    for option, key in (("--input", "input_file"), ("--input-text", "input_text"),
                        ("--checkpoint-at", "checkpoint_at")):
        if options[key] is not None:
            raise click.UsageError(f"--replay gives the console input: it cannot be combined with {option}")
    from vmm.machine.replay import read_log
    options["replay"] = read_log(options["replay"])


def run_options(max_instructions, cost_model, trace=None, disk=None, checkpoint=None):
    """launch.Options from the command line (`cost_model` a file or None)."""
    from vmm.launch import Options
    model = load_cost_model(cost_model) if cost_model else DEFAULT_COST_MODEL
    return Options(max_instructions, model, trace, disk, checkpoint)


def write_stats_json(path: str, figures: dict) -> None:
    """--stats-json: the figures as JSON, written atomically.  Raises KiteError."""
    try:
        write_atomically(path, json.dumps(figures, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        raise KiteError(f"{path}: cannot write stats: {error.strerror}") from None


def report(finished, stats: bool, stats_json: str | None) -> None:
    """The end-of-run messages on stderr (with the register dump after a
    fault on the bare machine), each VM's end, the --stats report and the
    --stats-json file."""
    result = finished.result
    if result.message and result.reason is not EndReason.POWER_OFF:
        click.echo(f"kite: stopped: {result.message}", err=True)
    if finished.register_dump is not None and result.reason in (EndReason.FAULT, EndReason.NO_INTERRUPT_SOURCE):
        click.echo(finished.register_dump(), err=True)
    if finished.hint:
        click.echo(finished.hint, err=True)
    for vm in finished.vms:
        if vm.message:
            click.echo(f"kite: {vm.name}: stopped: {vm.message}", err=True)
        if len(finished.vms) > 1:
            click.echo(f"kite: {vm.name}: exit code {vm.exit_code} ({vm.state})", err=True)
    if stats:
        click.echo(format_stats(result.stats.as_dict()), err=True)
        for vm in finished.vms:
            click.echo(format_stats(vm.stats.as_dict()).replace("kite: stats:", f"kite: {vm.name}: stats:"),
                       err=True)
    if stats_json:
        write_stats_json(stats_json, finished.stats.as_dict())


def parse_vm_spec(spec: str, default_mem: int, index: int):
    """A --vm value: IMAGE[,paging=shadow|direct|nested][,cpu=trap|bt][,mem=SIZE][,name=NAME][,module=FILE]...
    [,shadow=OPTS][,nested=pwc|nopwc] (OPTS as --shadow-opt, with + between names).  Raises click.BadParameter naming the
    bad part."""
    from vmm.monitor.shadow import ShadowOptions
    from vmm.monitor.vm import VmConfig
    image, *parts = spec.split(",")
    settings = {"paging": "shadow", "mem": default_mem, "name": f"vm{index}", "modules": [],
                "shadow": ShadowOptions(), "disk": None, "disk_readonly": False, "nested": None, "cpu": "trap"}
    for part in parts:
        key, equals, value = part.partition("=")
        if key == "module":
            settings["modules"].append(value)
        elif key == "disk" and value:
            settings["disk"] = value
        elif part == "disk-readonly":
            settings["disk_readonly"] = True
        elif key == "mem":
            settings["mem"] = MemSize().convert(value, None, None)
        elif key == "paging" and value in PAGING_MODES:
            settings["paging"] = value
        elif key == "name" and re.fullmatch(r"[\w.-]+", value):
            settings["name"] = value
        elif key == "shadow":
            settings["shadow"] = shadow_options(value, "--vm")
        elif key == "nested":
            settings["nested"] = nested_options(value, "--vm")
        elif key == "cpu" and value in CPU_MODES:
            settings["cpu"] = value
        else:
            raise click.BadParameter(f"'{part}' in '{spec}' (expected paging=shadow|direct|nested, mem=SIZE, "
                                     f"name=NAME, module=FILE, shadow=OPTS, nested=pwc|nopwc, cpu=trap|bt, "
                                     f"disk=FILE or disk-readonly)",
                                     param_hint="--vm")
    if not image:
        raise click.BadParameter(f"'{spec}' names no image", param_hint="--vm")
    if settings["disk_readonly"] and not settings["disk"]:
        raise click.BadParameter(f"'{spec}': disk-readonly needs disk=FILE", param_hint="--vm")
    if settings["nested"] is not None and settings["paging"] != "nested":
        raise click.BadParameter(f"'{spec}': nested= applies to paging=nested", param_hint="--vm")
    if settings["cpu"] == "bt" and settings["paging"] != "shadow":
        raise click.BadParameter(f"'{spec}': cpu=bt needs paging=shadow", param_hint="--vm")
    nested = {"nested": settings["nested"]} if settings["nested"] is not None else {}
    return VmConfig(image, settings["paging"], settings["mem"], settings["name"],
                    tuple(settings["modules"]), shadow=settings["shadow"], disk=settings["disk"],
                    disk_readonly=settings["disk_readonly"], cpu=settings["cpu"], **nested)


def nested_options(text: str, option: str):
    """The NestedOptions of --nested-opt or nested= (pwc, nopwc)."""
    from vmm.monitor.nested import NestedOptions
    try:
        return NestedOptions.parse(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def shadow_options(text: str, option: str):
    """The ShadowOptions of --shadow-opt or shadow= (all, none, flood,unsync,prefetch)."""
    from vmm.monitor.shadow import ShadowOptions
    try:
        return ShadowOptions.parse(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def dispatch_run(image, bare, sim, paging, vm_specs, options) -> int:
    """Check which machine the options select and run it; returns the exit code."""
    chosen = [name for name, given in (("--bare", bare), ("--sim", sim), ("--paging", paging),
                                       ("--vm", vm_specs)) if given]
    if len(chosen) != 1:
        raise click.UsageError("choose one of --bare, --sim, --paging or --vm" if not chosen
                               else f"{' and '.join(chosen)} cannot be combined")
    if bool(image) == bool(vm_specs):
        raise click.UsageError("--vm takes the images itself" if image else "missing IMAGE")
    refuse_overwriting_inputs(image, vm_specs, options)
    replay_options(options)
    if options["disk_readonly"] and not options["disk"]:
        raise click.UsageError("--disk-readonly needs --disk")
    options["trace"] = trace_options(options, "bare" if bare else "sim" if sim else "vmm")
    migrate = migration_options(options, bool(paging or vm_specs))
    checkpoint = checkpoint_options(options)
    move_vm = moved_vm_option(options, checkpoint, migrate, len(vm_specs) > 1)
    nested_opt = options.pop("nested_opt")
    if nested_opt and paging != "nested":
        raise click.UsageError("--nested-opt applies to --paging nested (with --vm: nested=pwc|nopwc)")
    cpu = options.pop("cpu")
    if cpu == "bt" and paging != "shadow":
        raise click.UsageError("--cpu bt needs --paging shadow (with --vm: paging=shadow,cpu=bt)")
    if bare:
        options["checkpoint"] = checkpoint
        if options.pop("shadow_opt"):
            raise click.UsageError("--shadow-opt applies to --paging shadow")
        return run_bare(image, **options)
    if options["shadow_opt"] and paging != "shadow" and not vm_specs:
        raise click.UsageError("--shadow-opt applies to --paging shadow")
    if sim:
        options.pop("shadow_opt")
        return run_sim(image, **options, checkpoint=checkpoint)
    vmm_only = {key: options.pop(key) for key in ("modules", "mem", "cmdline", "shadow_opt", "disk",
                                                  "disk_readonly")}
    if paging:
        configs = [replace(single_vm_config(image, paging, vmm_only), cpu=cpu)]
        if nested_opt:
            configs = [replace(configs[0], nested=nested_options(nested_opt, "--nested-opt"))]
    else:
        if vmm_only["modules"] or vmm_only["cmdline"] or vmm_only["shadow_opt"] or vmm_only["disk"]:
            raise click.UsageError("with --vm, give each VM its modules, shadow options and disk in its spec "
                                   "(--vm IMAGE,module=FILE,shadow=OPTS,disk=FILE); --module, --cmdline, "
                                   "--shadow-opt and --disk apply to --paging")
        configs = [parse_vm_spec(spec, vmm_only["mem"], index) for index, spec in enumerate(vm_specs, 1)]
    if any(config.cpu == "bt" for config in configs) and (checkpoint or migrate or options["trace"]["path"]):
        raise click.UsageError("a VM under --cpu bt cannot be checkpointed, migrated or traced yet")
    names = [config.name for config in configs]
    if len(set(names)) != len(names):
        raise click.UsageError(f"two VMs named alike: {', '.join(names)}")
    if move_vm is not None and move_vm not in names:
        raise click.UsageError(f"no VM named {move_vm!r} (the VMs: {', '.join(names)})")
    return run_vmm(configs, **options, checkpoint=checkpoint, migrate=migrate, move_vm=move_vm)


def moved_vm_option(options: dict, checkpoint, migrate, several: bool) -> str | None:
    """Take --checkpoint-vm and --migrate-vm out of `options`: the VM the
    checkpoint or migration takes, of several --vm (required then).  UsageError."""
    names = {"--checkpoint-vm": (options.pop("checkpoint_vm"), checkpoint),
             "--migrate-vm": (options.pop("migrate_vm"), migrate)}
    for option, (name, wanted) in names.items():
        if name is not None and (wanted is None or not several):
            raise click.UsageError(f"{option} goes with {option.replace('-vm', '-at')} and several --vm")
        if wanted is not None and several and name is None:
            raise click.UsageError(f"with several --vm, name the VM {option.replace('-vm', '-at')} takes: "
                                   f"{option} NAME")
    return names["--checkpoint-vm"][0] or names["--migrate-vm"][0]


def refuse_overwriting_inputs(image, vm_specs, options) -> None:
    """--stats-json, --trace and --record must not name a file the run reads
    (the image, a module, the disk, the input, the log replayed, the cost
    model): UsageError."""
    inputs = [image, *options["modules"], options["disk"], options["input_file"], options["replay"],
              options["cost_model"]]
    for spec in vm_specs:
        image_part, *parts = spec.split(",")
        inputs += [image_part] + [part.partition("=")[2] for part in parts
                                  if part.startswith(("module=", "disk="))]
    real_inputs = {os.path.realpath(path) for path in inputs if path}
    for option in ("stats_json", "trace", "record"):
        path = options[option]
        if path and path != "-" and os.path.realpath(path) in real_inputs:
            raise click.UsageError(f"--{option.replace('_', '-')} {path} would overwrite an input of the run")


def single_vm_config(image: str, paging: str, options: dict):
    """The VmConfig of `kite run --paging MODE IMAGE`."""
    from vmm.monitor.shadow import ShadowOptions
    from vmm.monitor.vm import VmConfig
    shadow = shadow_options(options["shadow_opt"], "--shadow-opt") if options["shadow_opt"] else ShadowOptions()
    return VmConfig(image, paging, options["mem"], "vm1", tuple(options["modules"]), options["cmdline"], shadow,
                    options["disk"], options["disk_readonly"])


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: kite run --bare guestos/build/boot_demo.elf --stats")
@click.argument("image", type=click.Path(dir_okay=False), required=False)
@click.option("--bare", is_flag=True, help="Run on the bare machine (the image owns the hardware).")
@click.option("--sim", is_flag=True,
              help="Run IMAGE under machine simulation: the VMM interprets every instruction.")
@click.option("--paging", type=click.Choice(PAGING_MODES),
              help="Run IMAGE under the VMM: shadow (unmodified kernel, trap-and-emulate with shadow page "
                   "tables), direct (paravirtual kernel) or nested (unmodified kernel in the machine's guest "
                   "mode, hardware nested paging).")
@click.option("--vm", "vm_specs", multiple=True,
              metavar="IMAGE[,paging=..][,cpu=..][,mem=..][,name=..][,module=..][,shadow=..][,nested=..][,disk=..]",
              help="Run a VM under the VMM; repeat to run several side by side.")
@click.option("--shadow-opt", metavar="all|none|flood,unsync,prefetch",
              help="Shadow paging's techniques (default all): write-flood detection, out-of-sync leaf "
                   "tables, prefetch.")
@click.option("--cpu", type=click.Choice(CPU_MODES), default="trap", show_default=True,
              help="How the guest kernel's code runs under --paging shadow: trap (deprivileged, "
                   "trap-and-emulate) or bt (binary translation, as VMware's).")
@click.option("--nested-opt", type=click.Choice(["pwc", "nopwc"]),
              help="Nested paging's page-walk cache: on (pwc, the default, as real hardware) or off (nopwc).")
@click.option("--module", "modules", multiple=True, type=click.Path(dir_okay=False),
              help="A boot module (Kite32 ELF file) to load after the kernel; repeatable.")
@click.option("--mem", type=MemSize(), default=DEFAULT_MEM, show_default=True,
              help="RAM size, e.g. 64K, 16M, 1G (multiple of 4 KiB).")
@click.option("--disk", type=click.Path(dir_okay=False), help="Disk image (a multiple of 512 bytes).")
@click.option("--disk-readonly", is_flag=True, help="Never write the guest's disk writes back.")
@click.option("--max-instructions", type=click.IntRange(min=1),
              help="Stop (exit code 124) after this many instructions.")
@click.option("--trace", metavar="FILE", help="Write a trace of the run to FILE ('-': stderr); "
                                              "docs/tracing.md.")
@click.option("--trace-events", metavar="insn,trap,exit,hypercall,mmu,io",
              help="What --trace shows: any comma-separated subset, or all (default insn,trap).")
@click.option("--trace-filter", metavar="START..END[,...]",
              help="Only events whose pc is in [START, END): addresses or symbols (main, user-hello:main+8).")
@click.option("--trace-format", type=click.Choice(["text", "jsonl"]),
              help="The trace as text lines (default) or JSON Lines, one object per event.")
@click.option("--stats", is_flag=True, help="Print the counters on stderr at the end.")
@click.option("--stats-json", metavar="FILE", help="Write the counters as JSON to FILE.")
@click.option("--checkpoint-at", type=click.IntRange(min=1), metavar="N",
              help="Stop after N instructions and write the machine to --checkpoint FILE (--bare or --sim, "
                   "or one VM: --paging shadow or direct; with its disk if any; kite resume FILE goes on).")
@click.option("--checkpoint", metavar="FILE", help="The checkpoint file --checkpoint-at writes.")
@click.option("--checkpoint-vm", metavar="NAME",
              help="With several --vm: the VM --checkpoint-at writes (the others run on).")
@click.option("--migrate-at", type=click.IntRange(min=1), metavar="N",
              help="From instruction N, migrate the VM live to a second monitor process (--paging; "
                   "docs/encapsulation.md).")
@click.option("--migrate-bandwidth", type=click.IntRange(min=1), metavar="BYTES",
              help="The migration link's speed, in bytes per guest instruction (default 128).")
@click.option("--migrate-rounds", type=click.IntRange(min=0, max=1000), metavar="K",
              help="At most K pre-copy rounds after round 0 before stop-and-copy (default 29).")
@click.option("--migrate-vm", metavar="NAME",
              help="With several --vm: the VM --migrate-at migrates (the others run on at the source).")
@click.option("--cmdline", default="", help="The kernel command line (in the boot-info block).")
@click.option("--input", "input_file", type=click.Path(dir_okay=False),
              help="Console input from FILE instead of stdin.")
@click.option("--input-text", help="Console input given inline instead of stdin.")
@click.option("--record", metavar="FILE",
              help="Write every console input arrival, with the tick it arrived at, to the log FILE "
                   "(docs/replay.md).")
@click.option("--replay", type=click.Path(dir_okay=False), metavar="FILE",
              help="Console input from the log FILE (--record), each arrival at its tick and nothing else: "
                   "the run repeats the recorded one exactly.")
@click.option("--cost-model", type=click.Path(dir_okay=False),
              help="JSON or TOML file overriding the cycle costs.")
def run(image, bare, sim, paging, vm_specs, **options) -> None:
    """Boot the Kite32 ELF IMAGE: on the bare machine (--bare), or under the
    VMM (--paging shadow|direct|nested), or several VMs at once (--vm, repeatable).

    Exit code: the guest's (of several VMs, the first nonzero one); 124 at
    the instruction limit; 125 on a fault; 70 for an internal VMM error; 2
    for a bad image, disk or option."""
    exit_as_kite(lambda: dispatch_run(image, bare, sim, paging, vm_specs, options))


def exit_as_kite(command: Callable[[], int]) -> None:
    """Run a command and exit with its exit code; a KiteError is reported as
    `kite: error: ...` with exit code 2, Ctrl-C as `kite: interrupted` (130)."""
    try:
        exit_code = command()
    except KiteError as error:
        click.echo(f"kite: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("kite: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_code)


@click.command("resume", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: kite run --bare k.elf --checkpoint-at 100000 --checkpoint k.ckpt; "
                      "kite resume k.ckpt")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--max-instructions", type=click.IntRange(min=1),
              help="Stop (exit code 124) once this many instructions have run since boot.")
@click.option("--stats", is_flag=True, help="Print the counters on stderr at the end.")
@click.option("--stats-json", metavar="FILE", help="Write the counters as JSON to FILE.")
@click.option("--cost-model", type=click.Path(dir_okay=False),
              help="JSON or TOML file overriding the cycle costs.")
@click.option("--disk", type=click.Path(dir_okay=False),
              help="The disk image of a checkpoint taken with a disk (required then; checked by its SHA-256).")
@click.option("--checkpoint-at", type=click.IntRange(min=1), metavar="N",
              help="Stop once N instructions have run since boot and write a new checkpoint to --checkpoint FILE.")
@click.option("--checkpoint", "next_checkpoint", metavar="FILE", help="The checkpoint file --checkpoint-at writes.")
def resume(checkpoint, max_instructions, stats, stats_json, cost_model, disk, checkpoint_at,
           next_checkpoint) -> None:
    """Go on with the run saved in CHECKPOINT (kite run --checkpoint-at), on a
    fresh machine: its output follows the checkpointed run's, as if it had
    never stopped (docs/snapshot.md).

    Exit code: as kite run's; 2 for a bad, corrupt or tampered checkpoint
    (nothing runs)."""
    from vmm.launch import resume_bare
    if stats_json and os.path.realpath(stats_json) in {os.path.realpath(path) for path in (checkpoint, disk) if path}:
        raise click.UsageError(f"--stats-json {stats_json} would overwrite an input of the run")
    later = checkpoint_options({"checkpoint_at": checkpoint_at, "checkpoint": next_checkpoint})
    if later is not None and os.path.realpath(later[1]) == os.path.realpath(checkpoint):
        raise click.UsageError(f"--checkpoint {later[1]} would overwrite the checkpoint resumed")

    def resumed() -> int:
        finished = resume_bare(checkpoint, sys.stdout.buffer,
                               run_options(max_instructions, cost_model, checkpoint=later), disk)
        return report_run(finished, later, stats, stats_json)
    exit_as_kite(resumed)


@click.command("migrate-receive", hidden=True, context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: none by hand: kite run --paging shadow K.elf --migrate-at 300000 starts it "
                      "(docs/encapsulation.md)")
@click.option("--fd", type=int, required=True, help="The destination's end of the migration socket.")
@click.option("--max-instructions", type=click.IntRange(min=1))
@click.option("--stats", is_flag=True)
@click.option("--stats-json", metavar="FILE")
@click.option("--cost-model", type=click.Path(dir_okay=False))
def migrate_receive(fd, max_instructions, stats, stats_json, cost_model) -> None:
    """The destination of a live migration (kite run --migrate-at starts it):
    receive the VM on socket FD, check it as a checkpoint is checked, take
    it over, run it to its end and report as kite run would, with the
    migration's figures.  Exit code: the run's; 2 for a stream it refuses."""
    from vmm.launch import receive_migration

    def received() -> int:
        taken = receive_migration(fd, sys.stdout.buffer, run_options(max_instructions, cost_model))
        if taken is None:
            return 0
        finished, figures = taken
        report(finished, stats, None)
        report_migration(figures, finished.stats.only_vm().guest_instructions)
        if stats_json:
            write_stats_json(stats_json, {**finished.stats.as_dict(), "migration": figures})
        return finished.exit_code
    exit_as_kite(received)


def report_migration(figures: dict, instructions: int) -> None:
    """The migration's figures on stderr: its rounds, the stop-and-copy and the downtime."""
    rounds = figures["rounds"]
    click.echo(f"kite: migrated live from instruction {figures['at']}: {len(rounds)} pre-copy "
               f"round{'s' * (len(rounds) != 1)}, then stop-and-copy", err=True)
    for number, round_ in enumerate(rounds):
        click.echo(f"  round {number}: {round_['frames']} frames sent in {round_['instructions']} instructions; "
                   f"the guest dirtied {round_['dirtied']}", err=True)
    share = 100 * figures["downtime_instructions"] / max(instructions, 1)
    click.echo(f"  stop-and-copy: {figures['stop_copy_frames']} frames and {figures['state_bytes']} bytes of "
               f"state; downtime {figures['downtime_instructions']} instructions ({share:.2f}% of the run's "
               f"{instructions})", err=True)
    click.echo(f"  {figures['total_bytes']} bytes sent at {figures['bandwidth']} bytes per instruction; dirty "
               f"logging by {figures['dirty_logging']}", err=True)

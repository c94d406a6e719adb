"""Checkpoints of a VM under the VMM (docs/snapshot.md), in the file format of
vmm/machine/snapshot.py with the engine "vmm".

What is saved is the VM's state and the monitor's bookkeeping of its time:
the machine CPU (the VM runs on it: its registers, pc, machine status and
counters), the machine's own timer, the virtual CPU, the VM's devices (the
disk's registers and command in flight, the block ring's progress), its
exits and figures, and its guest-physical RAM (frames that are not all zero).
What a cache can rebuild is not: the shadow tables (the restored VM starts
with an empty shadow, and hidden faults refill it: its counters go on from
the saved ones and show the refill), the TLB and the translated blocks.

Direct paging's accounting is state, saved in guest frame numbers (pins,
bases, the VMM's holds, every frame's type and counts) and never trusted:
the restore rebuilds it through the validator (DirectPaging.revalidate, the
pages shared with the VMM re-registered by Monitor.restore_pv_pages) and
refuses a checkpoint whose saved accounting differs from the rebuilt one.
A disk is saved as on the bare machine, by the same functions
(snapshot.check_disk, open_disk, Disk.checkpoint: the device whole, the
image file named by path, size and SHA-256 after the run's write-back, a
read-only disk's written sectors after the frames in ram.bin); the block
ring's progress is saved beside it.

One VM out of several can be saved (the others go on: Monitor.let_go): it
is switched in first (Monitor.switch_in), so the machine CPU is its own; the
checkpoint keeps its machine frames' place (`machine.first_frame`: direct
paging's tables name machine frames) and whether its output lines carried
its name (`config.prefixed`).  Restored, it runs alone.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from asm.isa import CR_STATUS, PAGE_SHIFT, PAGE_SIZE, STATUS_UF, VMEXIT_NAMES
from vmm.machine import snapshot
from vmm.machine.devices.disk import SECTOR_SIZE
from vmm.machine.snapshot import CheckpointError, _is_hex, _is_int
from vmm.machine.symbols import Symbolizer
from vmm.monitor import blkback, direct, nested
from vmm.monitor.blkback import BlockCounts
from vmm.monitor.direct import TYPE_L1, TYPE_L2, TYPE_NONE, TYPE_WRITABLE, Rejected
from vmm.monitor.shadow import COUNTER_KEYS, ShadowOptions
from vmm.monitor.vm import VmConfig, VmState, VmStats

ENGINE = "vmm"
VM_COUNTS = ("instructions", "emulated", "tlb_misses", "walk_refs", "stalled", "reflections", "disk_mmio_exits")
TICKS_MAX = snapshot.TICKS_MAX
M32 = 0xFFFFFFFF
PAGING = ("shadow", "direct", "nested")       # the paging modes a checkpoint saves
DIRECT_KEYS = {"pins", "bases", "held", "frames", "pvcpu", "ring"}
COUNTERS = {"shadow": set(COUNTER_KEYS), "direct": set(direct.COUNTER_KEYS),    # each mode's counter names
            "nested": set(nested.COUNTER_KEYS) | {f"exits: {name}" for name in VMEXIT_NAMES.values()}}
FRAME_TYPES = (TYPE_NONE, TYPE_WRITABLE, TYPE_L1, TYPE_L2)


def vm_named(monitor, name: str | None):
    """The VM a checkpoint or migration takes: the one named `name`, or the
    only one.  CheckpointError if there is no such VM (or several and no name)."""
    if name is None:
        if len(monitor.vms) != 1:
            raise CheckpointError("several VMs: name the one to take (--checkpoint-vm or --migrate-vm NAME)")
        return monitor.vms[0]
    found = [vm for vm in monitor.vms if vm.config.name == name]
    if not found:
        raise CheckpointError(f"no VM named {name!r} (the VMs: {', '.join(vm.config.name for vm in monitor.vms)})")
    return found[0]


def capture_ok(vm) -> None:
    """CheckpointError unless this version can checkpoint `vm`: shadow or direct paging."""
    if vm.config.paging not in PAGING:
        raise CheckpointError(f"checkpoints under --paging {vm.config.paging} are not supported yet")


def capture(monitor, vm=None) -> tuple[dict, bytes]:
    """(state, ram) of `vm` (default: the only one), switched in to be
    captured (Monitor.switch_in), stopped between two instructions; ram is the VM's
    frames, then its disk's sectors not in the image file
    (snapshot._disk_state).  CheckpointError for what this version cannot save."""
    vm = vm or vm_named(monitor, None)
    capture_ok(vm)
    monitor.switch_in(vm)               # the machine CPU is the VM's, in host mode
    monitor.bring_devices_current()    # the time discipline: a device is read only when current
    machine, config = monitor.machine, vm.config
    frames, ram = _guest_ram(vm)
    disk, sectors = snapshot._disk_state(vm.disk)
    state = {
        "config": {"image": config.image, "paging": config.paging, "mem": config.mem, "name": config.name,
                   "modules": list(config.modules), "cmdline": config.cmdline,
                   "shadow": [config.shadow.flood, config.shadow.unsync, config.shadow.prefetch],
                   "nested_pwc": config.nested.pwc, "prefixed": len(monitor.vms) > 1},
        "machine": {"mem_size": machine_mem_at(vm.physmap.p2m[0], config.mem), "first_frame": vm.physmap.p2m[0],
                    "cpu": _cpu_of(monitor, vm),
                    "timer": _timer(machine.timer), "irq_pending": machine.irq.pending},
        "monitor": {"resumed_at": list(monitor._resumed_at), "walks_at": list(monitor._walks_at),
                    "slice_end": monitor._slice_end, "timer_target": monitor._timer_target},
        "vm": {"vcpu": list(vm.vcpu.cr), "state": str(vm.state), "entering_trap": vm.entering_trap,
               **{name: getattr(vm, name) for name in VM_COUNTS}, "exits": dict(vm.exits),
               "counters": dict(vm.mode.counters), "timer": _timer(vm.timer), "uart": vm.uart.ctrl,
               "input": vm.console_in.remaining().hex(), "irq_pending": vm.irq.pending,
               "marks": [[marker, _stats_record(stats)] for marker, stats in vm.marks],
               "blk": None if vm.blk is None else vm.blk.saved_state(),
               "blk_counts": None if vm.blk_counts is None else asdict(vm.blk_counts)},
        "disk": disk,
        "direct": _direct_state(vm),
        "symbols": {"names": vm.symbols.names(), "ranges": [list(r) for r in vm.symbols.ranges()]},
        "frames": frames,
    }
    return state, ram + sectors


def machine_mem_at(first_frame: int, mem: int) -> int:
    """The machine RAM a restored VM of `mem` bytes needs with its frames from
    machine frame `first_frame` on: what it would have alone (launch.machine_mem_for)
    with the frames below it kept out of use."""
    from vmm.launch import machine_mem_for
    from vmm.monitor.monitor import VMM_FRAMES
    return machine_mem_for([VmConfig("", "shadow", mem + (first_frame - VMM_FRAMES) * PAGE_SIZE)])


def _cpu_of(monitor, vm) -> dict:
    """The machine CPU's state as the VM's: waiting in wfi if the VM is (the
    machine waits only when every VM does, so one out of several may be
    switched in waiting while another ran)."""
    cpu = monitor.cpu.checkpoint()
    if vm.state == VmState.WAITING:
        cpu["state"] = "waiting"
    return cpu


def _direct_state(vm) -> dict | None:
    """Direct paging's accounting and the guest frames of the pages the VM
    shares with the VMM (None under shadow paging)."""
    if vm.config.paging != "direct":
        return None
    gfn = vm.physmap.gfn
    return {**vm.mode.direct.saved_state(),
            "pvcpu": None if vm.pvcpu is None else gfn(vm.pvcpu.page >> PAGE_SHIFT),
            "ring": None if vm.blk is None else gfn(vm.blk.ring >> PAGE_SHIFT)}


def _guest_ram(vm) -> tuple[list[int], bytes]:
    """The guest frames that hold a nonzero byte, and their bytes (guest-physical order)."""
    ram, frames, data = vm.mode.memory.ram, [], []
    for gfn, mfn in enumerate(vm.physmap.p2m):
        frame = bytes(ram[mfn << PAGE_SHIFT:(mfn + 1) << PAGE_SHIFT])
        if frame != snapshot.ZERO_FRAME:
            frames.append(gfn)
            data.append(frame)
    return frames, b"".join(data)


def _timer(timer) -> dict:
    return {"ctrl": timer.ctrl, "interval": timer.interval, "deadline": timer.deadline, "fired": timer.fired}


def _stats_record(stats: VmStats) -> dict:
    record = asdict(stats)
    record.pop("phases", None)
    return record


# --- checking ----------------------------------------------------------------------------------

def check_state(path: str, state: dict, ram_size: int) -> None:
    """Every field of a VMM checkpoint's state.json of the right type and in
    range, the frame list matching ram.bin: CheckpointError naming the field.
    (Direct paging's accounting is checked again by rebuilding it: restore.)"""
    def need(ok: bool, field: str) -> None:
        if not ok:
            raise CheckpointError(f"{path}: part state.json: field {field} is missing or out of range")
    config, machine, monitor, vm = (state.get(key) for key in ("config", "machine", "monitor", "vm"))
    need(all(isinstance(part, dict) for part in (config, machine, monitor, vm)), "config, machine, monitor or vm")
    _check_config(need, config)
    _check_machine(need, machine, monitor, config["mem"])
    _check_vm(need, vm, config["paging"])
    frames, now = config["mem"] >> PAGE_SHIFT, machine["cpu"]["ticks"]
    _check_direct(need, state.get("direct"), config["paging"], frames)
    sectors = snapshot.check_disk(need, state.get("disk"), now)
    has_ring = state["direct"] is not None and state["direct"]["ring"] is not None
    _check_ring(need, vm, state.get("disk") is not None, has_ring, now)
    snapshot.check_symbols(need, state.get("symbols"))
    snapshot.check_frames(need, state.get("frames"), frames, ram_size - sectors * SECTOR_SIZE)


def _check_config(need, config: dict) -> None:
    """The VM's configuration: image, paging, RAM, name, modules, command line, shadow options."""
    need(isinstance(config.get("image"), str) and isinstance(config.get("name"), str)
         and isinstance(config.get("cmdline"), str) and isinstance(config.get("modules"), list)
         and all(isinstance(module, str) for module in config["modules"]), "config")
    need(config.get("paging") in PAGING, "config.paging")
    need(isinstance(config.get("prefixed", False), bool), "config.prefixed")
    need(isinstance(config.get("nested_pwc", True), bool), "config.nested_pwc")
    need(_is_int(config.get("mem"), PAGE_SIZE, snapshot.MAX_RAM) and config["mem"] % PAGE_SIZE == 0, "config.mem")
    need(isinstance(config.get("shadow"), list) and len(config["shadow"]) == 3
         and all(isinstance(flag, bool) for flag in config["shadow"]), "config.shadow")


def _check_machine(need, machine: dict, monitor: dict, mem: int) -> None:
    """The machine the VM runs on (RAM, its first frame, CPU, timer, lines)
    and the monitor's bookkeeping of its time."""
    from vmm.monitor.monitor import VMM_FRAMES
    first = machine.get("first_frame", VMM_FRAMES)
    need(_is_int(first, VMM_FRAMES, snapshot.MAX_RAM >> PAGE_SHIFT)
         and (first << PAGE_SHIFT) + mem <= snapshot.MAX_RAM, "machine.first_frame")
    need(machine.get("mem_size") == machine_mem_at(first, mem),
         "machine.mem_size (not the machine the VM's RAM calls for)")
    snapshot.check_cpu(need, machine.get("cpu"), "machine.cpu")
    snapshot.check_timer(need, machine.get("timer"), "machine.timer")
    need(_is_int(machine.get("irq_pending"), 0, M32), "machine.irq_pending")
    need(all(isinstance(monitor.get(key), list) and len(monitor[key]) == 2
             and all(_is_int(value, 0, TICKS_MAX) for value in monitor[key]) for key in ("resumed_at", "walks_at"))
         and _is_int(monitor.get("slice_end"), 0, TICKS_MAX)
         and (monitor.get("timer_target") is None or _is_int(monitor["timer_target"], 0, TICKS_MAX)), "monitor")
    cpu = machine["cpu"]
    need(monitor["resumed_at"][0] <= cpu["ticks"] and monitor["resumed_at"][1] <= cpu["counters"]["ticks_idle"]
         and monitor["walks_at"][0] <= cpu["counters"]["tlb_misses"]
         and monitor["walks_at"][1] <= cpu["counters"]["walk_refs"], "monitor (ahead of the machine)")


def _check_vm(need, vm: dict, paging: str) -> None:
    """The VM: virtual CPU, state, counts, exits, its paging mode's counters, timer, UART, input, marks."""
    need(isinstance(vm.get("vcpu"), list) and len(vm["vcpu"]) == snapshot.NUM_CRS
         and all(_is_int(value, 0, M32) for value in vm["vcpu"]), "vm.vcpu")
    need(vm.get("state") in (VmState.RUNNABLE.value, VmState.WAITING.value), "vm.state")
    need(isinstance(vm.get("entering_trap"), bool), "vm.entering_trap")
    need(all(_is_int(vm.get(name), 0, TICKS_MAX) for name in VM_COUNTS), "vm counts")
    need(_counts(vm.get("exits")), "vm.exits")
    need(_counts(vm.get("counters")) and set(vm["counters"]) <= COUNTERS[paging]
         and (paging != "direct" or set(vm["counters"]) == COUNTERS["direct"]), "vm.counters")
    snapshot.check_timer(need, vm.get("timer"), "vm.timer")
    need(_is_int(vm.get("uart"), 0, 1), "vm.uart")
    need(isinstance(vm.get("input"), str) and len(vm["input"]) <= 2 * snapshot.MAX_JSON and _is_hex(vm["input"]),
         "vm.input")
    need(_is_int(vm.get("irq_pending"), 0, M32), "vm.irq_pending")
    need(isinstance(vm.get("marks"), list) and len(vm["marks"]) <= snapshot.MAX_MARKS and all(
        isinstance(mark, list) and len(mark) == 2 and _is_int(mark[0], 0, M32) and _stats_ok(mark[1])
        for mark in vm["marks"]), "vm.marks")


def _check_direct(need, saved, paging: str, frames: int) -> None:
    """Direct paging's saved accounting, in guest frames below `frames`
    (None under shadow and nested paging): pins, both bases (a VM runs with
    its tables from boot on), at most two holds, frame types and counts,
    shared pages."""
    if paging != "direct":
        need(saved is None, f"direct (a {paging}-paging VM has none)")
        return
    def gfn(value) -> bool:
        return _is_int(value, 0, frames - 1)
    need(isinstance(saved, dict) and set(saved) == DIRECT_KEYS, "direct")
    pins = saved["pins"]
    need(isinstance(pins, list) and all(isinstance(pin, list) and len(pin) == 2 and gfn(pin[0])
                                        and pin[1] in (TYPE_L1, TYPE_L2) for pin in pins)
         and [pin[0] for pin in pins] == sorted({pin[0] for pin in pins}), "direct.pins")
    need(isinstance(saved["bases"], list) and len(saved["bases"]) == 2 and all(map(gfn, saved["bases"])),
         "direct.bases")
    held = saved["held"]
    need(isinstance(held, list) and len(held) <= 2 and all(map(gfn, held)) and held == sorted(held), "direct.held")
    typed = saved["frames"]
    need(isinstance(typed, list) and all(
        isinstance(entry, list) and len(entry) == 4 and gfn(entry[0]) and entry[1] in FRAME_TYPES
        and _is_int(entry[2], 0, TICKS_MAX) and _is_int(entry[3], 0, TICKS_MAX) for entry in typed)
         and [entry[0] for entry in typed] == sorted({entry[0] for entry in typed}), "direct.frames")
    need(saved["pvcpu"] is None or gfn(saved["pvcpu"]), "direct.pvcpu")
    need(saved["ring"] is None or gfn(saved["ring"]), "direct.ring")


def _check_ring(need, vm: dict, has_disk: bool, has_ring: bool, now: int) -> None:
    """The block ring's state (with a registered ring only, on a disk) and its figures."""
    need(has_disk or not has_ring, "direct.ring (a ring without a disk)")
    need(vm.get("blk") is None if not has_ring else blkback.state_ok(vm.get("blk"), now), "vm.blk")
    counts = vm.get("blk_counts")
    need(counts is None or (isinstance(counts, dict) and set(counts) == {"requests", "bytes", "notifications"}
                            and all(_is_int(value, 0, TICKS_MAX) for value in counts.values())), "vm.blk_counts")


def _counts(table) -> bool:
    """{name: count} with string names and counts in range."""
    return isinstance(table, dict) and len(table) <= 4096 and all(
        isinstance(key, str) and _is_int(count, 0, TICKS_MAX) for key, count in table.items())


def _stats_ok(record) -> bool:
    """A phase mark's VmStats: its fields but phases, each of its kind."""
    names = {field.name for field in fields(VmStats)} - {"phases"}
    if not isinstance(record, dict) or set(record) != names:
        return False
    strings, tables = ("paging", "state", "message"), ("exits", "counters", "io")
    return (all(isinstance(record[name], str) for name in strings)
            and all(_counts(record[name]) for name in tables)
            and (record["exit_code"] is None or _is_int(record["exit_code"], 0, 255))
            and all(_is_int(record[name], 0, TICKS_MAX) for name in names - set(strings) - set(tables)
                    - {"exit_code"}))


# --- restoring ---------------------------------------------------------------------------------

def restore(path: str, state: dict, ram: bytes, console_out, cost_model):
    """A fresh Monitor whose one VM is in the checkpoint's state, ready for
    Monitor.run_on (state and ram as snapshot.read checked them; `path` for
    messages).  CheckpointError, nothing run and the disk released, for a
    disk file changed since or direct-paging accounting that does not
    re-validate."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.monitor.monitor import VMM_FRAMES, Monitor
    saved, machine_state, vm_state = state["config"], state["machine"], state["vm"]
    disk = state.get("disk")
    config = VmConfig(saved["image"], saved["paging"], saved["mem"], saved["name"], tuple(saved["modules"]),
                      saved["cmdline"], ShadowOptions(*saved["shadow"]), disk and disk["path"],
                      bool(disk and disk["read_only"]), nested.NestedOptions(saved.get("nested_pwc", True)))
    monitor = Monitor(machine_state["mem_size"], console_out=console_out,
                      console_in=ConsoleInput(bytes.fromhex(vm_state["input"])), cost_model=cost_model)
    vm = monitor.restore_vm(config, saved.get("prefixed", False), machine_state.get("first_frame", VMM_FRAMES))
    for index, gfn in enumerate(state["frames"]):
        mfn = vm.physmap.p2m[gfn]
        vm.mode.memory.ram[mfn << PAGE_SHIFT:(mfn + 1) << PAGE_SHIFT] = ram[index * PAGE_SIZE:(index + 1) * PAGE_SIZE]
    try:
        _restore_disk_and_tables(path, monitor, vm, state, ram)
    except CheckpointError:
        monitor.release_disks(write_back=False)
        raise
    _restore_vm(vm, vm_state)
    vm.symbols = Symbolizer([tuple(entry) for entry in state["symbols"]["names"]],
                            [tuple(entry) for entry in state["symbols"]["ranges"]])
    _set_timer(monitor.machine.timer, machine_state["timer"])
    monitor.machine.irq.pending = machine_state["irq_pending"]
    cpu = machine_state["cpu"]
    monitor.resume_vm(vm, cpu, tuple(state["monitor"]["resumed_at"]), tuple(state["monitor"]["walks_at"]),
                      state["monitor"]["slice_end"], state["monitor"]["timer_target"],
                      user_flags=cpu["cr"][CR_STATUS] & STATUS_UF)
    return monitor


def _restore_disk_and_tables(path: str, monitor, vm, state: dict, ram: bytes) -> None:
    """The VM's disk (its file checked: snapshot.open_disk) and device state,
    direct paging's accounting (rebuilt and compared), the shared pages
    re-registered, the ring's state.  Raises CheckpointError."""
    saved = state["vm"]
    image = snapshot.open_disk(path, state, ram)
    if image is not None:
        vm.attach_disk(image)
        vm.disk.restore(state["disk"])
    vm.blk_counts = None if saved["blk_counts"] is None else BlockCounts(**saved["blk_counts"])
    if state["direct"] is not None:
        _revalidate(path, monitor, vm, state["direct"])
    if vm.blk is not None:
        vm.blk.restore(saved["blk"])


def _revalidate(path: str, monitor, vm, saved: dict) -> None:
    """Rebuild direct paging's accounting through the validator, re-register
    the shared pages through the hypercalls' checks, and refuse a checkpoint
    whose saved types, counts or holds differ from the rebuilt ones."""
    paging = vm.mode.direct
    try:
        paging.revalidate([tuple(pin) for pin in saved["pins"]], tuple(saved["bases"]),
                          [gfn for gfn, kind, _, _ in saved["frames"] if kind == TYPE_L1])
        monitor.restore_pv_pages(vm, saved["pvcpu"], saved["ring"])
    except Rejected as refusal:
        raise CheckpointError(f"{path}: part state.json: field direct: the validator refuses the saved tables "
                              f"(in ram.bin) or shared pages: {refusal.reason}") from None
    rebuilt = paging.saved_state()
    if rebuilt["held"] != saved["held"]:
        raise CheckpointError(f"{path}: part state.json: field direct.held: the shared pages give holds on guest "
                              f"frames {rebuilt['held']}, the checkpoint says {saved['held']}")
    if rebuilt["frames"] != saved["frames"]:
        gfn, derived, claimed = _first_difference(rebuilt["frames"], saved["frames"])
        raise CheckpointError(f"{path}: part state.json: field direct.frames: guest frame {gfn} is {derived} "
                              f"after re-validation, the checkpoint says {claimed}")


def _first_difference(rebuilt: list[list], saved: list[list]) -> tuple[int, str, str]:
    """(gfn, rebuilt, saved) of the first guest frame whose [gfn, type,
    type_count, ref_count] entries differ, each worded for a message."""
    mine, theirs = ({entry[0]: entry[1:] for entry in entries} for entries in (rebuilt, saved))
    gfn = min(number for number in mine.keys() | theirs.keys() if mine.get(number) != theirs.get(number))
    def word(entry) -> str:
        return "untyped, no references" if entry is None else f"{entry[0]}, type count {entry[1]}, refs {entry[2]}"
    return gfn, word(mine.get(gfn)), word(theirs.get(gfn))


def _restore_vm(vm, saved: dict) -> None:
    """The VM's virtual CPU, devices, exits and figures from `saved`."""
    vm.vcpu.cr[:] = saved["vcpu"]
    vm.state, vm.entering_trap = VmState(saved["state"]), saved["entering_trap"]
    for name in VM_COUNTS:
        setattr(vm, name, saved[name])
    vm.exits.update(saved["exits"])
    vm.mode.counters.update(saved["counters"])
    _set_timer(vm.timer, saved["timer"])
    vm.uart.ctrl, vm.irq.pending = saved["uart"], saved["irq_pending"]
    vm.marks = [(marker, VmStats(**record)) for marker, record in saved["marks"]]


def _set_timer(timer, saved: dict) -> None:
    timer.ctrl, timer.interval, timer.deadline, timer.fired = (saved[key] for key in ("ctrl", "interval",
                                                                                      "deadline", "fired"))



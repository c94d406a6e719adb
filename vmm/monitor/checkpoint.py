"""Checkpoints of a VM under the VMM with shadow paging (docs/snapshot.md),
in the file format of vmm/machine/snapshot.py with the engine "vmm".

What is saved is the VM's state and the monitor's bookkeeping of its time:
the machine CPU (the VM runs on it: its registers, pc, machine status and
counters), the machine's own timer, the virtual CPU, the VM's devices, its
exits and figures, and its guest-physical RAM (frames that are not all zero).
What a cache can rebuild is not: the shadow tables (the restored VM starts
with an empty shadow, and hidden faults refill it: its counters go on from
the saved ones and show the refill), the TLB and the translated blocks.

So far: one VM, shadow paging, no disk.  Direct paging (frame types, pins and
counts to re-validate, never trust) comes next.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from asm.isa import CR_STATUS, PAGE_SHIFT, PAGE_SIZE, STATUS_UF
from vmm.machine import snapshot
from vmm.machine.snapshot import CheckpointError, _is_hex, _is_int
from vmm.machine.symbols import Symbolizer
from vmm.monitor.shadow import COUNTER_KEYS, ShadowOptions
from vmm.monitor.vm import VmConfig, VmState, VmStats

ENGINE = "vmm"
VM_COUNTS = ("instructions", "emulated", "tlb_misses", "walk_refs", "stalled", "reflections", "disk_mmio_exits")
TICKS_MAX = snapshot.TICKS_MAX
M32 = 0xFFFFFFFF


def capture_ok(monitor) -> None:
    """CheckpointError unless this version can checkpoint `monitor`: one VM, shadow paging, no disk."""
    if len(monitor.vms) != 1:
        raise CheckpointError("checkpoints of several VMs are not supported yet")
    if monitor.vms[0].config.paging != "shadow" or monitor.vms[0].disk is not None:
        raise CheckpointError("checkpoints under the VMM support one VM with shadow paging and no disk, so far")


def capture(monitor) -> tuple[dict, bytes]:
    """(state, ram) of `monitor`'s only VM, stopped between two instructions.
    CheckpointError for what this version cannot save."""
    capture_ok(monitor)
    (vm,) = monitor.vms
    machine, config = monitor.machine, vm.config
    frames, ram = _guest_ram(vm)
    state = {
        "config": {"image": config.image, "mem": config.mem, "name": config.name, "modules": list(config.modules),
                   "cmdline": config.cmdline, "shadow": [config.shadow.flood, config.shadow.unsync,
                                                         config.shadow.prefetch]},
        "machine": {"mem_size": machine.memory.size, "cpu": monitor.cpu.checkpoint(),
                    "timer": _timer(machine.timer), "irq_pending": machine.irq.pending},
        "monitor": {"resumed_at": list(monitor._resumed_at), "walks_at": list(monitor._walks_at),
                    "slice_end": monitor._slice_end, "timer_target": monitor._timer_target},
        "vm": {"vcpu": list(vm.vcpu.cr), "state": str(vm.state), "entering_trap": vm.entering_trap,
               **{name: getattr(vm, name) for name in VM_COUNTS}, "exits": dict(vm.exits),
               "counters": dict(vm.mode.counters), "timer": _timer(vm.timer), "uart": vm.uart.ctrl,
               "input": vm.console_in.remaining().hex(), "irq_pending": vm.irq.pending,
               "marks": [[marker, _stats_record(stats)] for marker, stats in vm.marks]},
        "symbols": {"names": vm.symbols.names(), "ranges": [list(r) for r in vm.symbols.ranges()]},
        "frames": frames,
    }
    return state, ram


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
    range, the frame list matching ram.bin: CheckpointError naming the field."""
    def need(ok: bool, field: str) -> None:
        if not ok:
            raise CheckpointError(f"{path}: part state.json: field {field} is missing or out of range")
    config, machine, monitor, vm = (state.get(key) for key in ("config", "machine", "monitor", "vm"))
    need(all(isinstance(part, dict) for part in (config, machine, monitor, vm)), "config, machine, monitor or vm")
    need(isinstance(config.get("image"), str) and isinstance(config.get("name"), str)
         and isinstance(config.get("cmdline"), str) and isinstance(config.get("modules"), list)
         and all(isinstance(module, str) for module in config["modules"]), "config")
    need(_is_int(config.get("mem"), PAGE_SIZE, snapshot.MAX_RAM) and config["mem"] % PAGE_SIZE == 0, "config.mem")
    need(isinstance(config.get("shadow"), list) and len(config["shadow"]) == 3
         and all(isinstance(flag, bool) for flag in config["shadow"]), "config.shadow")
    from vmm.launch import machine_mem_for
    need(machine.get("mem_size") == machine_mem_for([VmConfig("", "shadow", config["mem"])]),
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
    need(isinstance(vm.get("vcpu"), list) and len(vm["vcpu"]) == snapshot.NUM_CRS
         and all(_is_int(value, 0, M32) for value in vm["vcpu"]), "vm.vcpu")
    need(vm.get("state") in (VmState.RUNNABLE.value, VmState.WAITING.value), "vm.state")
    need(isinstance(vm.get("entering_trap"), bool), "vm.entering_trap")
    need(all(_is_int(vm.get(name), 0, TICKS_MAX) for name in VM_COUNTS), "vm counts")
    need(_counts(vm.get("exits")), "vm.exits")
    need(_counts(vm.get("counters")) and set(vm["counters"]) <= set(COUNTER_KEYS), "vm.counters")
    snapshot.check_timer(need, vm.get("timer"), "vm.timer")
    need(_is_int(vm.get("uart"), 0, 1), "vm.uart")
    need(isinstance(vm.get("input"), str) and len(vm["input"]) <= 2 * snapshot.MAX_JSON and _is_hex(vm["input"]),
         "vm.input")
    need(_is_int(vm.get("irq_pending"), 0, M32), "vm.irq_pending")
    need(isinstance(vm.get("marks"), list) and len(vm["marks"]) <= snapshot.MAX_MARKS and all(
        isinstance(mark, list) and len(mark) == 2 and _is_int(mark[0], 0, M32) and _stats_ok(mark[1])
        for mark in vm["marks"]), "vm.marks")
    snapshot.check_symbols(need, state.get("symbols"))
    snapshot.check_frames(need, state.get("frames"), config["mem"] >> PAGE_SHIFT, ram_size)


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

def restore(state: dict, ram: bytes, console_out, cost_model):
    """A fresh Monitor whose one VM is in the checkpoint's state, ready for
    Monitor.run_on (state and ram as snapshot.read checked them)."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.monitor.monitor import Monitor
    saved, machine_state, vm_state = state["config"], state["machine"], state["vm"]
    config = VmConfig(saved["image"], "shadow", saved["mem"], saved["name"], tuple(saved["modules"]),
                      saved["cmdline"], ShadowOptions(*saved["shadow"]))
    monitor = Monitor(machine_state["mem_size"], console_out=console_out,
                      console_in=ConsoleInput(bytes.fromhex(vm_state["input"])), cost_model=cost_model)
    vm = monitor.restore_vm(config)
    for index, gfn in enumerate(state["frames"]):
        mfn = vm.physmap.p2m[gfn]
        vm.mode.memory.ram[mfn << PAGE_SHIFT:(mfn + 1) << PAGE_SHIFT] = ram[index * PAGE_SIZE:(index + 1) * PAGE_SIZE]
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



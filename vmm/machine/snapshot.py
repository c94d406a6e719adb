"""Checkpoints of the bare machine: the file format (docs/snapshot.md), what is
saved, and restoring it into a fresh Machine.

A checkpoint is a zip archive (zlib's deflate, through the standard zipfile)
of three parts, each checked by the SHA-256 the manifest gives:

    manifest.json   {"format": FORMAT, "version": VERSION, "engine": "bare",
                     "parts": {name: {"sha256": hex, "size": bytes}}}
    state.json      the CPU, the devices, the console input not yet read, the
                    phase marks, the symbols for messages, the RAM's frame list
    ram.bin         the RAM frames that are not all zero, in frame-list order

What a cache can rebuild is not saved: the TLB and the translated blocks start
empty after a restore (the machine may drop TLB entries at any time,
docs/isa.md "TLB"), so the TLB-miss and walk counts of a resumed run differ
from an uninterrupted run's; instructions, ticks, output and exit code do not.

A checkpoint file is untrusted input: every part is size-limited before it is
read, checksummed, and every field is checked for type and range before the
machine is touched (CheckpointError, naming the file and the part).  The same
container holds the simulator's checkpoints (engine "sim",
vmm/monitor/sim_checkpoint.py: the same state.json, made, checked and
restored by the functions here) and VMM checkpoints (engine "vmm",
vmm/monitor/checkpoint.py, with its own state checker).

A disk (docs/snapshot.md "A disk"): the device is saved whole; its contents
stay in the image file, written back at the checkpoint, which the state
names by path, size and SHA-256 (with --disk-readonly, the sectors the guest
wrote follow the frames in ram.bin).  Restoring opens and locks that file and
refuses it unless its contents are the checkpoint's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import asdict, fields

from asm.files import write_atomically
from asm.isa import MAX_RAM, NUM_REGS, PAGE_SHIFT, PAGE_SIZE
from vmm.machine.counters import Counters
from vmm.machine.devices.disk import (CTRL_IRQ_ENABLE, DISK_LATENCY_TICKS, SECTOR_SIZE, STATUS_BUSY,
                                      DiskImage)
from vmm.machine.errors import DiskError, KiteError
from vmm.machine.outcome import CpuState
from vmm.machine.stats import MachineStats
from vmm.machine.symbols import Symbolizer

FORMAT = "kite-checkpoint"
VERSION = 1
PARTS = ("manifest.json", "state.json", "ram.bin")
MAX_JSON = 16 << 20               # bytes of a JSON part
MAX_MARKS = 4096                  # phase marks kept
MAX_SYMBOLS = 1 << 20
M32 = 0xFFFFFFFF
TICKS_MAX = 1 << 62
NUM_CRS = 8
ZERO_FRAME = bytes(PAGE_SIZE)
STATS_TABLES = ("exceptions", "interrupts", "io")    # MachineStats's {name: count} fields


class CheckpointError(KiteError):
    """A checkpoint that cannot be written, or read back and trusted."""


# --- capturing ---------------------------------------------------------------------------------

def capture(machine) -> tuple[dict, bytes]:
    """(state.json's content, ram.bin) of the bare `machine`, stopped between
    two instructions, its disk (if any) written back by the run's end.
    CheckpointError for what this version cannot save."""
    return capture_machine(machine, machine.cpu.checkpoint())


def capture_machine(machine, cpu: dict) -> tuple[dict, bytes]:
    """(state, ram) of a Kite32 machine, bare or simulated: anything with the
    bare Machine's memory, cmdline, symbols, timer, uart, irq, bus, marks and
    disk; `cpu` its CPU in CPU.checkpoint()'s form.  CheckpointError for a
    disk without an image file."""
    frames, ram = _sparse_ram(machine.memory.ram)
    disk, sectors = _disk_state(machine.disk)
    symbols = machine.symbols
    state = {
        "mem_size": machine.memory.size,
        "cmdline": machine.cmdline,
        "cpu": cpu,
        "timer": {"ctrl": machine.timer.ctrl, "interval": machine.timer.interval,
                  "deadline": machine.timer.deadline, "fired": machine.timer.fired},
        "uart": {"ctrl": machine.uart.ctrl},
        "input": machine.uart.console_input.remaining().hex(),
        "irq_pending": machine.irq.pending,
        "bus": {"reads": machine.bus.reads, "writes": machine.bus.writes},
        "marks": [[marker, _stats_record(stats)] for marker, stats in machine.marks],
        "symbols": {"names": list(symbols.names()), "ranges": [list(r) for r in symbols.ranges()]},
        "frames": frames,
        "disk": disk,
    }
    return state, ram + sectors


def _disk_state(disk) -> tuple[dict | None, bytes]:
    """The disk's part of state.json (None without a disk) and the bytes of
    the sectors the guest wrote that its file does not hold yet (after the
    run's write-back: only a read-only disk's), in ascending order."""
    if disk is None:
        return None, b""
    image = disk.image
    if image.path is None:
        raise CheckpointError("a disk without an image file cannot be checkpointed")
    sectors = sorted(image.dirty)
    return ({"path": os.path.abspath(image.path), "read_only": image.read_only, "sha256": image.sha256(),
             "capacity": image.capacity, "sectors": sectors, **disk.checkpoint()},
            b"".join(image.read_sectors(sector, 1) for sector in sectors))


def _sparse_ram(ram: bytearray) -> tuple[list[int], bytes]:
    """The numbers of the frames that hold a nonzero byte, and those frames' bytes."""
    frames = [number for number in range(len(ram) >> PAGE_SHIFT)
              if ram[number << PAGE_SHIFT:(number + 1) << PAGE_SHIFT] != ZERO_FRAME]
    return frames, b"".join(bytes(ram[number << PAGE_SHIFT:(number + 1) << PAGE_SHIFT]) for number in frames)


def _stats_record(stats: MachineStats) -> dict:
    """A phase mark's figures as JSON (dict keys as strings)."""
    record = asdict(stats)
    record.pop("phases", None)
    return record


def write(path: str, state: dict, ram: bytes, engine: str = "bare") -> None:
    """Write the checkpoint file of `engine` ("bare"; "sim":
    vmm/monitor/sim_checkpoint.py; "vmm": vmm/monitor/checkpoint.py)
    atomically.  CheckpointError if it cannot be written."""
    parts = {"state.json": json.dumps(state, separators=(",", ":")).encode(), "ram.bin": ram}
    manifest = {"format": FORMAT, "version": VERSION, "engine": engine,
                "parts": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                          for name, data in parts.items()}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))
        for name, data in parts.items():
            archive.writestr(name, data)
    try:
        write_atomically(path, buffer.getvalue())
    except OSError as error:
        raise CheckpointError(f"{path}: cannot write the checkpoint: {error.strerror}") from None


# --- reading and checking ----------------------------------------------------------------------

def read(path: str, checkers: dict | None = None) -> tuple[str, dict, bytes]:
    """(engine, state, ram) of the checkpoint at `path`, every part checked
    (module doc): state.json by the engine's checker, `checkers` giving
    engine -> check(path, state, ram size) (default: only "bare",
    check_state).  CheckpointError naming the file and the part."""
    checkers = checkers or {"bare": check_state}
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path}: not a Kite checkpoint (not a readable zip archive: {error})") from None
    with archive:
        names = set(archive.namelist())
        if names != set(PARTS):
            raise CheckpointError(f"{path}: the archive holds {sorted(names)}, not the parts {list(PARTS)}")
        manifest = _json(path, "manifest.json", _part(path, archive, "manifest.json", MAX_JSON))
        _check_manifest(path, manifest, checkers)
        declared = manifest["parts"]
        state = _json(path, "state.json", _part(path, archive, "state.json", MAX_JSON, declared["state.json"]))
        checkers[manifest["engine"]](path, state, declared["ram.bin"]["size"])   # before RAM: its size is bounded
        ram = _part(path, archive, "ram.bin", declared["ram.bin"]["size"], declared["ram.bin"])
    return manifest["engine"], state, ram


def _part(path: str, archive: zipfile.ZipFile, name: str, limit: int, declared: dict | None = None) -> bytes:
    """The bytes of one part, at most `limit` (checked before reading) and, if
    `declared`, of the manifest's size and SHA-256."""
    info = archive.getinfo(name)
    if info.file_size > limit or (declared is not None and info.file_size != declared["size"]):
        raise CheckpointError(f"{path}: part {name}: {info.file_size} bytes, more than allowed or than the "
                              f"manifest says")
    try:
        data = archive.read(name)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise CheckpointError(f"{path}: part {name} is corrupt: {error}") from None
    if len(data) != info.file_size:
        raise CheckpointError(f"{path}: part {name} is truncated")
    if declared is not None and hashlib.sha256(data).hexdigest() != declared["sha256"]:
        raise CheckpointError(f"{path}: part {name} does not match its checksum in the manifest")
    return data


def _json(path: str, name: str, data: bytes) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: part {name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: part {name} is not a JSON object")
    return value


def _check_manifest(path: str, manifest: dict, checkers: dict) -> None:
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: part manifest.json: not a {FORMAT} file")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{path}: part manifest.json: version {manifest.get('version')!r}; this Kite "
                              f"reads version {VERSION}")
    if manifest.get("engine") not in checkers:
        raise CheckpointError(f"{path}: part manifest.json: engine {manifest.get('engine')!r}; this Kite "
                              f"restores {', '.join(repr(name) for name in checkers)} checkpoints")
    parts = manifest.get("parts")
    if not isinstance(parts, dict) or set(parts) != {"state.json", "ram.bin"} or not all(
            isinstance(entry, dict) and _is_int(entry.get("size"), 0, MAX_RAM)
            and isinstance(entry.get("sha256"), str) for entry in parts.values()):
        raise CheckpointError(f"{path}: part manifest.json: its parts table is malformed")


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_state(path: str, state: dict, ram_size: int) -> None:
    """Every field of a bare (or sim) checkpoint's state.json of the right
    type and in range, the frame list and the disk's sectors matching
    ram.bin: CheckpointError naming the field."""
    def need(ok: bool, field: str) -> None:
        if not ok:
            raise CheckpointError(f"{path}: part state.json: field {field} is missing or out of range")
    need(_is_int(state.get("mem_size"), PAGE_SIZE, MAX_RAM) and state["mem_size"] % PAGE_SIZE == 0, "mem_size")
    need(isinstance(state.get("cmdline"), str), "cmdline")
    check_cpu(need, state.get("cpu"), "cpu")
    ticks = state["cpu"]["ticks"]
    check_timer(need, state.get("timer"), "timer", ticks)
    need(isinstance(state.get("uart"), dict) and _is_int(state["uart"].get("ctrl"), 0, 1), "uart")
    need(isinstance(state.get("input"), str) and len(state["input"]) <= 2 * MAX_JSON and _is_hex(state["input"]),
         "input")
    need(_is_int(state.get("irq_pending"), 0, M32), "irq_pending")
    need(isinstance(state.get("bus"), dict) and all(_is_int(state["bus"].get(key), 0, TICKS_MAX)
                                                    for key in ("reads", "writes")), "bus")
    marks = state.get("marks")
    need(isinstance(marks, list) and len(marks) <= MAX_MARKS and all(
        isinstance(mark, list) and len(mark) == 2 and _is_int(mark[0], 0, M32) and _stats_ok(mark[1])
        for mark in marks), "marks")
    check_symbols(need, state.get("symbols"))
    sectors = check_disk(need, state.get("disk"), ticks)
    check_frames(need, state.get("frames"), state["mem_size"] >> PAGE_SHIFT, ram_size - sectors * SECTOR_SIZE)


def check_cpu(need, cpu, field: str) -> None:
    """A CPU.checkpoint(): registers, pc, ticks, a resumable state, counters."""
    need(isinstance(cpu, dict), field)
    need(isinstance(cpu.get("regs"), list) and len(cpu["regs"]) == NUM_REGS
         and all(_is_int(value, 0, M32) for value in cpu["regs"]) and cpu["regs"][0] == 0, f"{field}.regs")
    need(isinstance(cpu.get("cr"), list) and len(cpu["cr"]) == NUM_CRS
         and all(_is_int(value, 0, M32) for value in cpu["cr"]), f"{field}.cr")
    need(_is_int(cpu.get("pc"), 0, M32), f"{field}.pc")
    need(_is_int(cpu.get("ticks"), 0, TICKS_MAX), f"{field}.ticks")
    need(cpu.get("state") in (CpuState.RUNNING.value, CpuState.WAITING.value), f"{field}.state")
    need(isinstance(cpu.get("entering_trap"), bool), f"{field}.entering_trap")
    counters = cpu.get("counters")
    need(isinstance(counters, dict), f"{field}.counters")
    for counter in fields(Counters):
        value = counters.get(counter.name)
        if counter.name in ("exceptions", "interrupts"):
            need(isinstance(value, dict) and len(value) <= 256 and all(
                key.isdigit() and _is_int(count, 0, TICKS_MAX) for key, count in value.items()),
                f"{field}.counters.{counter.name}")
        else:
            need(_is_int(value, 0, TICKS_MAX), f"{field}.counters.{counter.name}")


def check_timer(need, timer, field: str, now: int = -1) -> None:
    """A timer's saved state: control, interval, next expiry (after `now`,
    the tick of its clock, if given: a checkpoint falls after every expiry
    due, and one long past would fire at every tick since), expiries."""
    need(isinstance(timer, dict) and _is_int(timer.get("ctrl"), 0, 3) and _is_int(timer.get("interval"), 0, M32)
         and (timer.get("deadline") is None or _is_int(timer.get("deadline"), now + 1, TICKS_MAX))
         and _is_int(timer.get("fired"), 0, TICKS_MAX), field)


def check_disk(need, disk, now: int) -> int:
    """A disk's saved state (None or absent: no disk; docs/snapshot.md "A
    disk"): the image's absolute path, size and SHA-256, the saved sectors
    (ascending, on the disk), the registers, a command in flight exactly
    when BUSY, completing within DISK_LATENCY_TICKS after `now`, the
    figures.  Returns how many sectors follow the frames in ram.bin."""
    if disk is None:
        return 0
    need(isinstance(disk, dict), "disk")
    need(isinstance(disk.get("path"), str) and os.path.isabs(disk["path"]) and "\0" not in disk["path"],
         "disk.path")
    need(isinstance(disk.get("read_only"), bool), "disk.read_only")
    need(isinstance(disk.get("sha256"), str) and re.fullmatch("[0-9a-f]{64}", disk["sha256"]) is not None,
         "disk.sha256")
    need(_is_int(disk.get("capacity"), 1, M32), "disk.capacity")
    sectors = disk.get("sectors")
    need(isinstance(sectors, list) and all(_is_int(sector, 0, disk["capacity"] - 1) for sector in sectors)
         and sectors == sorted(set(sectors)), "disk.sectors")
    need(all(_is_int(disk.get(key), 0, M32) for key in ("sector", "dma_addr", "count")), "disk registers")
    need(_is_int(disk.get("ctrl"), 0, CTRL_IRQ_ENABLE), "disk.ctrl")
    pending, busy = disk.get("pending"), disk.get("status") == STATUS_BUSY
    need(pending is None or (isinstance(pending, list) and len(pending) == 4
                             and all(_is_int(value, 0, M32) for value in pending)), "disk.pending")
    need(_is_int(disk.get("status"), 0, 7) and (busy or not disk["status"] & STATUS_BUSY)
         and busy == (pending is not None), "disk.status (BUSY exactly while a command is in flight)")
    need(disk.get("completes_at") is None if pending is None
         else _is_int(disk.get("completes_at"), now + 1, now + DISK_LATENCY_TICKS), "disk.completes_at")
    need(all(_is_int(disk.get(key), 0, TICKS_MAX) for key in ("requests", "bytes")), "disk figures")
    return len(sectors)


def check_symbols(need, symbols) -> None:
    """The symbols for messages: [name, address] pairs and address ranges."""
    need(isinstance(symbols, dict) and isinstance(symbols.get("names"), list)
         and len(symbols["names"]) <= MAX_SYMBOLS and all(
             isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and _is_int(entry[1], 0, M32)
             for entry in symbols["names"])
         and isinstance(symbols.get("ranges"), list) and all(
             isinstance(entry, list) and len(entry) == 2 and all(_is_int(v, 0, 1 << 33) for v in entry)
             for entry in symbols["ranges"]), "symbols")


def check_frames(need, frames, count: int, ram_size: int) -> None:
    """The frames stored: ascending, each below `count`, ram.bin's size."""
    need(isinstance(frames, list) and all(_is_int(frame, 0, count - 1) for frame in frames)
         and frames == sorted(set(frames)), "frames")
    need(len(frames) * PAGE_SIZE == ram_size, "frames (it does not match ram.bin)")


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _stats_ok(record) -> bool:
    """A phase mark's figures: MachineStats's fields (but phases), `reason` a
    string, `exit_code` an int or None, the tables {name: count}, every other
    figure a count."""
    if not isinstance(record, dict) or set(record) != {field.name for field in fields(MachineStats)} - {"phases"}:
        return False
    for name, value in record.items():
        if name == "reason":
            ok = isinstance(value, str)
        elif name == "exit_code":
            ok = value is None or _is_int(value, 0, 255)
        elif name in STATS_TABLES:
            ok = isinstance(value, dict) and len(value) <= 256 and all(
                isinstance(key, str) and _is_int(count, 0, TICKS_MAX) for key, count in value.items())
        else:
            ok = _is_int(value, 0, TICKS_MAX)
        if not ok:
            return False
    return True


# --- restoring ---------------------------------------------------------------------------------

def restore(path: str, state: dict, ram: bytes, console_out, cost_model):
    """A fresh Machine in the checkpoint's state (state and ram as read()
    checked them for the checkpoint at `path`), its disk opened as
    open_disk does.  CheckpointError (nothing run) for a disk that is not
    the checkpoint's."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.machine.machine import Machine
    machine = Machine(state["mem_size"], disk=open_disk(path, state, ram),
                      console_in=ConsoleInput(bytes.fromhex(state["input"])),
                      console_out=console_out, cmdline=state["cmdline"], cost_model=cost_model)
    restore_devices(machine, state, ram)
    machine.restored_symbols = symbols_of(state)
    machine.cpu.restore(state["cpu"])
    return machine


def open_disk(path: str, state: dict, ram: bytes) -> DiskImage | None:
    """The disk image the checkpoint at `path` names (None without one),
    opened and locked as in a run, the saved sectors laid over it (marked
    dirty: they go on to the run's write-back).  CheckpointError, the lock
    released, for a file that cannot be opened or whose contents are not
    the checkpoint's."""
    saved = state.get("disk")
    if saved is None:
        return None
    try:
        image = DiskImage.open(saved["path"], read_only=saved["read_only"])
    except DiskError as error:
        raise CheckpointError(f"{path}: part state.json: field disk: {error}") from None
    if image.capacity == saved["capacity"]:
        sectors = ram[len(state["frames"]) * PAGE_SIZE:]
        for index, sector in enumerate(saved["sectors"]):
            image.write_sectors(sector, sectors[index * SECTOR_SIZE:(index + 1) * SECTOR_SIZE])
        if image.sha256() == saved["sha256"]:
            return image
    image.close()
    raise CheckpointError(f"{path}: part state.json: field disk: {saved['path']} does not hold the disk of the "
                          f"checkpoint (its size or SHA-256 differs: changed since the checkpoint?)")


def restore_devices(machine, state: dict, ram: bytes) -> None:
    """Put a fresh machine, bare or simulated (capture_machine's kind), in
    the checkpoint's state but for its CPU and symbols: RAM, timer, UART,
    interrupt lines, device-access counts, phase marks, the disk device."""
    for index, frame in enumerate(state["frames"]):
        machine.memory.ram[frame << PAGE_SHIFT:(frame + 1) << PAGE_SHIFT] = ram[index * PAGE_SIZE:
                                                                              (index + 1) * PAGE_SIZE]
    timer = state["timer"]
    machine.timer.ctrl, machine.timer.interval = timer["ctrl"], timer["interval"]
    machine.timer.deadline, machine.timer.fired = timer["deadline"], timer["fired"]
    machine.uart.ctrl = state["uart"]["ctrl"]
    machine.irq.pending = state["irq_pending"]
    machine.bus.reads, machine.bus.writes = state["bus"]["reads"], state["bus"]["writes"]
    machine.marks = [(marker, _stats_from(record)) for marker, record in state["marks"]]
    if machine.disk is not None:
        machine.disk.restore(state["disk"])


def symbols_of(state: dict) -> Symbolizer:
    """The checkpoint's symbols for messages."""
    return Symbolizer([tuple(entry) for entry in state["symbols"]["names"]],
                      [tuple(entry) for entry in state["symbols"]["ranges"]])


def _stats_from(record: dict) -> MachineStats:
    """A phase mark's MachineStats back from JSON (dict keys as JSON made them)."""
    return MachineStats(**record)

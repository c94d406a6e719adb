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
container holds VMM checkpoints (engine "vmm", vmm/monitor/checkpoint.py, with
its own state checker).  Not yet covered: a machine with a disk and the
simulator (refused with a clear message).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, fields

from asm.files import write_atomically
from asm.isa import MAX_RAM, NUM_REGS, PAGE_SHIFT, PAGE_SIZE
from vmm.machine.counters import Counters
from vmm.machine.errors import KiteError
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
    """(state.json's content, ram.bin) of `machine`, stopped between two
    instructions.  CheckpointError for what this version cannot save."""
    if machine.disk is not None:
        raise CheckpointError("checkpoints of a machine with a disk are not supported yet")
    frames, ram = _sparse_ram(machine.memory.ram)
    symbols = machine.symbols
    state = {
        "mem_size": machine.memory.size,
        "cmdline": machine.cmdline,
        "cpu": machine.cpu.checkpoint(),
        "timer": {"ctrl": machine.timer.ctrl, "interval": machine.timer.interval,
                  "deadline": machine.timer.deadline, "fired": machine.timer.fired},
        "uart": {"ctrl": machine.uart.ctrl},
        "input": machine.uart.console_input.remaining().hex(),
        "irq_pending": machine.irq.pending,
        "bus": {"reads": machine.bus.reads, "writes": machine.bus.writes},
        "marks": [[marker, _stats_record(stats)] for marker, stats in machine.marks],
        "symbols": {"names": list(symbols.names()), "ranges": [list(r) for r in symbols.ranges()]},
        "frames": frames,
    }
    return state, ram


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
    """Write the checkpoint file of `engine` ("bare"; "vmm": vmm/monitor/checkpoint.py)
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
    """Every field of a bare checkpoint's state.json of the right type and in
    range, the frame list matching ram.bin: CheckpointError naming the field."""
    def need(ok: bool, field: str) -> None:
        if not ok:
            raise CheckpointError(f"{path}: part state.json: field {field} is missing or out of range")
    need(_is_int(state.get("mem_size"), PAGE_SIZE, MAX_RAM) and state["mem_size"] % PAGE_SIZE == 0, "mem_size")
    need(isinstance(state.get("cmdline"), str), "cmdline")
    check_cpu(need, state.get("cpu"), "cpu")
    check_timer(need, state.get("timer"), "timer")
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
    check_frames(need, state.get("frames"), state["mem_size"] >> PAGE_SHIFT, ram_size)


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


def check_timer(need, timer, field: str) -> None:
    """A timer's saved state: control, interval, next expiry, expiries."""
    need(isinstance(timer, dict) and _is_int(timer.get("ctrl"), 0, 3) and _is_int(timer.get("interval"), 0, M32)
         and (timer.get("deadline") is None or _is_int(timer.get("deadline"), 0, TICKS_MAX))
         and _is_int(timer.get("fired"), 0, TICKS_MAX), field)


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

def restore(state: dict, ram: bytes, console_out, cost_model):
    """A fresh Machine in the checkpoint's state (state and ram as read() checked them)."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.machine.machine import Machine
    machine = Machine(state["mem_size"], console_in=ConsoleInput(bytes.fromhex(state["input"])),
                      console_out=console_out, cmdline=state["cmdline"], cost_model=cost_model)
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
    machine.restored_symbols = Symbolizer([tuple(entry) for entry in state["symbols"]["names"]],
                                          [tuple(entry) for entry in state["symbols"]["ranges"]])
    machine.cpu.restore(state["cpu"])
    return machine


def _stats_from(record: dict) -> MachineStats:
    """A phase mark's MachineStats back from JSON (dict keys as JSON made them)."""
    return MachineStats(**record)

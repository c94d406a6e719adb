"""Checkpoint and resume on the bare machine (docs/snapshot.md): resuming is
invisible to the guest wherever the checkpoint falls, and a bad checkpoint
file is refused with a clear error and nothing run.  With a disk, on the bare
machine and under simulation: a command in flight completes as it would
have, the disk ends with the same bytes, and a disk changed since the
checkpoint is refused."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kite.build import GUESTOS, build_all
from vmm.cli import resume, run
from vmm.launch import ATTACH
from vmm.machine.devices.disk import DISK_CMD, DISK_LATENCY_TICKS

BUILD = GUESTOS / "build"
WORKLOAD = [str(BUILD / "kernel-native.elf"), "--module", str(BUILD / "user-pingpong.elf"),
            "--module", str(BUILD / "user-pong.elf")]
POINTS = 20


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(output, exit code, instructions) of the workload run without a stop."""
    build_all()
    stats = tmp_path_factory.mktemp("whole") / "stats.json"
    result = CliRunner().invoke(run, ["--bare", *WORKLOAD, "--stats-json", str(stats)])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes, result.exit_code, json.loads(stats.read_text())["instructions"]


def checkpoint_and_resume(tmp_path: Path, at: int) -> tuple[bytes, int, int, dict]:
    """Run to instruction `at`, write the checkpoint, resume it: (both outputs
    joined, the resumed exit code, its instruction count, the checkpoint's state)."""
    checkpoint, stats = tmp_path / f"{at}.ckpt", tmp_path / f"{at}.json"
    first = CliRunner().invoke(run, ["--bare", *WORKLOAD, "--checkpoint-at", str(at), "--checkpoint", str(checkpoint)])
    assert first.exit_code == 0 and f"checkpoint at instruction {at} written" in first.stderr, first.stderr
    with zipfile.ZipFile(checkpoint) as archive:
        state = json.loads(archive.read("state.json"))
    second = CliRunner().invoke(resume, [str(checkpoint), "--stats-json", str(stats)])
    return (first.stdout_bytes + second.stdout_bytes, second.exit_code, json.loads(stats.read_text())["instructions"],
            state)


@pytest.mark.slow
def test_resuming_anywhere_gives_the_uninterrupted_runs_output_exit_code_and_instruction_count(uninterrupted,
                                                                                              tmp_path):
    """Twenty points spread over the run, each nudged by a different odd amount so that they fall in
    every kind of code; among them, points inside the kernel's trap path and points with an
    interrupt line asserted but not yet taken."""
    output, exit_code, instructions = uninterrupted
    states = []
    for index in range(POINTS):
        at = max(1, instructions * index // POINTS + 7919 * index % 997)
        joined, code, count, state = checkpoint_and_resume(tmp_path, at)
        assert (joined, code, count) == (output, exit_code, instructions), f"checkpoint at {at}"
        states.append(state)
    in_trap_path = [state for state in states if symbol_at(state, state["cpu"]["pc"]).startswith("trap")]
    pending = [state for state in states if state["irq_pending"]]
    assert in_trap_path and pending


def symbol_at(state: dict, pc: int) -> str:
    """The name of the symbol covering `pc` among the checkpoint's symbols ('' if none)."""
    names = [name for name, address in sorted(state["symbols"]["names"], key=lambda entry: entry[1])
             if address <= pc]
    return names[-1] if names else ""


def test_a_guest_ending_before_the_checkpoint_ends_as_usual(uninterrupted, tmp_path):
    output, exit_code, instructions = uninterrupted
    checkpoint = tmp_path / "late.ckpt"
    result = CliRunner().invoke(run, ["--bare", *WORKLOAD, "--checkpoint-at", str(instructions + 10),
                                      "--checkpoint", str(checkpoint)])
    assert (result.stdout_bytes, result.exit_code) == (output, exit_code)
    assert "ended before instruction" in result.stderr and not checkpoint.exists()


def test_a_checkpoint_is_small_and_sparse(uninterrupted, tmp_path):
    """A guest OS workload in 16 MiB of RAM: under 2 MiB, for the frames that are all zero are left out and
    the rest compressed (the kernel's free list puts a link word in nearly every free frame, so most frames
    are stored: the compression does the most)."""
    _, _, instructions = uninterrupted
    checkpoint = tmp_path / "c.ckpt"
    CliRunner().invoke(run, ["--bare", *WORKLOAD, "--checkpoint-at", str(instructions // 2),
                             "--checkpoint", str(checkpoint)])
    assert checkpoint.stat().st_size < 2 << 20
    with zipfile.ZipFile(checkpoint) as archive:
        frames = json.loads(archive.read("state.json"))["frames"]
    assert 0 < len(frames) < (16 << 20) // 4096


# --- bad checkpoint files --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(uninterrupted, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.ckpt"
    CliRunner().invoke(run, ["--bare", *WORKLOAD, "--checkpoint-at", "5000", "--checkpoint", str(path)])
    return path.read_bytes()


def rebuilt(good: bytes, change) -> bytes:
    """The good checkpoint with its parts passed through change(parts) and re-zipped
    (the manifest's checksums left as they were unless `change` fixes them)."""
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    change(parts)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def with_state(field_path: list, value):
    """A change that sets one state.json field and re-signs it in the manifest (a tampered file)."""
    def change(parts):
        state = json.loads(parts["state.json"])
        target = state
        for key in field_path[:-1]:
            target = target[key]
        target[field_path[-1]] = value
        parts["state.json"] = json.dumps(state).encode()
        manifest = json.loads(parts["manifest.json"])
        manifest["parts"]["state.json"] = {"sha256": hashlib.sha256(parts["state.json"]).hexdigest(),
                                           "size": len(parts["state.json"])}
        parts["manifest.json"] = json.dumps(manifest).encode()
    return change


def manifest_field(key: str, value):
    def change(parts):
        manifest = json.loads(parts["manifest.json"])
        manifest[key] = value
        parts["manifest.json"] = json.dumps(manifest).encode()
    return change


def flip_ram_byte(parts):
    ram = bytearray(parts["ram.bin"])
    ram[100] ^= 0xFF
    parts["ram.bin"] = bytes(ram)


BAD = {
    "truncated": (lambda good: good[:len(good) // 2], "not a Kite checkpoint"),
    "not a zip": (lambda good: b"hello" * 100, "not a Kite checkpoint"),
    "empty": (lambda good: b"", "not a Kite checkpoint"),
    "ram changed": (lambda good: rebuilt(good, flip_ram_byte), "part ram.bin does not match its checksum"),
    "part missing": (lambda good: rebuilt(good, lambda parts: parts.pop("ram.bin")), "not the parts"),
    "part added": (lambda good: rebuilt(good, lambda parts: parts.update(extra=b"x")), "not the parts"),
    "wrong version": (lambda good: rebuilt(good, manifest_field("version", 99)), "part manifest.json: version 99"),
    "wrong format": (lambda good: rebuilt(good, manifest_field("format", "zip")), "not a kite-checkpoint file"),
    "manifest not JSON": (lambda good: rebuilt(good, lambda parts: parts.update({"manifest.json": b"{"})),
                          "part manifest.json is not valid JSON"),
    "pc too large": (lambda good: rebuilt(good, with_state(["cpu", "pc"], 1 << 40)), "field cpu.pc"),
    "r0 not zero": (lambda good: rebuilt(good, with_state(["cpu", "regs", 0], 5)), "field cpu.regs"),
    "too few registers": (lambda good: rebuilt(good, with_state(["cpu", "regs"], [0] * 3)), "field cpu.regs"),
    "bad state": (lambda good: rebuilt(good, with_state(["cpu", "state"], "flying")), "field cpu.state"),
    "frames mismatch": (lambda good: rebuilt(good, with_state(["frames"], [0])), "field frames"),
    "frame beyond RAM": (lambda good: rebuilt(good, with_state(["mem_size"], 4096)), "field frames"),
    "huge RAM": (lambda good: rebuilt(good, with_state(["mem_size"], 1 << 40)), "field mem_size"),
    "input not hex": (lambda good: rebuilt(good, with_state(["input"], "zz")), "field input"),
    "timer control": (lambda good: rebuilt(good, with_state(["timer", "ctrl"], 99)), "field timer"),
    "bad phase figures": (lambda good: rebuilt(good, with_state(["marks"], [[1, {"instructions": "many"}]])),
                          "field marks"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_checkpoint_is_refused_naming_the_file_and_nothing_runs(good, tmp_path, kind):
    make, complaint = BAD[kind]
    path = tmp_path / "bad.ckpt"
    path.write_bytes(make(good))
    result = CliRunner().invoke(resume, [str(path)])
    assert result.exit_code == 2 and result.stdout_bytes == b"", result.stderr
    assert result.stderr.startswith(f"kite: error: {path}: ") and complaint in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_checkpoint_options_are_checked(tmp_path):
    for arguments, complaint in ((["--checkpoint-at", "5"], "go together"),
                                 (["--checkpoint", "x.ckpt"], "go together")):
        result = CliRunner().invoke(run, ["--bare", *WORKLOAD, *arguments])
        assert result.exit_code == 2 and complaint in result.stderr
    image = str(BUILD / "kernel-native.elf")
    result = CliRunner().invoke(run, ["--vm", image, "--vm", image, "--checkpoint-at", "5",
                                      "--checkpoint", str(tmp_path / "x.ckpt")])
    assert result.exit_code == 2 and "name the VM --checkpoint-at takes: --checkpoint-vm NAME" in result.stderr
    result = CliRunner().invoke(resume, [str(tmp_path / "missing.ckpt")])
    assert result.exit_code == 2 and "no such checkpoint file" in result.stderr


# --- a disk ----------------------------------------------------------------------------------------

DISKTEST = [str(BUILD / "kernel-native.elf"), "--module", str(BUILD / "user-disktest.elf")]
DISK_BYTES = 320 * 512               # larger than the 256 sectors disktest writes


def record_commands(starts: list[int]):
    """A launch.ATTACH hook recording, at each disk command (the CMD store), the instructions
    retired before it: the disk's clock at the store (its completion tick less the latency) less
    the idle ticks so far."""
    def attach(engine) -> None:
        disk, write = engine.disk, engine.disk.write

        def recording(offset: int, width: int, value: int) -> None:
            write(offset, width, value)
            if offset == DISK_CMD:
                starts.append(disk.next_event() - DISK_LATENCY_TICKS - engine.stats().ticks_idle)
        disk.write = recording
    return attach


@pytest.fixture(scope="module", params=["bare", "sim"])
def disk_reference(request, tmp_path_factory):
    """(engine, output, exit code, instructions, the disk's final bytes, the instruction counts
    before each disk command) of disktest on a fresh zero disk, uninterrupted."""
    build_all()
    folder = tmp_path_factory.mktemp(f"disk-{request.param}")
    disk, stats, starts = folder / "disk.img", folder / "stats.json", []
    disk.write_bytes(bytes(DISK_BYTES))
    token = ATTACH.set(record_commands(starts))
    try:
        result = CliRunner().invoke(run, [f"--{request.param}", *DISKTEST, "--disk", str(disk),
                                          "--stats-json", str(stats)])
    finally:
        ATTACH.reset(token)
    assert result.exit_code == 0 and b"disktest: ok" in result.stdout_bytes, result.stderr
    return (request.param, result.stdout_bytes, result.exit_code, json.loads(stats.read_text())["instructions"],
            disk.read_bytes(), starts)


def disk_checkpoint(tmp_path: Path, engine: str, at: int, *options: str) -> tuple[Path, Path, bytes, dict]:
    """disktest on a fresh zero disk to instruction `at`, checkpointed: (the checkpoint, the disk,
    the output so far, the checkpoint's state)."""
    disk, path = tmp_path / f"{at}.img", tmp_path / f"{at}.ckpt"
    disk.write_bytes(bytes(DISK_BYTES))
    first = CliRunner().invoke(run, [f"--{engine}", *DISKTEST, "--disk", str(disk), *options,
                                     "--checkpoint-at", str(at), "--checkpoint", str(path)])
    assert first.exit_code == 0 and f"checkpoint at instruction {at} written" in first.stderr, first.stderr
    with zipfile.ZipFile(path) as archive:
        return path, disk, first.stdout_bytes, json.loads(archive.read("state.json"))


@pytest.mark.slow
def test_a_checkpoint_with_a_disk_command_in_flight_resumes_to_the_same_output_and_disk_bytes(disk_reference,
                                                                                              tmp_path):
    """Six points right after a disk command started (after its CMD store, or one instruction
    later, before the driver's wfi: the command is in flight, latched and not yet completed),
    reads and writes among them, and two points between commands; under simulation also a point
    right after the last command's wfi, where the simulator stops waiting with the command in
    flight (the bare machine's loop does not stop in wfi: it idles on to the completion).  Each
    resumed run completes the command on its tick and moves its data then: the same output, exit
    code and instructions as the uninterrupted run, and the same final disk bytes."""
    engine, output, exit_code, instructions, disk_bytes, starts = disk_reference
    in_flight = [starts[index] + 1 + index % 2 for index in (0, 3, 9, 14, 20, len(starts) - 1)]
    if engine == "sim":
        in_flight.append(starts[-1] + 3)
    for at in in_flight + [instructions // 3, instructions * 2 // 3]:
        path, disk, before, state = disk_checkpoint(tmp_path, engine, at)
        assert state["disk"]["pending"] is not None or at not in in_flight, f"no command in flight at {at}"
        stats = tmp_path / f"{at}.json"
        second = CliRunner().invoke(resume, [str(path), "--stats-json", str(stats), "--disk", str(disk)])
        assert (before + second.stdout_bytes, second.exit_code) == (output, exit_code), f"checkpoint at {at}"
        assert json.loads(stats.read_text())["instructions"] == instructions, f"checkpoint at {at}"
        assert disk.read_bytes() == disk_bytes, f"checkpoint at {at}"


def test_the_other_machine_resumes_a_checkpoint_with_a_command_in_flight_to_the_same_end(disk_reference, tmp_path):
    """The bare machine's and the simulator's checkpoints differ only in the manifest's engine
    (docs/snapshot.md "Under machine simulation"): each goes on on the other machine.  The point
    is the last command's: under simulation right after its wfi (the simulator stops waiting, the
    command in flight), on the bare machine right after its CMD store."""
    engine, output, exit_code, instructions, disk_bytes, starts = disk_reference
    other = "bare" if engine == "sim" else "sim"
    path, disk, before, state = disk_checkpoint(tmp_path, engine, starts[-1] + (3 if engine == "sim" else 1))
    assert state["disk"]["pending"] is not None
    assert state["cpu"]["state"] == ("waiting" if engine == "sim" else "running")
    path.write_bytes(rebuilt(path.read_bytes(), manifest_field("engine", other)))
    stats = tmp_path / "other.json"
    second = CliRunner().invoke(resume, [str(path), "--stats-json", str(stats), "--disk", str(disk)])
    assert (before + second.stdout_bytes, second.exit_code) == (output, exit_code), second.stderr
    assert json.loads(stats.read_text())["instructions"] == instructions
    assert disk.read_bytes() == disk_bytes


def test_a_read_only_disk_keeps_the_guests_writes_in_the_checkpoint(disk_reference, tmp_path):
    """With --disk-readonly nothing is written back: the sectors the guest wrote travel in the
    checkpoint, so the resumed guest reads back what it wrote, and the file stays all zero."""
    engine, output, exit_code, instructions, _, _ = disk_reference
    path, disk, before, state = disk_checkpoint(tmp_path, engine, instructions // 2, "--disk-readonly")
    assert state["disk"]["read_only"] and state["disk"]["sectors"]
    second = CliRunner().invoke(resume, [str(path), "--disk", str(disk)])
    assert (before + second.stdout_bytes, second.exit_code) == (output, exit_code), second.stderr
    assert disk.read_bytes() == bytes(DISK_BYTES)


def test_a_disk_changed_or_gone_since_the_checkpoint_is_refused_and_nothing_runs(disk_reference, tmp_path):
    engine, _, _, instructions, _, _ = disk_reference
    path, disk, _, _ = disk_checkpoint(tmp_path, engine, instructions // 2)
    original = disk.read_bytes()
    disk.write_bytes(original[:-1] + b"x")
    changed = CliRunner().invoke(resume, [str(path), "--disk", str(disk)])
    assert changed.exit_code == 2 and changed.stdout_bytes == b"", changed.stderr
    assert changed.stderr.startswith(f"kite: error: {path}: part state.json: field disk: {disk} does not hold")
    assert disk.read_bytes() == original[:-1] + b"x"          # nothing ran, nothing was written back
    disk.unlink()
    gone = CliRunner().invoke(resume, [str(path), "--disk", str(disk)])
    assert gone.exit_code == 2 and "field disk: " in gone.stderr and "cannot read disk image" in gone.stderr


def test_the_disk_is_the_one_the_user_names_never_the_checkpoints(disk_reference, tmp_path):
    """A checkpoint is untrusted and the resumed run writes its disk, so the checkpoint does not choose
    the file: without --disk the resume is refused (naming the saved path), with a file other than the
    checkpoint's disk it is refused by the SHA-256, and --disk for a checkpoint without one is refused."""
    engine, output, exit_code, instructions, disk_bytes, _ = disk_reference
    path, disk, before, _ = disk_checkpoint(tmp_path, engine, instructions // 2)
    unnamed = CliRunner().invoke(resume, [str(path)])
    assert unnamed.exit_code == 2 and unnamed.stdout_bytes == b""
    assert f"the checkpoint was taken with a disk ({disk}): name its image with --disk FILE" in unnamed.stderr
    other = tmp_path / "other.img"
    other.write_bytes(bytes(len(disk.read_bytes())))
    wrong = CliRunner().invoke(resume, [str(path), "--disk", str(other)])
    assert wrong.exit_code == 2 and "does not hold the disk of the checkpoint" in wrong.stderr
    assert other.read_bytes() == bytes(len(disk.read_bytes()))
    moved = tmp_path / "moved.img"
    disk.rename(moved)
    second = CliRunner().invoke(resume, [str(path), "--disk", str(moved)])
    assert (before + second.stdout_bytes, second.exit_code) == (output, exit_code), second.stderr
    assert moved.read_bytes() == disk_bytes
    plain = tmp_path / "plain.ckpt"
    CliRunner().invoke(run, ["--bare", *WORKLOAD, "--checkpoint-at", "20000", "--checkpoint", str(plain)])
    given = CliRunner().invoke(resume, [str(plain), "--disk", str(moved)])
    assert given.exit_code == 2 and "taken without a disk" in given.stderr


@pytest.fixture(scope="module")
def in_flight(disk_reference, tmp_path_factory) -> bytes:
    """A checkpoint with a disk command in flight."""
    engine, _, _, _, _, starts = disk_reference
    path, _, _, state = disk_checkpoint(tmp_path_factory.mktemp("flight"), engine, starts[3] + 1)
    assert state["disk"]["pending"] is not None
    return path.read_bytes()


def completing(delay):
    """A change moving the command in flight's completion to the checkpoint's tick + delay."""
    def change(parts):
        state = json.loads(parts["state.json"])
        with_state(["disk", "completes_at"], state["cpu"]["ticks"] + delay)(parts)
    return change


BAD_DISK = {
    "relative path": (with_state(["disk", "path"], "disk.img"), "field disk.path"),
    "checksum not hex": (with_state(["disk", "sha256"], "z" * 64), "field disk.sha256"),
    "sector beyond the disk": (with_state(["disk", "sectors"], [320]), "field disk.sectors"),
    "sectors not in ram.bin": (with_state(["disk", "sectors"], [0]), "field frames"),
    "not busy in flight": (with_state(["disk", "status"], 4), "field disk.status"),
    "busy with nothing in flight": (with_state(["disk", "pending"], None), "field disk.status"),
    "short command": (with_state(["disk", "pending"], [1, 0, 0]), "field disk.pending"),
    "completed in the past": (completing(0), "field disk.completes_at"),
    "completing too late": (completing(DISK_LATENCY_TICKS + 1), "field disk.completes_at"),
    "control register": (with_state(["disk", "ctrl"], 2), "field disk.ctrl"),
}


@pytest.mark.parametrize("kind", list(BAD_DISK))
def test_a_tampered_disk_state_is_refused_and_nothing_runs(in_flight, tmp_path, kind):
    change, complaint = BAD_DISK[kind]
    path = tmp_path / "bad.ckpt"
    path.write_bytes(rebuilt(in_flight, change))
    result = CliRunner().invoke(resume, [str(path)])
    assert result.exit_code == 2 and result.stdout_bytes == b"", result.stderr
    assert result.stderr.startswith(f"kite: error: {path}: part state.json: ") and complaint in result.stderr
    assert "Traceback" not in result.stderr

"""Checkpoint and resume on the bare machine (docs/snapshot.md): resuming is
invisible to the guest wherever the checkpoint falls, and a bad checkpoint
file is refused with a clear error and nothing run."""

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
    result = CliRunner().invoke(run, ["--sim", *WORKLOAD, "--checkpoint-at", "5",
                                      "--checkpoint", str(tmp_path / "x.ckpt")])
    assert result.exit_code == 2 and "--bare and --paging shadow, so far" in result.stderr
    result = CliRunner().invoke(resume, [str(tmp_path / "missing.ckpt")])
    assert result.exit_code == 2 and "no such checkpoint file" in result.stderr

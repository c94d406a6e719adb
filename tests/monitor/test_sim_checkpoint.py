"""Checkpoint and resume under machine simulation (`--sim`, docs/snapshot.md "Under machine
simulation"): invisible to the guest wherever the checkpoint falls, down to every figure (the
simulator has no TLB, and its caches count what they stand for); the bare machine and the
simulator each resume the other's state to the same end; a bad sim checkpoint is refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kite.build import GUESTOS, build_all
from tests.machine.test_snapshot import manifest_field, rebuilt, symbol_at, with_state
from vmm.cli import resume, run

BUILD = GUESTOS / "build"
# user-echo copies its console input out, 64 bytes a read: the input is long enough that the
# run (about 400,000 instructions, 40% of them booting) sees some forty timer interrupts
INPUT = "".join(f"line {number}: the quick brown fox jumps over the lazy dog\n" for number in range(200))
WORKLOAD = [str(BUILD / "kernel-native.elf"), "--module", str(BUILD / "user-echo.elf")]
POINTS = 20


def invoke(command, arguments: list[str]):
    return CliRunner().invoke(command, arguments)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(output, exit code, figures) of the workload run under --sim without a stop."""
    build_all()
    folder = tmp_path_factory.mktemp("whole")
    (folder / "input.txt").write_text(INPUT)
    result = invoke(run, ["--sim", *WORKLOAD, "--input", str(folder / "input.txt"),
                          "--stats-json", str(folder / "stats.json")])
    assert result.exit_code == 0 and result.stdout_bytes == INPUT.encode(), result.stderr
    return result.stdout_bytes, result.exit_code, json.loads((folder / "stats.json").read_text())


def checkpoint(tmp_path: Path, engine: str, at: int) -> tuple[Path, bytes, dict]:
    """Run on `engine` (--sim or --bare) to instruction `at` and write the checkpoint: its
    path, the output so far, its state."""
    (tmp_path / "input.txt").write_text(INPUT)
    path = tmp_path / f"{engine}-{at}.ckpt"
    first = invoke(run, [f"--{engine}", *WORKLOAD, "--input", str(tmp_path / "input.txt"),
                         "--checkpoint-at", str(at), "--checkpoint", str(path)])
    assert first.exit_code == 0 and f"checkpoint at instruction {at} written" in first.stderr, first.stderr
    with zipfile.ZipFile(path) as archive:
        return path, first.stdout_bytes, json.loads(archive.read("state.json"))


def resumed(tmp_path: Path, path: Path) -> tuple[bytes, int, dict]:
    """`kite resume PATH`: its output, exit code and figures."""
    stats = tmp_path / f"{path.name}.json"
    second = invoke(resume, [str(path), "--stats-json", str(stats)])
    return second.stdout_bytes, second.exit_code, json.loads(stats.read_text())


@pytest.mark.slow
def test_resuming_a_simulation_anywhere_gives_the_uninterrupted_runs_output_exit_code_and_figures(uninterrupted,
                                                                                                tmp_path):
    """Twenty points: fourteen over the run, each nudged by a different odd amount, and six just
    after timer expiries (the next expiry a spread checkpoint saved, plus 1 to 243 instructions),
    where the guest is in the kernel's trap path or has the timer's line asserted with interrupts
    off.  Among them points in the trap path, with an interrupt pending, and with the console
    input half read.  Every figure is the uninterrupted run's, walks included: the simulator has no
    TLB, and a remembered walk is counted as the walk it stands for, so the empty caches of the
    resumed simulator change no count."""
    output, exit_code, whole = uninterrupted

    def resumed_state(at: int) -> dict:
        path, before, state = checkpoint(tmp_path, "sim", at)
        after, code, figures = resumed(tmp_path, path)
        assert (before + after, code, figures) == (output, exit_code, whole), f"checkpoint at {at}"
        return state
    spread = [resumed_state(max(1, whole["instructions"] * index // 14 + 7919 * index % 997)) for index in range(14)]
    expiries = [state["timer"]["deadline"] for state in spread if state["timer"]["deadline"] is not None]
    near = [resumed_state(deadline + offset) for deadline, offset in zip(expiries[-6:], (1, 3, 9, 27, 81, 243))]
    states = spread + near
    assert len(states) == POINTS
    assert [state for state in states if symbol_at(state, state["cpu"]["pc"]).startswith("trap")]
    assert [state for state in states if state["irq_pending"]]
    assert [state for state in states if 0 < len(state["input"]) // 2 < len(INPUT)]


@pytest.mark.parametrize("at", [5000, 200_000, 330_000])
@pytest.mark.parametrize("engine, other", [("sim", "bare"), ("bare", "sim")])
def test_the_bare_machine_and_the_simulator_resume_each_others_checkpoints_to_the_same_end(uninterrupted,
                                                                                           tmp_path, at,
                                                                                           engine, other):
    """The two engines' state.json is one schema: a checkpoint whose manifest names the other engine
    is resumed by the other implementation, from the middle of the run, a differential test of the
    two: the same output, exit code, instructions and ticks as the uninterrupted run."""
    output, exit_code, whole = uninterrupted
    path, before, _ = checkpoint(tmp_path, engine, at)
    path.write_bytes(rebuilt(path.read_bytes(), manifest_field("engine", other)))
    after, code, figures = resumed(tmp_path, path)
    assert (before + after, code) == (output, exit_code)
    assert (figures["instructions"], figures["ticks"]) == (whole["instructions"], whole["ticks"])


# --- bad sim checkpoints ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(uninterrupted, tmp_path_factory) -> bytes:
    """A sim checkpoint in the middle of echo's reading, with a timer running."""
    path, _, state = checkpoint(tmp_path_factory.mktemp("good"), "sim", 250_000)
    assert state["timer"]["deadline"] is not None
    return path.read_bytes()


def past_deadline(parts):
    """The timer's next expiry moved before the checkpoint's tick (it would fire at every tick since)."""
    state = json.loads(parts["state.json"])
    with_state(["timer", "deadline"], state["cpu"]["ticks"] - 5)(parts)


BAD = {
    "truncated": (lambda good: good[:-100], "not a Kite checkpoint"),
    "unknown engine": (lambda good: rebuilt(good, manifest_field("engine", "qemu")), "engine 'qemu'"),
    "pc a string": (lambda good: rebuilt(good, with_state(["cpu", "pc"], "0x1000")), "field cpu.pc"),
    "pc negative": (lambda good: rebuilt(good, with_state(["cpu", "pc"], -4)), "field cpu.pc"),
    "register too wide": (lambda good: rebuilt(good, with_state(["cpu", "regs", 5], 1 << 32)), "field cpu.regs"),
    "register a float": (lambda good: rebuilt(good, with_state(["cpu", "regs", 5], 1.5)), "field cpu.regs"),
    "control register a bool": (lambda good: rebuilt(good, with_state(["cpu", "cr", 0], True)), "field cpu.cr"),
    "ticks negative": (lambda good: rebuilt(good, with_state(["cpu", "ticks"], -1)), "field cpu.ticks"),
    "state halted": (lambda good: rebuilt(good, with_state(["cpu", "state"], "halted")), "field cpu.state"),
    "entering_trap a number": (lambda good: rebuilt(good, with_state(["cpu", "entering_trap"], 1)),
                               "field cpu.entering_trap"),
    "walks a string": (lambda good: rebuilt(good, with_state(["cpu", "counters", "page_walks"], "many")),
                       "field cpu.counters.page_walks"),
    "exceptions keyed by name": (lambda good: rebuilt(good, with_state(["cpu", "counters", "exceptions"],
                                                                       {"syscall": 3})),
                                 "field cpu.counters.exceptions"),
    "timer long past": (lambda good: rebuilt(good, past_deadline), "field timer"),
    "irq lines too wide": (lambda good: rebuilt(good, with_state(["irq_pending"], 1 << 33)), "field irq_pending"),
    "disk not an object": (lambda good: rebuilt(good, with_state(["disk"], "disk.img")), "field disk"),
    "frames mismatch": (lambda good: rebuilt(good, with_state(["frames"], [0, 1])), "field frames"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_sim_checkpoint_is_refused_naming_the_file_and_the_part_and_nothing_runs(good, tmp_path, kind):
    make, complaint = BAD[kind]
    path = tmp_path / "bad.ckpt"
    path.write_bytes(make(good))
    result = invoke(resume, [str(path)])
    assert result.exit_code == 2 and result.stdout_bytes == b"", result.stderr
    assert result.stderr.startswith(f"kite: error: {path}: ") and complaint in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)

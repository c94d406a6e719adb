"""Checkpoint and resume are invisible wherever they fall, for every guest OS workload
(guestos/workloads.toml) on the bare machine and under shadow and direct paging, and two of them
under nested paging.

One chained run per workload and machine: run to the first of twenty points and write a
checkpoint, resume it to the second and write the next one (`kite resume --checkpoint-at`),
and so on to the end.  Each of the twenty restores must be invisible: the joined output, the
exit code and the instruction count are those of the uninterrupted run, and a disk ends with
the same bytes.  The points are spread over the run, each nudged by a different odd offset
so that they fall at unrelated places (trap handlers, pending interrupts, console input
half read); the sweeps of test_checkpoint.py and tests/machine/test_snapshot.py show those
kinds of places are among such points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kite.build import GUESTOS, build_all
from kite.runs import expected_output, fresh_disk, read_workloads
from vmm.cli import resume, run

BUILD = GUESTOS / "build"
POINTS = 20
MEM = "2M"          # enough for every workload (its expected output is checked); a smaller RAM makes each
                    # checkpoint cheaper
MACHINES = {"bare": ["--bare", str(BUILD / "kernel-native.elf")],
            "shadow": ["--paging", "shadow", str(BUILD / "kernel-native.elf")],
            "direct": ["--paging", "direct", str(BUILD / "kernel-pv.elf")],
            "nested": ["--paging", "nested", str(BUILD / "kernel-native.elf")]}
WORKLOADS = [workload for workload in read_workloads() if workload.image is None]
# every workload on bare, shadow and direct; under nested paging (a capture takes the VM out of guest
# mode) the two that exercise paging most, to keep the suite within its time
CHAINS = [(workload, machine) for workload in WORKLOADS for machine in MACHINES
          if machine != "nested" or workload.name in ("pagestress", "spawnstorm")]


def instructions_of(stats: Path, machine: str) -> int:
    figures = json.loads(stats.read_text())
    return figures["instructions"] if machine == "bare" else figures["vms"]["vm1"]["guest_instructions"]


def arguments(workload, machine: str, disk: Path | None) -> list[str]:
    modules = [part for module in workload.modules for part in ("--module", str(module))]
    return [*MACHINES[machine], *modules, "--mem", MEM, "--input-text", workload.input.decode("latin-1"),
            *(["--disk", str(disk)] if disk else [])]


def points(total: int) -> list[int]:
    """Twenty increasing points inside a run of `total` instructions."""
    spread = sorted({max(1, total * index // (POINTS + 1) + (7919 * index) % 613) for index in range(1, POINTS + 1)})
    assert len(spread) == POINTS and spread[-1] < total
    return spread


@pytest.mark.slow
@pytest.mark.parametrize("workload, machine", CHAINS, ids=[f"{workload.name}-{machine}" for workload, machine in CHAINS])
def test_twenty_chained_checkpoints_are_invisible(workload, machine, tmp_path):
    build_all()
    whole_dir, chain_dir = tmp_path / "whole", tmp_path / "chain"
    whole_dir.mkdir()
    chain_dir.mkdir()
    whole_disk, chain_disk = fresh_disk(workload, whole_dir), fresh_disk(workload, chain_dir)
    stats = tmp_path / "whole.json"
    whole = CliRunner().invoke(run, [*arguments(workload, machine, whole_disk), "--stats-json", str(stats)])
    assert whole.exception is None or isinstance(whole.exception, SystemExit), whole.stderr
    assert expected_output(workload) in (None, whole.stdout_bytes), "the workload does not run right in " + MEM
    assert workload.exit_code in (None, whole.exit_code)
    total = instructions_of(stats, machine)
    at = points(total)
    first = CliRunner().invoke(run, [*arguments(workload, machine, chain_disk), "--checkpoint-at", str(at[0]),
                                     "--checkpoint", str(tmp_path / "0.ckpt")])
    assert first.exit_code == 0 and "checkpoint at instruction" in first.stderr, first.stderr
    output = first.stdout_bytes
    disk = ["--disk", str(chain_disk)] if chain_disk else []
    for index, point in enumerate(at[1:], 1):
        step = CliRunner().invoke(resume, [str(tmp_path / f"{index - 1}.ckpt"), *disk, "--checkpoint-at", str(point),
                                           "--checkpoint", str(tmp_path / f"{index}.ckpt")])
        assert step.exit_code == 0 and f"checkpoint at instruction {point} written" in step.stderr, step.stderr
        output += step.stdout_bytes
    stats = tmp_path / "chain.json"
    last = CliRunner().invoke(resume, [str(tmp_path / f"{POINTS - 1}.ckpt"), *disk, "--stats-json", str(stats)])
    output += last.stdout_bytes
    assert (output, last.exit_code) == (whole.stdout_bytes, whole.exit_code), last.stderr
    assert instructions_of(stats, machine) == total
    if whole_disk:
        assert chain_disk.read_bytes() == whole_disk.read_bytes()

"""The guest OS's block driver (guestos/kernel/disk.s and the disk pv-ops of
pvops.s) and the disk programs (user-disktest, user-dcat), booted on real
images with a disk: the native kernel bare (`--bare --disk`), under shadow
paging and under machine simulation (`--sim`), driving the emulated disk's
registers; the paravirtual kernel under direct paging, driving the block ring
(blk_setup, blk_notify).

Every disk image is a fresh file of N * 512 bytes in tmp_path.  Besides the
console and the exit code, the tests check the disk image's final bytes (the
same in every configuration) and the I/O counters of --stats-json: one ring
request per page and one notification per system call in the PV build, five
MMIO accesses per request in the native one."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from kite.build import build_all
from tests.guestos.userharness import (BUILD, DISK_CONFIGURATIONS, UserRun, boot, expected_output,
                                      program_output, run_under_kernel)

SECTOR = 512
DISK_IO_MAX = 32                  # sectors per disk_read / disk_write call (syscall.inc)
BLK_MAX_SECTORS = 8               # sectors per ring request (hypercall_abi.py)
DISKTEST_SECTORS = 256            # disktest.s SECTORS
DISKTEST_SEED = 4242
DISKTEST_WRITES = [32, 1, 8, 9, 16, 31, 7, 24] * 2       # disktest.s `chunks`, cycled over 256 sectors
DISKTEST_READS = [DISK_IO_MAX] * (DISKTEST_SECTORS // DISK_IO_MAX)
DISK_SECTORS = 320                # the disk the tests give disktest: larger than what it writes
M32 = 0xFFFFFFFF
ENODEV = 19


@pytest.fixture(scope="module", autouse=True)
def built_images():
    build_all()


def make_disk(path: Path, sectors: int, content: bytes = b"") -> Path:
    """A disk image of `sectors` sectors holding `content` from byte 0, zeros after."""
    assert len(content) <= sectors * SECTOR
    path.write_bytes(content + bytes(sectors * SECTOR - len(content)))
    return path


def disktest_pattern() -> list[int]:
    """disktest's words over sectors [0, 256): the LCG x = x * 1103515245 + 12345 from 4242."""
    words, x = [], DISKTEST_SEED
    for _ in range(DISKTEST_SECTORS * SECTOR // 4):
        x = (x * 1103515245 + 12345) & M32
        words.append(x)
    return words


def disktest_image() -> bytes:
    """What a fresh zero disk of DISK_SECTORS sectors holds after disktest."""
    data = struct.pack(f"<{DISKTEST_SECTORS * SECTOR // 4}I", *disktest_pattern())
    return data + bytes((DISK_SECTORS - DISKTEST_SECTORS) * SECTOR)


def run_stats(configuration: str, init: str, disk: Path | None, tmp_path: Path,
              extra: list[str] | None = None) -> tuple[UserRun, dict]:
    """Boot `init` on `configuration` with `disk`; the run and its --stats-json figures."""
    stats = tmp_path / f"{configuration}-{init}.json"
    run = run_under_kernel(configuration, init, [], disk=disk, extra=["--stats-json", str(stats), *(extra or [])])
    return run, json.loads(stats.read_text()) if stats.exists() else {}


def io_counters(stats: dict) -> dict:
    """The run's I/O counters: the only VM's under the VMM, else the machine's."""
    return stats["vms"]["vm1"]["io"] if stats.get("vms") else stats["io"]


def clean(run: UserRun) -> None:
    """The kernel neither panicked nor killed anything."""
    assert "panic" not in run.output and "kernel: " not in run.output, run.output + run.stderr


# --- the golden files -------------------------------------------------------------------------

def test_disktest_golden_checksum_is_the_patterns():
    words = disktest_pattern()
    checksum = sum(word * (index + 1) for index, word in enumerate(words)) & M32
    assert expected_output("user-disktest") == (
        "disktest: error checks ok\n"
        f"disktest: wrote {DISKTEST_SECTORS} sectors in {len(DISKTEST_WRITES)} calls\n"
        f"disktest: read {DISKTEST_SECTORS} sectors in {len(DISKTEST_READS)} calls\n"
        f"disktest: checksum {checksum:#010x}\n"
        "disktest: ok\n")
    assert sum(DISKTEST_WRITES) == sum(DISKTEST_READS) == DISKTEST_SECTORS


def test_dcat_golden_is_text_without_a_nul_and_shorter_than_one_call():
    text = expected_output("user-dcat").encode()
    assert b"\0" not in text and 0 < len(text) < DISK_IO_MAX * SECTOR


# --- every configuration ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("configuration", list(DISK_CONFIGURATIONS))
def test_disktest_passes_and_leaves_the_same_disk_bytes_everywhere(configuration, tmp_path):
    disk = make_disk(tmp_path / "disk.img", DISK_SECTORS)
    run, stats = run_stats(configuration, "user-disktest", disk, tmp_path)
    assert program_output(run.output) == expected_output("user-disktest"), run.output + run.stderr
    assert run.exit_code == 0, run.stderr
    clean(run)
    assert disk.read_bytes() == disktest_image()
    # the error checks' two successful reads (the last sector), then the workload's calls
    calls = 2 + len(DISKTEST_WRITES) + len(DISKTEST_READS)
    io = io_counters(stats)
    assert io["bytes"] == SECTOR * (2 + 2 * DISKTEST_SECTORS)
    if configuration == "direct":
        pages = 2 + sum(-(-count // BLK_MAX_SECTORS) for count in DISKTEST_WRITES + DISKTEST_READS)
        assert io["notifications"] == calls               # one blk_notify per system call ...
        assert io["requests"] == pages                    # ... for one ring request per page
        assert io["mmio_exits"] == 0
    else:
        assert io["requests"] == calls                    # one emulated command per system call


@pytest.mark.slow
def test_native_driver_makes_five_mmio_accesses_per_request_under_shadow(tmp_path):
    """SECTOR, COUNT, CMD, STATUS, ACK per request; DMA_ADDR and CTRL are written once at
    boot, after the probing CAPACITY load; a timer tick during a wait costs one more
    STATUS load (each wake of wfi that is not the disk's) and a TIMER_ACK store."""
    disk = make_disk(tmp_path / "disk.img", DISK_SECTORS)
    run, stats = run_stats("shadow", "user-disktest", disk, tmp_path)
    assert run.exit_code == 0, run.output + run.stderr
    vm = stats["vms"]["vm1"]
    requests, wfis = vm["io"]["requests"], vm["exits"]["privileged: wfi"]
    assert requests == 2 + len(DISKTEST_WRITES) + len(DISKTEST_READS)
    assert wfis >= requests
    assert vm["io"]["mmio_exits"] == 3 + 4 * requests + wfis


@pytest.mark.slow
@pytest.mark.parametrize("configuration", list(DISK_CONFIGURATIONS))
def test_dcat_prints_the_text_on_the_disk_up_to_the_first_nul(configuration, tmp_path):
    text = expected_output("user-dcat").encode()
    disk = make_disk(tmp_path / "text.img", 4, text)
    run, _ = run_stats(configuration, "user-dcat", disk, tmp_path)
    assert program_output(run.output) == expected_output("user-dcat"), run.output + run.stderr
    assert run.exit_code == 0
    clean(run)
    assert disk.read_bytes() == text + bytes(4 * SECTOR - len(text))    # reading wrote nothing back


@pytest.mark.slow
@pytest.mark.parametrize("configuration", list(DISK_CONFIGURATIONS))
def test_dcat_prints_a_disk_without_a_nul_to_its_end_over_several_calls(configuration, tmp_path):
    lines = b"".join(b"line %04d of a text that fills the whole disk\n" % number for number in range(2000))
    sectors = 2 * DISK_IO_MAX + 3                    # three calls, the last one short
    text = (lines * 2)[:sectors * SECTOR]
    run, _ = run_stats(configuration, "user-dcat", make_disk(tmp_path / "full.img", sectors, text), tmp_path)
    assert run.output.encode() == text, run.stderr
    assert run.exit_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("configuration", list(DISK_CONFIGURATIONS))
@pytest.mark.parametrize("program", ["user-disktest", "user-dcat"])
def test_without_a_disk_the_programs_fail_cleanly(program, configuration, tmp_path):
    run, _ = run_stats(configuration, program, None, tmp_path)
    assert run.output == f"{program.removeprefix('user-')}: no disk\n", run.output + run.stderr
    assert run.exit_code == 1


@pytest.mark.slow
@pytest.mark.parametrize("configuration", list(DISK_CONFIGURATIONS))
def test_disktest_on_a_too_small_disk_reports_it_and_touches_nothing(configuration, tmp_path):
    disk = make_disk(tmp_path / "small.img", DISKTEST_SECTORS - 1, b"keep me")
    run, _ = run_stats(configuration, "user-disktest", disk, tmp_path)
    assert run.output == "disktest: FAILED: the disk is smaller than 256 sectors\n", run.output + run.stderr
    assert run.exit_code == 1
    assert disk.read_bytes() == make_disk(tmp_path / "ref.img", DISKTEST_SECTORS - 1, b"keep me").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("configuration", ["bare", "direct"])
def test_disktest_with_a_read_only_disk_passes_and_leaves_the_file_alone(configuration, tmp_path):
    disk = make_disk(tmp_path / "disk.img", DISK_SECTORS)
    run, _ = run_stats(configuration, "user-disktest", disk, tmp_path, extra=["--disk-readonly"])
    assert program_output(run.output) == expected_output("user-disktest"), run.output + run.stderr
    assert run.exit_code == 0
    assert disk.read_bytes() == bytes(DISK_SECTORS * SECTOR)


@pytest.mark.slow
def test_two_vms_with_separate_disks_each_see_only_their_own(tmp_path):
    """The native kernel runs disktest on its disk while the PV kernel prints its own disk's text."""
    work = make_disk(tmp_path / "work.img", DISK_SECTORS)
    text = expected_output("user-dcat").encode()
    notes = make_disk(tmp_path / "notes.img", 8, text)
    run = boot(["--vm", f"{BUILD / 'kernel-native.elf'},paging=shadow,name=native,"
                        f"module={BUILD / 'user-disktest.elf'},disk={work}",
                "--vm", f"{BUILD / 'kernel-pv.elf'},paging=direct,name=pv,"
                        f"module={BUILD / 'user-dcat.elf'},disk={notes}"], "")
    for name, program in (("native", "user-disktest"), ("pv", "user-dcat")):
        lines = [line.removeprefix(f"[{name}] ") for line in run.output.splitlines() if line.startswith(f"[{name}] ")]
        assert lines == expected_output(program).splitlines(), run.output + run.stderr
        assert f"kite: {name}: exit code 0 (done)" in run.stderr
    assert work.read_bytes() == disktest_image()
    assert notes.read_bytes() == text + bytes(8 * SECTOR - len(text))

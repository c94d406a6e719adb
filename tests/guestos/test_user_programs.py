"""The Kite guest OS user programs (guestos/user/) under the real kernel, in
the three configurations: the native kernel on the bare machine and under
shadow paging, the paravirtual kernel under direct paging.  Each program is
init (with the modules it spawns loaded beside it); its console output, less
the kernel's own "kernel: ..." lines, must equal the hand-written
guestos/user/expected/NAME.out (usertests' last line there says "0 failed"),
and the run's exit code init's exit status.

The fast tests at the end check the golden files and the manifest against
each other without booting anything."""

from __future__ import annotations

import re

import pytest

from kite.build import GUESTOS, build_all, read_manifest
from tests.guestos.userharness import (CONFIGURATIONS, DISK_PROGRAMS, ECHO_INPUT, EXPECTED, expected_output,
                                      program_output, run_under_kernel)

STATUS_KILLED = 255
KILLED_HELPERS = ["user-badwrite", "user-badread", "user-stackoverflow", "user-badsyscall",
                  "user-badpriv", "user-badheap"]
# init -> (the other modules it needs, its console input, its exit status)
PROGRAMS = {
    "user-hello": ([], "", 0),
    "user-fib": ([], "", 0),
    "user-sort": ([], "", 0),
    "user-sieve": ([], "", 0),
    "user-matmul": ([], "", 0),
    "user-crc": ([], "", 0),
    "user-nullcall": ([], "", 0),
    "user-pagestress": ([], "", 0),
    "user-spawnstorm": (["user-nop"], "", 0),
    "user-pingpong": (["user-pong"], "", 0),
    "user-echo": ([], ECHO_INPUT, 0),
    "user-usertests": (["user-nop", *KILLED_HELPERS], "", 0),
    "user-pong": ([], "", 100),                                  # ROUNDS yields that returned 0
    **{helper: ([], "", STATUS_KILLED) for helper in KILLED_HELPERS},
}
# user-nop is left out: as init its status (pid & 0x7F) depends on the kernel's pid numbering.
# The programs that need a disk (DISK_PROGRAMS) are booted by test_disk.py.


@pytest.fixture(scope="module", autouse=True)
def built_images():
    """Every guest image of guestos/images.toml (kernels and user programs), built if needed."""
    build_all()


@pytest.mark.slow
@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
@pytest.mark.parametrize("program", list(PROGRAMS))
def test_program_prints_its_expected_output_and_exits_with_its_status(program, configuration):
    modules, input_text, status = PROGRAMS[program]
    run = run_under_kernel(configuration, program, modules, input_text)
    assert "FAILED" not in run.output, run.output + run.stderr     # usertests names its failed tests
    assert program_output(run.output) == expected_output(program), run.output + run.stderr
    assert run.exit_code == status, run.stderr


def test_usertests_golden_summary_counts_every_test_line():
    lines = expected_output("user-usertests").splitlines()
    passed = [line for line in lines if re.fullmatch(r"test \w+: ok", line)]
    assert lines[-1] == f"usertests: {len(passed)} passed, 0 failed"


def test_every_user_image_has_a_golden_file_and_a_test_except_user_nop():
    images = {spec.name for spec in read_manifest() if spec.name.startswith("user-")}
    goldens = {f"user-{path.stem}" for path in EXPECTED.glob("*.out")}
    assert not set(PROGRAMS) & set(DISK_PROGRAMS)
    assert images - {"user-nop"} == set(PROGRAMS) | set(DISK_PROGRAMS) == goldens
    for modules, _, _ in PROGRAMS.values():
        assert set(modules) <= images


def test_usertests_golden_lists_the_test_table_in_order():
    source = (GUESTOS / "user" / "usertests.s").read_text(encoding="utf-8")
    table = re.findall(r"^\s+\.word\s+name_(\w+), test_\1$", source, re.MULTILINE)
    golden = re.findall(r"^test (\w+): ok$", expected_output("user-usertests"), re.MULTILINE)
    assert golden == table and len(table) > 15


# --- the CPU-bound programs' results, computed independently -----------------------------------

M32 = 0xFFFFFFFF


def lcg(seed: int, count: int):
    """The programs' LCG x = x * 1103515245 + 12345 mod 2^32, after `seed`."""
    for _ in range(count):
        seed = (seed * 1103515245 + 12345) & M32
        yield seed


def reference_lines() -> dict[str, str]:
    """What sort, sieve, matmul and crc must print, computed here in Python from
    the definitions in their header comments."""
    import zlib
    words = sorted(lcg(12345, 20000))
    sort_sum = sum(value * (index + 1) for index, value in enumerate(words)) & M32
    composite = bytearray(400000)
    for p in range(2, 633):                              # 632^2 < 400000 <= 633^2
        if not composite[p]:
            composite[p * p::p] = b"\x01" * len(range(p * p, 400000, p))
    primes = sum(1 for n in range(2, 400000) if not composite[n])
    n = 96
    a = [[i + 2 * j + 1 for j in range(n)] for i in range(n)]
    b = [[3 * i + j + 7 for j in range(n)] for i in range(n)]
    matmul = sum((sum(a[i][k] * b[k][j] for k in range(n)) & M32) * (i * n + j + 1)
                 for i in range(n) for j in range(n)) & M32
    crc = zlib.crc32(bytes(value >> 24 for value in lcg(2026, 120000)))
    return {"user-sort": f"sort: 20000 words, checksum {sort_sum:#010x}\nsorted ok\n",
            "user-sieve": f"sieve: primes below 400000: {primes}\n",
            "user-matmul": f"matmul: 96x96, checksum {matmul:#010x}\n",
            "user-crc": f"crc: 120000 bytes, crc32 {crc:#010x}\n"}


@pytest.mark.slow
def test_the_cpu_bound_programs_golden_files_hold_the_independently_computed_results():
    for program, text in reference_lines().items():
        assert expected_output(program) == text, program


def test_usertests_without_its_helper_modules_says_which_one_is_missing():
    """Booted alone, every test that spawns a helper fails, and the line before each failure names the
    module and how to boot it (the helpers are spawned by name: user-nop first, then the killed ones)."""
    run = run_under_kernel("bare", "user-usertests", [])
    lines = run.output.splitlines()
    for helper in ["user-nop", *KILLED_HELPERS]:
        assert f"usertests: boot module {helper} is missing (boot it with --module guestos/build/{helper}.elf)" \
            in lines, run.output
    failed = [index for index, line in enumerate(lines) if "FAILED at check 1" in line]
    assert failed and all(lines[index - 1].startswith("usertests: boot module ") for index in failed)
    assert run.exit_code == 1

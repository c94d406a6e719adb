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
from tests.guestos.userharness import (CONFIGURATIONS, ECHO_INPUT, EXPECTED, expected_output,
                                      program_output, run_under_kernel)

STATUS_KILLED = 255
KILLED_HELPERS = ["user-badwrite", "user-badread", "user-stackoverflow", "user-badsyscall",
                  "user-badpriv", "user-badheap"]
# init -> (the other modules it needs, its console input, its exit status)
PROGRAMS = {
    "user-hello": ([], "", 0),
    "user-fib": ([], "", 0),
    "user-sort": ([], "", 0),
    "user-pagestress": ([], "", 0),
    "user-spawnstorm": (["user-nop"], "", 0),
    "user-pingpong": (["user-pong"], "", 0),
    "user-echo": ([], ECHO_INPUT, 0),
    "user-usertests": (["user-nop", *KILLED_HELPERS], "", 0),
    "user-pong": ([], "", 100),                                  # ROUNDS yields that returned 0
    **{helper: ([], "", STATUS_KILLED) for helper in KILLED_HELPERS},
}
# user-nop is left out: as init its status (pid & 0x7F) depends on the kernel's pid numbering.


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
    assert images - {"user-nop"} == set(PROGRAMS) == goldens
    for modules, _, _ in PROGRAMS.values():
        assert set(modules) <= images


def test_usertests_golden_lists_the_test_table_in_order():
    source = (GUESTOS / "user" / "usertests.s").read_text(encoding="utf-8")
    table = re.findall(r"^\s+\.word\s+name_(\w+), test_\1$", source, re.MULTILINE)
    golden = re.findall(r"^test (\w+): ok$", expected_output("user-usertests"), re.MULTILINE)
    assert golden == table and len(table) > 15

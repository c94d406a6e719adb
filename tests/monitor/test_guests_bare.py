"""The VMM's test guests (tests/monitor/guests/*.s) on the bare machine.

Each guest's transcript is compared with its hand-written golden file
guests/NAME.expected; the access-matrix guest is held to the MMU reference
model of tests/machine/test_mmu.py.  test_shadow_equivalence.py then runs the
same images under the VMM and compares with these bare runs.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.machine.test_mmu import access_cases, check_access_matrix
from tests.monitor.guestrun import (MatrixFormatError, expected_transcript, matrix_runner,
                                    parse_access_matrix)

# guest -> the exit code its header documents
GOLDEN_GUESTS = {"paging_demo": 42, "hidden_true": 51, "pt_edge": 61, "sensitive": 23}
MATRIX_EXIT_CODE = 77


@pytest.mark.parametrize("name, exit_code", GOLDEN_GUESTS.items(), ids=list(GOLDEN_GUESTS))
def test_guest_on_the_bare_machine_prints_its_golden_transcript_and_exit_code(guest_run, name,
                                                                              exit_code):
    run = guest_run(name, "bare")
    assert run.output == expected_transcript(name), run.stderr
    assert run.exit_code == exit_code, run.stderr


def test_access_matrix_guest_on_the_bare_machine_satisfies_the_reference_model(guest_run):
    run = guest_run("access_matrix", "bare")
    assert run.exit_code == MATRIX_EXIT_CODE, run.stderr
    outcomes = parse_access_matrix(run.output)
    assert list(outcomes) == list(access_cases())          # every case, in the same order
    assert check_access_matrix(matrix_runner(outcomes)) == 16 * 32 * 3 * 2


def test_access_matrix_check_fails_when_one_printed_outcome_is_wrong(guest_run):
    outcomes = parse_access_matrix(guest_run("access_matrix", "bare").output)
    case = (0x0F, 0x1F, "write", True)                       # every permission: succeeds
    outcomes[case] = dataclasses.replace(outcomes[case], pte=outcomes[case].pte & ~0x10)
    with pytest.raises(AssertionError, match="1 of 3072 cases differ"):
        check_access_matrix(matrix_runner(outcomes))


def test_matrix_transcript_with_an_effect_mismatch_or_a_stray_line_does_not_parse():
    good = "access matrix: start\n0f 1f w u: 00000000 - 0f 1f\naccess matrix: done\n"
    assert list(parse_access_matrix(good)) == [(0x0F, 0x1F, "write", True)]
    for bad_line in ("0f 1f w u: 00000000 - 0f 1f effect-mismatch", "user: unexpected trap"):
        with pytest.raises(MatrixFormatError, match="not a matrix case line"):
            parse_access_matrix(good.replace("0f 1f w u: 00000000 - 0f 1f", bad_line))


def test_paging_demo_takes_one_page_fault_per_fresh_page_plus_the_killed_user_read(guest_run):
    run = guest_run("paging_demo", "bare")
    demand_faults = re.findall(r"^fault: (read|write) by (kernel|user) at", run.output, re.MULTILINE)
    assert len(demand_faults) == 8
    assert run.stats["exceptions"]["page fault"] == len(demand_faults) + 1
    assert run.stats["interrupts"]["timer"] >= 3


def test_hidden_true_takes_exactly_the_page_faults_its_kernel_counts(guest_run):
    run = guest_run("hidden_true", "bare")
    printed = int(re.search(r"page faults seen by the kernel in all: (\d+)", run.output)[1])
    assert run.stats["exceptions"] == {"page fault": printed}


def test_pt_edge_takes_its_two_bus_errors_and_four_page_faults(guest_run):
    run = guest_run("pt_edge", "bare")
    assert run.stats["exceptions"] == {"bus error": 2, "page fault": 4}

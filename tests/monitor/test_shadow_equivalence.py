"""The test guests under the VMM with shadow paging (`kite run --paging shadow`)
and with nested paging (`--paging nested`, the machine's guest mode) must
behave exactly as on the bare machine: same console output, same exit code,
and the access matrix held to the same reference model.  The VMM's
--stats-json counters must account for hidden_true's faults.

sensitive.s is left out on purpose: under trap-and-emulate its rdsr shows
KM = 0 (the Popek-Goldberg demonstration has its own tests, test_sensitive.py
and, for nested, test_nested.py).
"""

from __future__ import annotations

import re

import pytest

from tests.machine.test_mmu import access_cases, check_access_matrix
from tests.monitor.guestrun import matrix_runner, only_vm_counters, parse_access_matrix

EQUIVALENT_GUESTS = ["paging_demo", "hidden_true", "pt_edge", "access_matrix"]
HIDDEN_TRUE_PAGES = 8           # the pages hidden_true maps itself, then touches


@pytest.mark.parametrize("machine", ["shadow", "nested"])
@pytest.mark.parametrize("name", EQUIVALENT_GUESTS)
def test_guest_under_shadow_paging_prints_and_exits_exactly_as_on_the_bare_machine(
        guest_run, name, machine):
    bare, shadow = guest_run(name, "bare"), guest_run(name, machine)
    assert shadow.output == bare.output, shadow.stderr
    assert shadow.exit_code == bare.exit_code, shadow.stderr


@pytest.mark.parametrize("machine", ["shadow", "nested"])
def test_access_matrix_under_shadow_paging_satisfies_the_reference_model(guest_run, machine):
    run = guest_run("access_matrix", machine)
    outcomes = parse_access_matrix(run.output)
    assert list(outcomes) == list(access_cases()), run.stderr
    assert check_access_matrix(matrix_runner(outcomes)) == 16 * 32 * 3 * 2


def test_hidden_true_under_shadow_hides_its_own_mappings_and_reflects_every_true_fault(
        guest_run):
    run = guest_run("hidden_true", "shadow")
    assert run.stats is not None, run.stderr
    counters = only_vm_counters(run.stats)
    assert "page faults seen by the kernel so far: 0\n" in run.output
    assert counters["hidden_faults"] >= HIDDEN_TRUE_PAGES
    printed = int(re.search(r"page faults seen by the kernel in all: (\d+)", run.output)[1])
    assert counters["true_faults"] == printed

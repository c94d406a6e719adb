"""Phase marks (docs/isa.md "Marker") and the phases of a run
(vmm/machine/phases.py): boot, workload, total."""

from __future__ import annotations

import json

import pytest

from tests.kite.stats import machine_stats
from tests.machine.cpuprog import li, machine_with
from vmm.machine.devices.marker import BOOT_DONE, ROI_BEGIN, ROI_END, Marker
from vmm.machine.phases import combined, difference, split

MARKER = 0xF0004000


def at(instructions: int, **figures):
    return machine_stats(instructions=instructions, **figures)


def test_the_marker_reports_only_its_three_markers_on_32_bit_stores():
    seen = []
    marker = Marker(seen.append)
    for value in (BOOT_DONE, 0, 4, ROI_BEGIN, ROI_END):
        marker.write(0, 4, value)
    marker.write(0, 1, ROI_BEGIN)          # not a register access
    marker.write(4, 4, ROI_BEGIN)          # no register there
    assert seen == [BOOT_DONE, ROI_BEGIN, ROI_END] and marker.read(0, 4) == 0


def test_without_marks_the_workload_is_the_whole_run_and_boot_is_empty():
    phases = split([], at(100, exceptions={"page fault": 2}))
    assert phases["boot"].instructions == 0 and phases["boot"].exceptions == {}
    assert phases["workload"] == at(100, exceptions={"page fault": 2})


def test_boot_done_splits_the_run_and_the_two_phases_add_up_to_the_total():
    final = at(100, exceptions={"page fault": 5, "system call": 1}, reason="halt", exit_code=3)
    phases = split([(BOOT_DONE, at(30, exceptions={"page fault": 4}, reason="", exit_code=None))], final)
    assert (phases["boot"].instructions, phases["workload"].instructions) == (30, 70)
    assert phases["workload"].exceptions == {"page fault": 1, "system call": 1}   # zero counts dropped
    assert (phases["workload"].reason, phases["workload"].exit_code) == ("halt", 3)   # not counts: the end's
    assert combined(phases["boot"], phases["workload"]) == final


def test_regions_of_interest_are_summed_and_one_left_open_runs_to_the_end():
    marks = [(BOOT_DONE, at(10)), (ROI_BEGIN, at(20)), (ROI_END, at(25)), (ROI_END, at(26)),
             (ROI_BEGIN, at(40)), (ROI_BEGIN, at(45)), (ROI_END, at(50)), (ROI_BEGIN, at(90))]
    phases = split(marks, at(100))
    # [20, 25) + [40, 50) (a second ROI_BEGIN inside a region, and an ROI_END outside one, change nothing)
    # + [90, 100): the boot phase is still up to BOOT_DONE
    assert (phases["boot"].instructions, phases["workload"].instructions) == (10, 5 + 10 + 10)


def test_a_difference_keeps_the_later_value_of_a_gauge():
    from tests.kite.stats import vm_stats
    later = vm_stats(guest_instructions=50, counters={"shadow_pages": 7, "hidden_faults": 9})
    earlier = vm_stats(guest_instructions=20, counters={"shadow_pages": 9, "hidden_faults": 4})
    assert difference(later, earlier).counters == {"shadow_pages": 7, "hidden_faults": 5}


def test_the_bare_machine_counts_the_marking_store_in_the_phase_before_it():
    """Six instructions before the mark (two li of two words each, two addi), the
    store itself, then three more and halt: boot = 7, workload = 4."""
    items = li("t0", MARKER) + li("t1", BOOT_DONE) + [("addi", "t2", "zero", 1), ("addi", "t2", "t2", 1),
                                                      ("sw", "t1", 0, "t0"),
                                                      ("addi", "t2", "t2", 1), ("addi", "t2", "t2", 1),
                                                      ("addi", "t2", "t2", 1), ("halt",)]
    result = machine_with(items).run()
    assert (result.stats.phases["boot"].instructions, result.stats.phases["workload"].instructions) == (7, 4)
    assert result.stats.phases["boot"].device_writes == 1


@pytest.mark.slow
def test_the_guest_kernel_marks_boot_done_identically_on_bare_shadow_and_sim(tmp_path):
    """The kernel's BOOT_DONE mark (guestos/kernel/main.s) splits a user program's
    run at the same instruction everywhere; the phases add up to the total."""
    from click.testing import CliRunner

    from kite.build import GUESTOS, build_all
    from vmm.cli import run
    build_all()
    kernel, hello = GUESTOS / "build" / "kernel-native.elf", GUESTOS / "build" / "user-hello.elf"
    splits = {}
    for machine in (["--bare"], ["--sim"], ["--paging", "shadow"]):
        path = tmp_path / f"{machine[-1]}.json"
        CliRunner().invoke(run, [*machine, str(kernel), "--module", str(hello), "--stats-json", str(path)])
        figures = json.loads(path.read_text())
        own = figures["vms"]["vm1"] if "vms" in figures else figures
        count = "guest_instructions" if "vms" in figures else "instructions"
        boot, workload = own["phases"]["boot"][count], own["phases"]["workload"][count]
        assert boot + workload == own[count] and boot > workload > 0
        splits[machine[-1]] = (boot, workload)
    assert len(set(splits.values())) == 1, splits

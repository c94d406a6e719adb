"""kite.runs: the workload list, planning a run, and a run's figures taken from its stats."""

from __future__ import annotations

import hashlib

from pathlib import Path

import pytest

from kite.runs import (DEFAULT_MAX_INSTRUCTIONS, WORKLOADS, Kernels, Ran, RunOutcome, figures, plan,
                       read_workloads, run)
from tests.kite.stats import run_stats
from vmm.machine.costs import DEFAULT_COST_MODEL
from vmm.machine.errors import KiteError

KERNELS = Kernels(Path("/k/native.elf"), Path("/k/pv.elf"))

MANIFEST = """
[workloads.sh]
modules = ["build/user-init.elf", "build/user-sh.elf"]
input = "ls\\n"
expected = "user/expected/sh.out"
exit_code = 0
max_instructions = 1000

[workloads.hello]
image = "build/hello.elf"
"""


def write_manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workloads.toml"
    path.write_text(text)
    return path


def test_workloads_are_read_in_file_order_with_paths_relative_to_the_file(tmp_path):
    sh, hello = read_workloads(write_manifest(tmp_path, MANIFEST))
    assert sh.name == "sh" and hello.name == "hello"
    assert sh.modules == (tmp_path / "build/user-init.elf", tmp_path / "build/user-sh.elf")
    assert sh.image is None
    assert sh.input == b"ls\n"
    assert sh.expected == tmp_path / "user/expected/sh.out"
    assert (sh.exit_code, sh.max_instructions) == (0, 1000)
    assert hello.image == tmp_path / "build/hello.elf"
    assert (hello.modules, hello.input, hello.expected, hello.exit_code) == ((), b"", None, None)
    assert hello.max_instructions == DEFAULT_MAX_INSTRUCTIONS


def test_a_workload_with_its_own_image_runs_everywhere_but_direct(tmp_path):
    sh, hello = read_workloads(write_manifest(tmp_path, MANIFEST))
    assert sh.configs() == ("bare", "shadow", "shadow-basic", "direct", "sim")
    assert hello.configs() == ("bare", "shadow", "shadow-basic", "sim")


@pytest.mark.parametrize("text, message", [
    ("[workloads.a]\nimage = 'x'\nmodules = ['y']\n", "workloads.a: give either 'modules'"),
    ("[workloads.a]\ninput = 'x'\n", "workloads.a: give either 'modules'"),
    ("[workloads.a]\nmodules = []\n", "'modules' must be a non-empty list"),
    ("[workloads.a]\nmodules = [1]\n", "'modules' must be a non-empty list"),
    ("[workloads.a]\nimage = 'x'\ncolour = 1\n",
     "unknown key 'colour' (known: category, disk, disk_sectors, exit_code, expected, image"),
    ("[workloads.a]\nimage = 'x'\ndisk_sectors = 0\n", "'disk_sectors' must be an integer from 1 to 65536"),
    ("[workloads.a]\nimage = 'x'\ndisk = 3\n", "'disk' must be a string"),
    ("[workloads.a]\nimage = 'x'\ndisk = 'd.img'\ndisk_sectors = 8\n", "give either 'disk'"),
    ("[workloads.a]\nimage = 'x'\nmax_instructions = 0\n", "'max_instructions' must be an integer of at least 1"),
    ("[workloads.a]\nimage = 'x'\nexit_code = true\n", "'exit_code' must be an integer of at least 0"),
    ("[workloads.a]\nimage = 'x'\ninput = 5\n", "'input' must be a string"),
    ("[workloads.'a b']\nimage = 'x'\n", "a workload name is letters"),
    ("[workloads]\na = 1\n", "workloads.a: must be a table"),
    ("[images.a]\nsources = []\n", "no [workloads.NAME] tables"),
    ("[workloads.a]\nimage = \n", "at line 2"),
])
def test_a_bad_workload_list_is_an_error_naming_the_file_and_the_entry(tmp_path, text, message):
    path = write_manifest(tmp_path, text)
    with pytest.raises(KiteError) as caught:
        read_workloads(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_missing_workload_list_is_an_error_naming_it(tmp_path):
    with pytest.raises(KiteError, match="nothing.toml: cannot read"):
        read_workloads(tmp_path / "nothing.toml")


def test_the_repository_workload_list_reads():
    assert read_workloads(WORKLOADS)


def test_module_workloads_boot_the_pv_kernel_only_under_direct(tmp_path):
    sh, hello = read_workloads(write_manifest(tmp_path, MANIFEST))
    booted = {config: plan(sh, config, KERNELS, DEFAULT_COST_MODEL) for config in sh.configs()}
    assert {config: spec.image for config, spec in booted.items()} == {
        "bare": KERNELS.native, "shadow": KERNELS.native, "shadow-basic": KERNELS.native, "direct": KERNELS.pv,
        "sim": KERNELS.native}
    assert all(spec.modules == sh.modules for spec in booted.values())
    own = plan(hello, "shadow", KERNELS, DEFAULT_COST_MODEL)
    assert (own.image, own.modules) == (hello.image, ())


# --- figures from stats --------------------------------------------------------------------------

BARE_STATS = run_stats(instructions=500, tlb_misses=7, walk_refs=26, modeled_cycles=1500)
VMM_VM = {"guest_instructions": 500, "vm_exits": 47, "hypercalls": 3, "tlb_misses": 88, "walk_refs": 199,
          "exits": {"hidden page fault": 30, "true page fault": 2, "page-table write": 5,
                    "hypercall: yield": 3, "mmio": 7},
          "counters": {"hidden_faults": 30, "true_faults": 2, "pt_write_traps": 5,
                       "shadow_entries_created": 31, "shadow_entries_invalidated": 4},
          "modeled_cycles": 43500}
VMM_STATS = run_stats({"vm1": VMM_VM}, instructions=480, tlb_misses=90, walk_refs=200, modeled_cycles=9999)
SIM_STATS = run_stats(instructions=500, walk_refs=1200, page_walks=600, tlb_misses=600, modeled_cycles=70000)


def outcome_with(tmp_path: Path, config: str, stats) -> RunOutcome:
    _, hello = read_workloads(write_manifest(tmp_path, MANIFEST))
    return RunOutcome(plan(hello, config, KERNELS, DEFAULT_COST_MODEL), Ran(b"", 0, "halt", "", stats), 0.5)


def total(records: list[dict]) -> dict:
    """The total phase's record, checking the records come in phase order."""
    assert [record["phase"] for record in records] == ["boot", "workload", "total"]
    return records[-1]


def test_bare_figures_are_the_machine_counters_with_no_vmm_figures(tmp_path):
    record = total(figures(outcome_with(tmp_path, "bare", BARE_STATS)))
    assert record == {"workload": "hello", "category": None, "config": "bare", "phase": "total",
                      "exit_code": 0, "guest_instructions": 500,
                      "vm_exits": None, "exits": None, "hypercalls": None, "hidden_faults": None,
                      "true_faults": None, "pt_write_traps": None, "shadow_entries_created": None,
                      "shadow_entries_invalidated": None, "nested_faults": None, "nested_walk_refs": None,
                      "pwc_hits": None, "bt_callouts": None, "bt_overhead_instructions": None,
                      "bt_instructions_translated": None, "io_requests": None, "io_bytes": None,
                      "mmio_exits_per_request": None, "requests_per_notification": None,
                      "tlb_misses": 7, "walk_refs": 26, "walk_refs_per_miss": 3.71, "modeled_cycles": 1500,
                      "wall_seconds": 0.5}


def test_vmm_figures_are_the_vms_own(tmp_path):
    record = total(figures(outcome_with(tmp_path, "shadow", VMM_STATS)))
    vm = VMM_VM
    assert record["guest_instructions"] == 500                      # the VM's, not the machine's 480
    assert record["modeled_cycles"] == 43500                        # the VM's, not the machine's 9999
    assert (record["vm_exits"], record["hypercalls"], record["exits"]) == (47, 3, vm["exits"])
    assert [record[key] for key in vm["counters"]] == list(vm["counters"].values())
    # the machine's TLB misses and walks while the VM ran (for one VM, all of the machine's)
    assert (record["tlb_misses"], record["walk_refs"]) == (VMM_VM["tlb_misses"], VMM_VM["walk_refs"])


def test_direct_mode_has_no_shadow_entries_and_its_fault_figures_come_from_its_exits(tmp_path):
    exits = {"true page fault": 4, "hypercall: mmu_update": 6}
    stats = run_stats({"vm1": {**VMM_VM, "exits": exits, "counters": {"updates_accepted": 9}}},
                      instructions=480, tlb_misses=90, walk_refs=200)
    record = total(figures(outcome_with(tmp_path, "direct", stats)))
    assert record["shadow_entries_created"] is record["shadow_entries_invalidated"] is None
    # no hidden faults and no page-table write traps, by design: zero, not "no figure"
    assert (record["hidden_faults"], record["true_faults"], record["pt_write_traps"]) == (0, 4, 0)


def test_sim_figures_are_the_simulators_with_no_vmm_figures(tmp_path):
    record = total(figures(outcome_with(tmp_path, "sim", SIM_STATS)))
    assert (record["vm_exits"], record["exits"], record["hypercalls"]) == (None, None, None)
    # with no TLB, every translation of the simulator is a walk, and it reports each as a miss
    assert (record["guest_instructions"], record["tlb_misses"], record["walk_refs"], record["modeled_cycles"]) \
        == (500, 600, 1200, 70000)


def test_run_uses_the_configurations_runner_and_keeps_what_it_returned(tmp_path):
    _, hello = read_workloads(write_manifest(tmp_path, MANIFEST))
    spec = plan(hello, "sim", KERNELS, DEFAULT_COST_MODEL)
    ran = Ran(b"out", 4, "power off", "", SIM_STATS)
    outcome = run(spec, {"sim": lambda given: ran if given is spec else None})
    assert (outcome.spec, outcome.ran) == (spec, ran)


def test_the_disk_figures_are_the_runs_io_with_per_request_ratios(tmp_path):
    """12 requests, 36 MMIO exits at the disk: 3 per request; 12 ring requests in 4 notifications: 3 each."""
    io = {"requests": 12, "bytes": 6144, "notifications": 4, "mmio_exits": 36}
    vmm = total(figures(outcome_with(tmp_path, "shadow", run_stats({"vm1": {**VMM_VM, "io": io}}))))
    assert [vmm[key] for key in ("io_requests", "io_bytes", "mmio_exits_per_request", "requests_per_notification")] \
        == [12, 6144, 3.0, 3.0]
    bare = total(figures(outcome_with(tmp_path, "bare", run_stats(instructions=5, io={"requests": 2, "bytes": 1024}))))
    assert [bare[key] for key in ("io_requests", "io_bytes", "mmio_exits_per_request", "requests_per_notification")] \
        == [2, 1024, None, None]


def test_each_run_gets_a_fresh_copy_of_the_workloads_disk_and_reports_its_final_bytes(tmp_path):
    template = tmp_path / "template.img"
    template.write_bytes(b"start" + bytes(1019))
    path = write_manifest(tmp_path, "[workloads.d]\nimage = 'x.elf'\ndisk = 'template.img'\n")
    (workload,) = read_workloads(path)
    seen = []

    def runner(spec):
        seen.append((spec.disk, spec.disk.read_bytes()))
        spec.disk.write_bytes(b"ended" + bytes(1019))
        return Ran(b"", 0, "halt", "", SIM_STATS)
    first = run(plan(workload, "sim", KERNELS, DEFAULT_COST_MODEL), {"sim": runner})
    second = run(plan(workload, "sim", KERNELS, DEFAULT_COST_MODEL), {"sim": runner})
    assert [data for _, data in seen] == [b"start" + bytes(1019)] * 2          # each from the template
    assert seen[0][0] != template and template.read_bytes().startswith(b"start")   # which is never written
    assert first.ran.disk_digest == second.ran.disk_digest == hashlib.sha256(b"ended" + bytes(1019)).hexdigest()

"""The guest OS across configurations: the counters move the way the design
predicts, and the unmodified and the paravirtual kernel run side by side."""

from __future__ import annotations

import json

import pytest

from kite.build import build_all
from tests.guestos.userharness import BUILD, CONFIGURATIONS, boot, expected_output, program_output


@pytest.fixture(scope="module", autouse=True)
def built_images():
    build_all()


def vm_figures(tmp_path, configuration: str, program: str) -> dict:
    """Boot `program` as init under `configuration` (shadow or direct), check
    its output and exit code, and return the only VM's figures."""
    kernel, options = CONFIGURATIONS[configuration]
    stats = tmp_path / f"{configuration}.json"
    run = boot([*options, str(BUILD / f"{kernel}.elf"), "--module", str(BUILD / f"{program}.elf"),
                "--stats-json", str(stats)], "")
    assert program_output(run.output) == expected_output(program) and run.exit_code == 0, run.stderr
    return json.loads(stats.read_text())["vms"]["vm1"]


@pytest.mark.slow
def test_pagestress_costs_shadow_traps_and_hidden_faults_and_direct_hypercalls(tmp_path):
    shadow = vm_figures(tmp_path, "shadow", "user-pagestress")
    direct = vm_figures(tmp_path, "direct", "user-pagestress")
    # shadow: every PTE the kernel writes is a traced write, every fresh page a hidden fault to fill
    assert shadow["counters"]["pt_write_traps"] > 0 and shadow["counters"]["hidden_faults"] > 0
    assert shadow["hypercalls"] == 0
    # direct: the same PTE changes arrive as validated updates in mmu_update batches, never as traps
    assert direct["exits"].get("page-table write", 0) == 0 and "hidden page fault" not in direct["exits"]
    assert direct["counters"]["updates_accepted"] > direct["exits"]["hypercall: mmu_update"] > 0
    assert direct["counters"]["updates_rejected"] == 0
    # the guest's own demand-zero faults are true faults in both
    assert shadow["counters"]["true_faults"] == direct["exits"]["true page fault"] > 0


@pytest.mark.slow
def test_native_kernel_under_shadow_and_pv_kernel_under_direct_run_side_by_side():
    run = boot(["--vm", f"{BUILD / 'kernel-native.elf'},paging=shadow,name=native,"
                        f"module={BUILD / 'user-fib.elf'}",
                "--vm", f"{BUILD / 'kernel-pv.elf'},paging=direct,name=pv,module={BUILD / 'user-fib.elf'}"], "")
    expected = expected_output("user-fib").splitlines()
    for name in ("native", "pv"):
        lines = [line.removeprefix(f"[{name}] ") for line in run.output.splitlines() if line.startswith(f"[{name}] ")]
        assert [line for line in lines if not line.startswith("kernel: ")] == expected
        assert f"kite: {name}: exit code 0 (done)" in run.stderr
    assert run.exit_code == 0

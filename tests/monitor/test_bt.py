"""`kite run --paging shadow --cpu bt`: the unmodified kernel's code binary-
translated (vmm/monitor/bt/), VMware's answer to the sensitive pair.

What is held: the rdsr demonstration guest prints the bare machine's answer
(trap-and-emulate's wrong one is tests/monitor/test_sensitive.py), its
critical section included; every guest OS workload and every random
differential program ends as on the bare machine, to the instruction count
(virtual time is exact although translated code runs extra instructions);
traced page-table writes are retranslated into callouts (adaptive
translation); the translation cache and its window go back to the VMM at the
end.  Hostile kernels are in test_bt_hostile.py; the translator's output in
test_bt_translator.py.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest

from tests.differential import harness
from tests.differential.generator import generate
from tests.monitor.guestrun import expected_transcript, run_guest
from tests.monitor.workloads import WORKLOADS, assert_runs_as_on_bare, phase, workload_run
from vmm.monitor.monitor import Monitor
from vmm.monitor.physmap import OWNER_FREE
from vmm.monitor.vm import VmConfig

BUILD = Path(__file__).resolve().parents[2] / "guestos" / "build"
DIFFERENTIAL_SEEDS = 60         # of tests/differential's 300 (the first 60 of test_nested's 100): the suite's share of time


# --- the sensitive pair, fixed by translation ------------------------------------------------------

def test_rdsr_demonstration_guest_prints_the_bare_machines_answer_under_bt(guest_run):
    bt, shadow = guest_run("sensitive", "bt"), guest_run("sensitive", "shadow")
    assert bt.output == expected_transcript("sensitive") and bt.exit_code == 23, bt.stderr
    assert shadow.output != bt.output          # trap-and-emulate still reads the machine's user mode


def test_the_critical_sections_restoring_wrsr_delivers_the_tick_that_expired_inside_it(guest_run):
    lines = guest_run("sensitive", "bt").output.splitlines()
    assert "timer expired inside the critical section, ticks 0" in lines
    assert "ticks right after the restoring wrsr: 1" in lines
    assert "rdsr after the restoring wrsr: 0x0000000f (KM=1 IE=1)" in lines


def test_the_sensitive_instructions_run_inline_without_a_vm_exit(guest_run):
    figures = guest_run("sensitive", "bt").stats["vms"]["vm1"]
    counters, exits = figures["counters"], figures["exits"]
    # rdsr, wrsr, di, ei, mfcr and mtcr of tvec/epc are loads and stores of the virtual CPU page
    assert not any(reason.startswith(("privileged: mfcr", "privileged: di", "privileged: ei")) for reason in exits)
    assert counters["bt_blocks_translated"] > 0 and counters["bt_overhead_instructions"] > 0


# --- equivalence with the bare machine ---------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_guest_os_workload_under_bt_prints_exits_and_counts_exactly_as_on_the_bare_machine(name):
    bare, bt = workload_run(name, "bare"), workload_run(name, "bt")
    assert_runs_as_on_bare(bt, bare)
    for part in ("boot", "workload"):
        assert phase(bt, part)["guest_instructions"] == phase(bare, part)["guest_instructions"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(DIFFERENTIAL_SEEDS))
def test_random_program_ends_in_the_same_state_on_bare_and_under_bt(seed):
    with tempfile.TemporaryDirectory(prefix="kite-bt-differential-") as scratch:
        checked = harness.check(generate(seed, (30, 100)), Path(scratch),
                                {"bare": harness.run_bare, "bt": harness.run_bt})
    assert checked.ok, checked.summary()


# --- adaptive translation ------------------------------------------------------------------------

@pytest.mark.slow
def test_stores_that_keep_trapping_as_page_table_writes_are_retranslated_into_callouts():
    # without the shadow's techniques every guest page-table write is traced: trap-and-emulate takes
    # 1,029 page-table-write exits on this run (spawnstorm: docs/vmm.md "Adaptive translation")
    bt = run_guest(BUILD / "kernel-native.elf", "bt", "--module", str(BUILD / "user-pagestress.elf"),
                   "--shadow-opt", "none")
    assert bt.output == (BUILD.parent / "user" / "expected" / "pagestress.out").read_text() and bt.exit_code == 0
    counters, exits = bt.stats["vms"]["vm1"]["counters"], bt.stats["vms"]["vm1"]["exits"]
    assert counters["bt_adaptive_retranslations"] > 0
    # the stores that wrote the page tables reach the shadow pager by a callout, not a trap
    assert 100 * exits["page-table write"] < counters["bt_callout_ptwrite"]


# --- the end -----------------------------------------------------------------------------------

def test_the_translation_cache_and_window_frames_go_back_to_the_vmm_at_the_end():
    monitor = Monitor(8 << 20, console_out=io.BytesIO())
    free_before = len(monitor.frames.owned_by(OWNER_FREE))
    monitor.create_vm(VmConfig(str(BUILD / "hello.elf"), "shadow", 2 << 20, cpu="bt"))
    _, (result,) = monitor.run(5_000_000)
    assert result.exit_code == 0 and result.stats.counters["bt_blocks_translated"] > 0
    assert len(monitor.frames.owned_by(OWNER_FREE)) == free_before


# --- the command line ------------------------------------------------------------------------

def kite(*arguments: str):
    from click.testing import CliRunner
    from vmm.cli import run
    return CliRunner().invoke(run, [str(argument) for argument in arguments])


def test_the_cli_offers_the_vmms_cpu_modes():
    from vmm.cli import CPU_MODES
    from vmm.monitor.vm import CPU_MODES as VM_CPU_MODES
    assert CPU_MODES == VM_CPU_MODES == ("trap", "bt")


@pytest.mark.parametrize("arguments, message", [
    (("--paging", "direct", "--cpu", "bt"), "--cpu bt needs --paging shadow"),
    (("--bare", "--cpu", "bt"), "--cpu bt needs --paging shadow"),
    (("--paging", "shadow", "--cpu", "bt", "--checkpoint-at", "100", "--checkpoint", "x.ckpt"),
     "cannot be checkpointed, migrated or traced yet"),
    (("--paging", "shadow", "--cpu", "bt", "--trace", "-"), "cannot be checkpointed, migrated or traced yet"),
])
def test_cpu_bt_where_it_cannot_run_is_a_usage_error(arguments, message):
    result = kite(*arguments, BUILD / "hello.elf")
    assert result.exit_code == 2 and message in result.output


def test_cpu_bt_in_a_vm_spec_needs_shadow_paging():
    result = kite("--vm", f"{BUILD / 'hello.elf'},paging=nested,cpu=bt")
    assert result.exit_code == 2 and "cpu=bt needs paging=shadow" in result.output


def test_a_vm_spec_takes_cpu_bt_and_the_vm_runs_translated():
    result = kite("--vm", f"{BUILD / 'hello.elf'},cpu=bt", "--stats", "--input-text", "")
    assert result.exit_code == 0 and "bt_blocks_translated" in result.stderr


@pytest.mark.parametrize("machine", [("--paging", "shadow", "--cpu", "bt", str(BUILD / "hello.elf")),
                                     ("--vm", f"{BUILD / 'hello.elf'},cpu=bt")])
def test_kite_debug_refuses_a_binary_translated_vm(machine):
    from click.testing import CliRunner
    from vmm.debug.cli import main
    result = CliRunner().invoke(main, [*machine, "--batch"])
    assert result.exit_code == 2 and "kite debug cannot debug a VM under --cpu bt yet" in result.output


def test_a_run_stopped_at_the_instruction_limit_in_translated_code_names_the_guests_pc():
    result = kite("--paging", "shadow", "--cpu", "bt", "--max-instructions", "100000",
                  BUILD / "kernel-native.elf", "--module", BUILD / "user-hello.elf", "--input-text", "")
    assert result.exit_code == 124
    stopped_at = int(result.stderr.split("reached at pc ")[1].split()[0], 16)
    assert stopped_at < 0xFFC00000             # a guest pc, never the translation cache's (0xFFFE0000 up)

"""Direct-mode (paravirtual) guests end to end, through `kite run`.

pv_demo builds its own address space, takes timer interrupts and a page
fault, and shuts down with exit code 7; its golden output and its hypercall
figures are written here by hand.  attack.s makes one malicious request per
run (-D ATTACK_*): each is refused with the expected code, nothing is
applied, and the VM goes on to exit 0.  Images in the wrong paging mode are
refused before they start.  Guests: tests/monitor/pvguests/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kite.build import GUESTOS
from vmm.cli import run
from vmm.monitor import hypercall_abi

from tests.monitor.guestrun import GUEST_MEM, PV_GUESTS as GUESTS


def kite_run(tmp_path: Path, *arguments) -> tuple:
    """`kite run ARGUMENTS --stats-json FILE`: (result, figures or None)."""
    stats = tmp_path / "stats.json"
    result = CliRunner().invoke(run, [*map(str, arguments), "--stats-json", str(stats)])
    return result, json.loads(stats.read_text()) if stats.exists() else None


# --- the include's numbers are the ABI's -------------------------------------------------------

def include_values() -> dict[str, int]:
    """Every `.equ NAME, number` of pv.inc and of the guest OS header it includes."""
    text = (GUESTS / "pv.inc").read_text() + (GUESTOS / "include" / "hypercall.inc").read_text()
    return {name: int(value, 0) for name, value in re.findall(r"\.equ\s+(\w+),\s*(0x[0-9A-Fa-f]+|\d+)\s", text)}


def test_pv_include_numbers_are_the_hypercall_abi():
    values = include_values()
    for call in hypercall_abi.HYPERCALLS:
        assert values[f"HC_{call.name.upper()}"] == call.number
    for code in hypercall_abi.RETURN_CODES[1:]:
        assert values[code.name] == code.value
    for field in hypercall_abi.START_INFO_FIELDS:
        if f"SI_{field.name.upper()}" in values:
            assert values[f"SI_{field.name.upper()}"] == field.offset
    for name in ("PIN_L1", "PIN_L2", "TIMER_PERIODIC", "START_INFO_ADDR"):
        assert values[name] == getattr(hypercall_abi, name)


# --- pv_demo ------------------------------------------------------------------------------------

PV_DEMO_OUTPUT = b"""\
pv_demo: direct-mode guest up
pv_demo: own address space: new L1 and L2 pinned, base switched
pv_demo: wrote 3 pages through 0x80000000, read back through gva = gpa: 3 match
pv_demo: timer ticks: 3, the main loop ran between them
trap: page fault, cause 0x00000004 at 0x40000000
pv_demo: page fault handled, continuing
pv_demo: shutting down with exit code 7
"""

# Counted from pv_demo.s: console_write once per say/putint/puthex (1 hello, 1 space, 3 wrote,
# 3 ticks, 5 in the page-fault report, 1 survived, 1 bye); one batch of two elements; two pins;
# set_timer and set_irq_enable on and off; return_from_trap after 3 ticks and 1 fault.
PV_DEMO_HYPERCALLS = {
    "console_write": 15, "set_trap_vector": 1, "mmu_update": 1, "tlb_flush": 1, "pin_table": 2,
    "set_base": 1, "set_timer": 2, "set_irq_enable": 2, "return_from_trap": 4, "shutdown": 1,
}


def test_pv_demo_builds_its_space_takes_ticks_and_a_fault_and_exits_7(tmp_path, guest):
    result, figures = kite_run(tmp_path, "--paging", "direct", "--mem", GUEST_MEM, guest("pv_demo"))
    assert result.stdout_bytes == PV_DEMO_OUTPUT, result.stderr
    assert result.exit_code == 7
    vm = figures["vms"]["vm1"]
    hypercalls = {reason.removeprefix("hypercall: "): count for reason, count in vm["exits"].items()
                  if reason.startswith("hypercall: ")}
    assert hypercalls == PV_DEMO_HYPERCALLS
    assert vm["hypercalls"] == sum(PV_DEMO_HYPERCALLS.values())
    assert vm["exits"]["interrupt injected"] == 3 and vm["exits"]["true page fault"] == 1
    # the VMM's domain builder pins the bootstrap L1 and L2 and sets the first base
    assert vm["counters"] | {"forced_flushes": 0} == {
        "updates_accepted": 2, "updates_rejected": 0, "batches": 1, "pins": 2 + 2, "unpins": 0,
        "base_switches": 1 + 1, "tlb_flushes": 1, "invlpgs": 0, "forced_flushes": 0}


# --- one malicious request per run ---------------------------------------------------------------

ALIVE = "attack guest still running\n"
UNCHANGED = "  entry unchanged\n"
STILL_BASE = "  bootstrap L2 still the base: unpin_table -> -16\n"

ATTACKS = {
    "ATTACK_OTHER_VM": "attack other_vm_frame: mmu_update -> -1 (done 0)\n" + UNCHANGED,
    "ATTACK_VMM_FRAME": "attack vmm_frame: mmu_update -> -1 (done 0)\n" + UNCHANGED,
    "ATTACK_MMIO": "attack mmio_page: mmu_update -> -1 (done 0)\n" + UNCHANGED,
    "ATTACK_TABLE_WRITABLE": "attack table_writable: mmu_update -> -22 (done 0)\n" + UNCHANGED,
    "ATTACK_PIN_WRITABLE": "attack pin_writable_page: pin_table -> -22\n" + UNCHANGED
                           + "  frame still an ordinary writable page\n",
    "ATTACK_W_FLIP": "attack w_bit_flip: mmu_update -> -22 (done 0)\n" + UNCHANGED,
    "ATTACK_BASE_DATA": "attack base_data_page: set_base -> -22\n" + STILL_BASE,
    "ATTACK_BASE_UNVALIDATED": "attack base_unvalidated: mmu_update read-only -> 0 (done 1)\n"
                               "  then set_base on it -> -22\n" + STILL_BASE,
    "ATTACK_PDE_NOT_TABLE": "attack pde_not_a_table: mmu_update -> -22 (done 0)\n" + UNCHANGED,
    "ATTACK_BEYOND_MEMORY": "attack beyond_memory: mmu_update -> -22 (done 0)\n" + UNCHANGED,
    "ATTACK_BATCH_OUTSIDE": "attack batch_outside: mmu_update -> -14 (done 1)\n" + UNCHANGED,
    "ATTACK_MISALIGNED": "attack misaligned_ptr: mmu_update -> -22 (done 0)\n" + UNCHANGED,
    "ATTACK_UNPIN_BASE": "attack unpin_base: unpin_table -> -16\n" + STILL_BASE,
    "ATTACK_VCPU_UNMAPPED": "attack vcpu_unmapped: set_vcpu_page -> -14\n",
    "ATTACK_VCPU_READONLY": "attack vcpu_page_table: set_vcpu_page -> -14\n",       # not mapped writable
    "ATTACK_VCPU_MISALIGNED": "attack vcpu_misaligned: set_vcpu_page -> -22\n",
    "ATTACK_VCPU_WRAP": "attack vcpu_top_of_memory: set_vcpu_page -> -14\n",
    # registered, the page is held writable by the VMM: once its own mapping is read-only it would be
    # pinnable, but the hold keeps it from ever becoming a page table the VMM then writes into
    "ATTACK_VCPU_THEN_PIN": "attack vcpu_then_pin: set_vcpu_page -> 0\n"
                            "  mmu_update read-only -> 0 (done 1)\n  then pin_table -> -22\n",
    "ATTACK_USER_HYPERCALL": "attack user_hypercall: entering user mode\n"
                             "  trap: illegal instruction from user mode\n"
                             "  a0 and a1 unchanged\n"
                             "  back in the kernel by syscall\n",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_malicious_request_is_refused_with_nothing_applied_and_the_vm_goes_on(tmp_path, guest, attack):
    image = guest("attack", attack)
    if attack == "ATTACK_OTHER_VM":          # the frames right after this VM's are the neighbour's
        neighbour = guest("attack", "ATTACK_VMM_FRAME")
        result, figures = kite_run(tmp_path, "--vm", f"{image},paging=direct,mem={GUEST_MEM},name=a",
                                   "--vm", f"{neighbour},paging=direct,mem={GUEST_MEM},name=b")
        output = "".join(line.removeprefix("[a] ") for line in result.stdout_bytes.decode()
                         .splitlines(keepends=True) if line.startswith("[a] "))
        vm = figures["vms"]["a"]
    else:
        result, figures = kite_run(tmp_path, "--paging", "direct", "--mem", GUEST_MEM, image)
        output, vm = result.stdout_bytes.decode(), figures["vms"]["vm1"]
    assert output == ATTACKS[attack] + ALIVE, result.stderr
    assert result.exit_code == 0 and vm["state"] == "done"
    if "mmu_update ->" in ATTACKS[attack] and "-> 0" not in ATTACKS[attack]:
        assert vm["counters"]["updates_rejected"] == 1
        assert vm["counters"]["updates_accepted"] == (1 if attack == "ATTACK_BATCH_OUTSIDE" else 0)


def test_user_mode_hypercall_is_reflected_as_illegal_instruction_not_run(tmp_path, guest):
    _, figures = kite_run(tmp_path, "--paging", "direct", "--mem", GUEST_MEM,
                          guest("attack", "ATTACK_USER_HYPERCALL"))
    exits = figures["vms"]["vm1"]["exits"]
    assert exits["reflect: hypercall from user mode"] == 1
    assert "hypercall: shutdown" in exits and exits["hypercall: shutdown"] == 1   # only the kernel's


# --- the wrong paging mode ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [("--paging", "shadow"), ("--bare",)], ids=["shadow", "bare"])
def test_direct_image_outside_direct_mode_is_a_one_line_error(tmp_path, guest, mode):
    result, _ = kite_run(tmp_path, *mode, "--mem", GUEST_MEM, guest("pv_demo"))
    assert result.exit_code == 2 and result.stdout_bytes == b""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("kite: error: ") and "direct" in result.stderr


def test_plain_image_in_direct_mode_is_a_one_line_error(tmp_path, guest):
    result, _ = kite_run(tmp_path, "--paging", "direct", "--mem", GUEST_MEM, guest("crasher"))
    assert result.exit_code == 2 and result.stdout_bytes == b""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("kite: error: ") and "not built for direct paging" in result.stderr

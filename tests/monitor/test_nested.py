"""`kite run --paging nested`: the unmodified kernel in the machine's guest mode,
its memory behind the VMM's nested tables (vmm/monitor/nested.py, guestmode.py).

What is held: every guest OS workload and every random differential program
ends as on the bare machine; the rdsr demonstration prints the bare machine's
answer (trap-and-emulate's wrong one is tests/monitor/test_sensitive.py);
nested takes at least 10x fewer VM exits than shadow on the page-table-heavy
workloads; hostile guests stop only themselves, with the bare machine's
message; the nested tables hold their invariants (audit) and go back to the
VMM at the end.  The test guests' bare-vs-VMM equivalence and the access
matrix under nested are in test_shadow_equivalence.py; isolation beside a
direct-mode VM below.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.isa import EXC_ILLEGAL, PAGE_SHIFT, PTE_P, PTE_W
from asm.linker import LinkOptions, link
from tests.differential import harness
from tests.differential import layout as L
from tests.differential.generator import generate
from tests.monitor.guestrun import GUEST_MEM, build_pv_guest, expected_transcript
from tests.monitor.test_direct_guests import kite_run
from tests.monitor.test_isolation import SHADOW_LINES, lines_of, pv_lines, PV_FIRST_ASKS
from tests.monitor.workloads import WORKLOADS, assert_runs_as_on_bare, phase, workload_run
from vmm.cli import run
from vmm.machine.devices.uart import ConsoleInput
from vmm.monitor.monitor import VMM_FRAMES, Monitor
from vmm.monitor.nested import NestedOptions
from vmm.monitor.physmap import OWNER_VMM
from vmm.monitor.vm import VmConfig

BUILD = Path(__file__).resolve().parents[2] / "guestos" / "build"
PAGE_TABLE_HEAVY = ("spawnstorm", "pagestress")
DIFFERENTIAL_SEEDS = 100        # of tests/differential's 300 (all 300 agree): the suite's share of time


def kite(*arguments: str):
    return CliRunner().invoke(run, [str(argument) for argument in arguments])


# --- equivalence with the bare machine ---------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_guest_os_workload_under_nested_prints_and_exits_exactly_as_on_the_bare_machine(name):
    assert_runs_as_on_bare(workload_run(name, "nested"), workload_run(name, "bare"))


@pytest.mark.slow
@pytest.mark.parametrize("name", PAGE_TABLE_HEAVY)
def test_nested_takes_at_least_ten_times_fewer_vm_exits_than_shadow_in_the_workload_phase(name):
    shadow, nested = phase(workload_run(name, "shadow")), phase(workload_run(name, "nested"))
    assert nested["guest_instructions"] == shadow["guest_instructions"]
    assert 10 * nested["vm_exits"] <= shadow["vm_exits"], (nested["exits"], shadow["exits"])
    # no shadow machinery at all: the exits left are the devices' (and the guest's own faults are its own)
    assert set(nested["exits"]) <= {"mmio", "privileged: wfi", "privileged: halt"}
    assert nested["hidden_faults"] == nested["pt_write_traps"] == nested["true_faults"] == 0


def run_nested(image: Path, console_in: bytes) -> harness.State:
    """The differential harness's engine for nested paging: registers, pc and
    control registers from the CPU in guest mode, else from the register file
    and vcpu.cr (every bit of status: the guest's own), RAM through the VM's map."""
    config = VmConfig(str(image), "nested", L.RAM_SIZE)
    monitor = Monitor(harness.machine_mem_for([config]), console_out=(console := io.BytesIO()),
                      console_in=ConsoleInput(console_in))
    vm = monitor.create_vm(config)
    result, (vm_result,) = monitor.run(L.MAX_INSTRUCTIONS)
    if harness.VMM_ERROR in vm_result.message.lower() or str(vm_result.state) == harness.VMM_ERROR:
        raise harness.VmmError(vm_result.message)
    cpu = monitor.cpu
    if cpu.in_guest:
        regs, pc, crs = tuple(cpu.regs), cpu.pc, tuple(cpu.cr)
    else:
        regs, pc = (tuple(cpu.regs), cpu.pc) if monitor.current is vm else (tuple(vm.regs), vm.pc)
        crs = tuple(vm.vcpu.cr)
    end = {"done": harness.END_DONE, "crashed": harness.END_FAULT}.get(str(vm_result.state),
                                                                       harness.end_of(result.reason))
    if harness.end_of(result.reason) == harness.END_LIMIT:
        end = harness.END_LIMIT
    elif end == harness.END_FAULT and harness.END_NO_SOURCE in vm_result.message:
        end = harness.END_NO_SOURCE
    exit_code = result.exit_code if end == harness.END_LIMIT else vm_result.exit_code
    return harness.State(end, exit_code, harness.figures(vm_result.stats)["guest_instructions"], pc, regs, crs,
                         console.getvalue(), vm.memory.read_bytes(0, L.RAM_SIZE), vm_result.message)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(DIFFERENTIAL_SEEDS))
def test_random_program_ends_in_the_same_state_on_bare_and_under_nested(seed):
    with tempfile.TemporaryDirectory(prefix="kite-nested-differential-") as scratch:
        checked = harness.check(generate(seed, (30, 100)), Path(scratch),
                                {"bare": harness.run_bare, "nested": run_nested})
    assert checked.ok, checked.summary()


# --- the sensitive pair, fixed by hardware -------------------------------------------------------

def test_rdsr_demonstration_guest_prints_the_bare_machines_answer_under_nested(guest_run):
    nested, shadow = guest_run("sensitive", "nested"), guest_run("sensitive", "shadow")
    assert nested.output == expected_transcript("sensitive") and nested.exit_code == 23, nested.stderr
    assert shadow.output != nested.output          # trap-and-emulate still reads the machine's user mode
    assert nested.stats["vms"]["vm1"]["exits"].keys() <= {"mmio", "privileged: halt"}


# --- several VMs side by side, isolated ------------------------------------------------------------

@pytest.mark.slow
def test_nested_shadow_and_direct_kernels_run_side_by_side_each_as_alone():
    fib = BUILD / "user-fib.elf"
    result = kite("--vm", f"{BUILD / 'kernel-native.elf'},paging=nested,name=nested,module={fib}",
                  "--vm", f"{BUILD / 'kernel-native.elf'},paging=shadow,name=shadow,module={fib}",
                  "--vm", f"{BUILD / 'kernel-pv.elf'},paging=direct,name=pv,module={fib}",
                  "--max-instructions", "30000000", "--input-text", "")
    alone = kite("--bare", BUILD / "kernel-native.elf", "--module", fib, "--input-text", "")
    for name in ("nested", "shadow", "pv"):
        own = [line.removeprefix(f"[{name}] ") for line in result.stdout_bytes.decode().splitlines()
               if line.startswith(f"[{name}] ") and not line.startswith(f"[{name}] kernel: ")]
        assert own == [line for line in alone.stdout_bytes.decode().splitlines() if not line.startswith("kernel: ")]
        assert f"kite: {name}: exit code 0 (done)" in result.stderr
    assert result.exit_code == 0


def test_nested_guest_mapping_4mib_of_gpa_reaches_only_its_own_ram_beside_a_direct_guest(tmp_path):
    pv, scanner = build_pv_guest(tmp_path, "isolation_pv"), build_pv_guest(tmp_path, "isolation_shadow")
    result, stats = kite_run(tmp_path, "--vm", f"{pv},paging=direct,mem={GUEST_MEM},name=pv",
                             "--vm", f"{scanner},paging=nested,mem={GUEST_MEM},name=shadow")
    assert lines_of(result, "shadow") == SHADOW_LINES, result.stderr     # 512 pages readable, 512 bus errors
    assert lines_of(result, "pv") == pv_lines(PV_FIRST_ASKS)
    assert stats["vms"]["shadow"]["exits"]["bus error"] == 512
    assert stats["vms"]["shadow"]["counters"]["nested_faults"] >= 512


# --- hostile guests ----------------------------------------------------------------------------------

HOSTILE = """
        .equ POWER_EXIT, 0xF0003000
        .text
        .globl _start
_start:
        la      t0, handler
        mtcr    tvec, t0
        .if ROOT
        li      t0, ROOT | 1            # the guest's own root: beyond its RAM, or in MMIO space
        mtcr    ptb, t0
        .endif
        li      s0, STORM               # loads from a gpa that is no RAM; the handler skips each
        li      s1, 0
1:      beqz    s0, 2f
        li      t1, TARGET
        lw      t2, 0(t1)
        addi    s0, s0, -1
        j       1b
2:      li      t1, STORM               # exit code 7 when every load raised its bus error
        sub     s1, s1, t1
        addi    s1, s1, 7
        li      t0, POWER_EXIT
        sw      s1, 0(t0)
        halt
handler:
        addi    s1, s1, 1               # bus errors seen
        mfcr    t3, epc
        addi    t3, t3, 4
        mtcr    epc, t3
        rfe
"""
BYSTANDER = """
        .text
        .globl _start
_start:
        la      a0, message
        li      t0, 0xF0000000
1:      lbu     t1, 0(a0)
        beqz    t1, 2f
        sw      t1, 0(t0)
        addi    a0, a0, 1
        j       1b
2:      li      t0, 0xF0003000
        sw      zero, 0(t0)
        halt
        .rodata
message: .asciz "bystander alive\\n"
"""


def image_of(directory: Path, name: str, source: str, **defines: int) -> Path:
    image = directory / f"{name}.elf"
    image.write_bytes(link([assemble(source, f"{name}.s", defines, [])], LinkOptions(text_address=0x100000)))
    return image


@pytest.mark.parametrize("root, storm, target, ending", [
    (0, 3000, 0x00E00000, "a: exit code 7 (done)"),          # a storm of nested faults beyond its RAM
    (0, 100, 0xF0008000, "a: exit code 7 (done)"),           # loads from MMIO space with no device there
    (0x00E00000, 1, 0, "triple fault"),                      # a root beyond guest RAM
    (0xF0008000, 1, 0, "triple fault"),                      # page tables in MMIO space
], ids=["fault storm", "no device", "root beyond RAM", "tables in MMIO"])
def test_hostile_nested_guest_stops_only_itself_as_the_bare_machine_stops(tmp_path, root, storm, target, ending):
    hostile = image_of(tmp_path, "hostile", HOSTILE, ROOT=root, STORM=storm, TARGET=target)
    bystander = image_of(tmp_path, "bystander", BYSTANDER)
    result = kite("--vm", f"{hostile},paging=nested,mem=2M,name=a", "--vm", f"{bystander},paging=nested,mem=2M,name=b",
                  "--max-instructions", "2000000", "--input-text", "")
    bare = kite("--bare", hostile, "--mem", "2M", "--max-instructions", "2000000", "--input-text", "")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert ending in result.stderr and "kite: b: exit code 0 (done)" in result.stderr
    assert "[b] bystander alive" in result.stdout_bytes.decode()
    assert bare.exit_code == (125 if ending == "triple fault" else 7)
    if ending == "triple fault":         # the bare machine's own stop message, word for word
        bare_message = next(line for line in bare.stderr.splitlines() if "triple fault" in line)
        assert bare_message.split("triple fault", 1)[1].split(" (pc ")[0] in result.stderr


def test_guest_vmenter_is_an_illegal_instruction_the_vcpu_lacks_the_extension(tmp_path):
    source = """
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        vmenter zero
        halt
handler:
        mfcr    t0, cause
        li      t1, 0xF0003000
        sw      t0, 0(t1)
        halt
"""
    result = kite("--paging", "nested", image_of(tmp_path, "vmenter", source), "--mem", "2M", "--input-text", "")
    assert result.exit_code == EXC_ILLEGAL, result.stderr     # as on a machine without the extension


# --- the nested tables ------------------------------------------------------------------------------

def nested_vm(tmp_path, options: NestedOptions = NestedOptions()):
    monitor = Monitor(4 << 20, console_out=io.BytesIO())
    vm = monitor.create_vm(VmConfig(str(image_of(tmp_path, "bystander", BYSTANDER)), "nested", 2 << 20,
                                    nested=options))
    return monitor, vm


def test_nested_tables_map_exactly_the_guests_frames_and_the_audit_sees_a_changed_entry(tmp_path):
    monitor, vm = nested_vm(tmp_path)
    tables = vm.mode.tables
    assert vm.mode.audit() == []
    assert not set(tables.owned) & set(vm.physmap.p2m)                  # the VMCS and tables: never guest RAM
    pte = (tables.table_mfns[0] << PAGE_SHIFT) + 4 * 3
    monitor.machine.memory.write(pte, 4, (tables.vmcs_mfn << PAGE_SHIFT) | PTE_P | PTE_W)   # gfn 3 -> the VMCS
    assert vm.mode.audit() == [f"nested PTE of gfn 0x3: {(tables.vmcs_mfn << PAGE_SHIFT) | 3:#010x}, "
                               f"expected {tables.expected_pte(3):#010x}"]


def test_nested_frames_go_back_to_the_vmm_when_the_vm_ends(tmp_path):
    monitor, vm = nested_vm(tmp_path)
    held = len(monitor.frames.owned_by(OWNER_VMM))
    monitor.run(100_000)
    assert vm.state == "done" and held == VMM_FRAMES + len(vm.mode.tables.owned)
    assert len(monitor.frames.owned_by(OWNER_VMM)) == VMM_FRAMES


@pytest.mark.parametrize("options", ["pwc", "nopwc"])
def test_the_page_walk_cache_switch_changes_walk_references_not_what_the_guest_sees(options):
    fib = BUILD / "user-fib.elf"
    with tempfile.TemporaryDirectory() as scratch:
        stats = Path(scratch) / "stats.json"
        result = kite("--paging", "nested", "--nested-opt", options, BUILD / "kernel-native.elf", "--module", fib,
                      "--input-text", "", "--stats-json", stats)
        import json
        vm = json.loads(stats.read_text())["vms"]["vm1"]
    assert result.exit_code == 0 and "fib" in result.stdout_bytes.decode()
    if options == "pwc":
        assert vm["counters"]["pwc_hits"] > 0
    else:
        assert vm["counters"]["pwc_hits"] == 0
        # every miss with the guest's paging on: 8 references, plus any A/D write-back
        assert vm["walk_refs"] / vm["tlb_misses"] > 6


def test_nested_opt_without_nested_paging_is_a_usage_error():
    result = kite("--paging", "shadow", "--nested-opt", "nopwc", BUILD / "kernel-native.elf")
    assert result.exit_code == 2 and "--nested-opt applies to --paging nested" in result.output

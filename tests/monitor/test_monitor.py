"""The VMM end to end: the same image under shadow paging as on the bare machine,
several VMs on one machine, a crashing guest, the sensitive pair, and refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from kite.build import GUESTOS, build_all
from vmm.cli import run
from vmm.monitor.monitor import VMM_FRAMES, Monitor
from vmm.monitor.physmap import OWNER_FREE, OWNER_VMM
from vmm.monitor.vm import VmConfig

EXAMPLES = GUESTOS / "build"


def image(tmp_path: Path, source: str, name: str = "guest") -> str:
    """Assemble and link `source` at 0x100000; the image's path."""
    path = tmp_path / f"{name}.elf"
    path.write_bytes(link([assemble(source, f"{name}.s")], LinkOptions(text_address=0x100000)))
    return str(path)


def kite_run(*arguments):
    return CliRunner().invoke(run, [str(argument) for argument in arguments])


def stats_of(tmp_path: Path, *arguments) -> tuple:
    """Run with --stats-json; (result, figures)."""
    path = tmp_path / f"stats{len(list(tmp_path.iterdir()))}.json"
    result = kite_run(*arguments, "--stats-json", path)
    return result, json.loads(path.read_text())


@pytest.fixture(scope="module")
def examples():
    build_all()
    return {name: str(EXAMPLES / f"{name}.elf") for name in ("hello", "boot_demo")}


@pytest.mark.parametrize("name", ["hello", "boot_demo"])
def test_example_under_shadow_paging_matches_bare_output_exit_code_and_instruction_count(tmp_path, examples, name):
    bare, bare_stats = stats_of(tmp_path, examples[name], "--bare")
    shadow, shadow_stats = stats_of(tmp_path, examples[name], "--paging", "shadow")
    assert shadow.stdout_bytes == bare.stdout_bytes and shadow.exit_code == bare.exit_code, shadow.stderr
    vm = shadow_stats["vms"]["vm1"]
    # the guest retires exactly the bare machine's instruction stream, so its timer fires at the same tick
    assert vm["guest_instructions"] == bare_stats["instructions"]
    assert shadow_stats["ticks"] == bare_stats["ticks"]
    assert vm["exits"]["mmio"] == bare_stats["device_writes"]      # every UART/timer/power store trapped
    assert vm["counters"]["hidden_faults"] > 0 and vm["counters"]["true_faults"] == 0
    # one VM: the machine's walks all happened while it ran
    assert (vm["tlb_misses"], vm["walk_refs"]) == (shadow_stats["tlb_misses"], shadow_stats["walk_refs"])


def test_boot_demo_shadow_run_builds_roots_per_virtual_mode_and_reflects_the_timer(tmp_path, examples):
    _, figures = stats_of(tmp_path, examples["boot_demo"], "--paging", "shadow")
    vm = figures["vms"]["vm1"]
    assert vm["exits"]["interrupt injected"] == 1
    assert vm["exits"]["privileged: mtcr"] == 2           # tvec and ptb
    assert vm["counters"]["roots_built"] == 2              # paging off, then the guest's directory
    assert vm["modeled_cycles"] > vm["guest_instructions"]


def test_three_vms_share_the_machine_with_prefixed_output_and_their_own_exit_codes(examples):
    result = kite_run("--vm", examples["boot_demo"], "--vm", f"{examples['hello']},name=hi",
                      "--vm", f"{examples['boot_demo']},name=demo2,mem=2M")
    lines = result.stdout_bytes.decode().splitlines()
    assert sorted(lines) == sorted(
        [f"[{vm}] kite32: {text}" for vm in ("vm1", "demo2")
         for text in ("booting", "paging on", "tick", "timer interrupt taken, exit code 7")]
        + ["[hi] hello from kite32"])
    assert lines.index("[vm1] kite32: booting") < lines.index("[vm1] kite32: paging on")
    assert "kite: hi: exit code 0 (done)" in result.stderr
    assert "kite: demo2: exit code 7 (done)" in result.stderr
    assert result.exit_code == 7


CRASHER = """
        .text
        .globl _start
_start: li      t0, 0xE0000000          # one lui; no RAM there, and no trap vector: the VM stops
        lw      t1, 0(t0)               # at 0x00100004
        halt
"""


def test_a_crashing_guest_stops_alone_and_the_other_vm_runs_to_its_end(tmp_path, examples):
    crasher = image(tmp_path, CRASHER, "crasher")
    result = kite_run("--vm", f"{crasher},name=bad", "--vm", f"{examples['boot_demo']},name=good")
    assert "[good] kite32: timer interrupt taken, exit code 7" in result.stdout_bytes.decode()
    assert ("kite: bad: stopped: unhandled bus error at pc 0x00100004 badaddr 0xe0000000 "
            "(tvec is 0)") in result.stderr
    assert "kite: bad: exit code 125 (crashed)" in result.stderr
    assert "kite: good: exit code 7 (done)" in result.stderr
    assert result.exit_code == 125 and "Traceback" not in result.stderr


SENSITIVE = """
        .equ POWER, 0xF0003000
        .text
        .globl _start
_start: rdsr    a0                      # kernel mode on bare hardware: KM = 1
        andi    a0, a0, 1
        li      t0, POWER
        sw      a0, 0(t0)               # exit code = the KM bit the kernel saw
        halt
"""


def test_rdsr_is_sensitive_but_not_privileged_so_the_deprivileged_kernel_sees_user_mode(tmp_path):
    guest = image(tmp_path, SENSITIVE)
    assert kite_run(guest, "--bare").exit_code == 1
    # no trap, so no emulation: the guest kernel reads the machine's KM = 0 (Popek-Goldberg)
    assert kite_run(guest, "--paging", "shadow").exit_code == 0


USER_HYPERCALL = """
        .equ POWER, 0xF0003000
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        la      t0, user
        mtcr    epc, t0
        li      t0, 1                   # KM = 1, PKM = 0: rfe enters user mode
        mtcr    status, t0
        rfe
user:   li      a0, 9                   # shutdown(42), which user mode may not ask for
        li      a1, 42
        hypercall
        halt
handler:
        mfcr    t0, cause
        li      t1, POWER
        sw      t0, 0(t1)               # exit code = the cause the kernel was given
        halt
"""


def test_a_hypercall_from_guest_user_mode_is_reflected_as_an_illegal_instruction(tmp_path):
    result = kite_run(image(tmp_path, USER_HYPERCALL), "--paging", "shadow")
    assert result.exit_code == 1, result.stderr             # EXC_ILLEGAL, as on bare hardware
    assert kite_run(image(tmp_path, USER_HYPERCALL), "--bare").exit_code == 1


TRIPLE = """
        .text
        .globl _start
_start: li      t0, 0x00800000          # the trap vector is outside this 4 MiB guest's RAM
        mtcr    tvec, t0
        break
"""


def test_a_guest_whose_trap_vector_cannot_be_fetched_is_stopped_with_a_triple_fault(tmp_path):
    guest = image(tmp_path, TRIPLE)
    shadow = kite_run(guest, "--paging", "shadow", "--mem", "4M")
    assert shadow.exit_code == 125
    assert "triple fault: bus error fetching the trap vector at 0x00800000" in shadow.stderr
    assert "triple fault" in kite_run(guest, "--bare", "--mem", "4M").stderr


def test_a_missing_image_in_direct_mode_is_reported_as_missing(tmp_path):
    result = kite_run(tmp_path / "none.elf", "--paging", "direct")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"kite: error: {tmp_path / 'none.elf'}: cannot read image: No such file or directory"


def test_a_plain_image_in_direct_mode_is_a_one_line_error(examples):
    result = kite_run(examples["hello"], "--paging", "direct")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("not built for direct paging (no .note.Kite note): run it with "
                                          "--paging shadow")


ECHO_BY_HYPERCALL = """
        .text
        .globl _start
_start: li      a0, 13                  # console_read(buffer, 64)
        la      a1, buffer
        li      a2, 64
        hypercall
        beqz    a0, done                # 0: the input has ended
        mov     a2, a0
        li      a0, 0                   # console_write(buffer, count)
        la      a1, buffer
        hypercall
        j       _start
done:   li      a0, 9                   # shutdown(3)
        li      a1, 3
        hypercall
        .bss
buffer: .space 64
"""


def test_console_read_and_write_hypercalls_echo_the_input_until_it_ends(tmp_path):
    result = kite_run(image(tmp_path, ECHO_BY_HYPERCALL), "--paging", "shadow",
                      "--input-text", "through the hypervisor\n" * 5)
    assert result.stdout_bytes == b"through the hypervisor\n" * 5
    assert result.exit_code == 3, result.stderr


def test_ended_vms_give_every_frame_back_and_direct_accounting_returns_to_zero(tmp_path, examples):
    monitor = Monitor(8 << 20, console_out=io.BytesIO())
    for name in ("a", "b"):
        monitor.create_vm(VmConfig(examples["boot_demo"], "shadow", 2 << 20, name))
    _, results = monitor.run(1_000_000)
    assert [vm.exit_code for vm in results] == [7, 7]
    frames = monitor.frames
    assert frames.owned_by(1) == frames.owned_by(2) == []
    assert frames.owned_by(OWNER_VMM) == list(range(VMM_FRAMES))     # every shadow page freed
    assert len(frames.owned_by(OWNER_FREE)) == frames.count - VMM_FRAMES


WFI_FOREVER = """
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        ei
        wfi                             # no timer, no disk, no console interrupt: nothing can wake it
        halt
handler:
        halt
"""


@pytest.mark.parametrize("machine", [["--bare"], ["--sim"], ["--paging", "shadow"], ["--vm"]])
def test_wfi_that_nothing_can_wake_stops_with_exit_125_on_every_machine(tmp_path, machine):
    """docs/isa.md "Privileged instructions": the machine stops with the error
    "wfi with no interrupt source"; under the VMM that VM is stopped the same way."""
    guest = image(tmp_path, WFI_FOREVER)
    result = kite_run(*machine, guest) if machine != ["--vm"] else kite_run("--vm", guest, "--vm", guest)
    assert result.exit_code == 125, result.stderr
    assert "wfi with no interrupt source at pc 0x00100014 <_start+0x14>" in result.stderr   # after the wfi


FLUSHER = """
        .text
        .globl _start
_start: tlbflush                        # the test makes the VMM's emulation of it fail
        halt
"""


def test_a_vmm_failure_stops_only_that_guest_and_is_reported_as_the_vmms(tmp_path, examples, monkeypatch):
    from vmm.monitor import emulate

    def broken(monitor, vm, operands, epc):
        raise KeyError("a deliberate VMM bug")

    monkeypatch.setitem(emulate.EMULATORS, "tlbflush", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    flusher = image(tmp_path, FLUSHER, "flusher")
    result = kite_run("--vm", f"{flusher},name=bad", "--vm", f"{examples['boot_demo']},name=good")
    assert "[good] kite32: timer interrupt taken, exit code 7" in result.stdout_bytes.decode()
    assert ("kite: bad: stopped: internal VMM error while handling privileged instruction at 0x00100000: "
            "KeyError('a deliberate VMM bug') (traceback in ") in result.stderr
    assert "kite: bad: exit code 70 (vmm error)" in result.stderr
    assert result.exit_code == 70
    (log,) = tmp_path.glob("kite-vmm-error-*.log")
    assert "in broken" in log.read_text() and "KeyError: 'a deliberate VMM bug'" in log.read_text()


def test_a_failing_teardown_is_an_internal_error_and_keeps_the_vms_frames(tmp_path, examples, monkeypatch):
    from vmm.monitor.paging import ShadowMode

    def broken_teardown(self):
        raise RuntimeError("teardown bug")

    monkeypatch.setattr(ShadowMode, "teardown", broken_teardown)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monitor = Monitor(24 << 20, console_out=io.BytesIO())
    vm = monitor.create_vm(VmConfig(examples["hello"], "shadow", 4 << 20))
    _, (ended,) = monitor.run()
    assert (ended.state, ended.exit_code) == ("vmm error", 70)
    assert ended.message.startswith("internal VMM error while tearing the VM down: RuntimeError('teardown bug')")
    assert len(monitor.frames.owned_by(vm.vm_id)) == (4 << 20) >> 12


def test_kite_run_offers_exactly_the_vmms_paging_modes():
    from vmm.cli import PAGING_MODES
    from vmm.monitor.paging import MODES
    assert PAGING_MODES == tuple(MODES)


KERNEL, HELLO = EXAMPLES / "kernel-native.elf", EXAMPLES / "user-hello.elf"


def test_shadow_opt_chooses_the_techniques_and_the_guest_sees_no_difference(tmp_path, examples):
    runs = {option: stats_of(tmp_path, KERNEL, "--module", HELLO, "--paging", "shadow", "--shadow-opt", option)
            for option in ("all", "none", "flood,prefetch")}
    outputs = {(result.stdout_bytes, result.exit_code) for result, _ in runs.values()}
    assert len(outputs) == 1
    counters = {option: figures["vms"]["vm1"]["counters"] for option, (_, figures) in runs.items()}
    assert counters["none"]["prefetched"] == counters["flood,prefetch"]["unsyncs"] == 0
    assert counters["flood,prefetch"]["prefetched"] == counters["all"]["prefetched"] > 0


@pytest.mark.parametrize("arguments, message", [
    (["--paging", "shadow", "--shadow-opt", "turbo"], "expected all, none or some of flood, unsync, prefetch"),
    (["--paging", "direct", "--shadow-opt", "none"], "--shadow-opt applies to --paging shadow"),
    (["--bare", "--shadow-opt", "none"], "--shadow-opt applies to --paging shadow"),
])
def test_a_bad_or_misplaced_shadow_opt_is_a_usage_error(examples, arguments, message):
    result = kite_run(*arguments, examples["hello"])
    assert result.exit_code == 2 and message in result.output


def test_a_vm_spec_takes_its_own_shadow_options(tmp_path, examples):
    _, figures = stats_of(tmp_path, "--vm", f"{KERNEL},module={HELLO},name=basic,shadow=none",
                          "--vm", f"{KERNEL},module={HELLO},name=full,shadow=flood+unsync+prefetch")
    assert figures["vms"]["basic"]["counters"]["prefetched"] == 0
    assert figures["vms"]["full"]["counters"]["prefetched"] > 0


EXIT_HEAVY = """
        .text
        .globl _start
_start: li      s1, 30000
1:      mfcr    t0, scratch             # one VM exit each: 30,000 of them
        addi    s1, s1, -1
        bnez    s1, 1b
        la      a0, done
        li      t0, 0xF0000000
2:      lbu     t1, 0(a0)
        beqz    t1, 3f
        sw      t1, 0(t0)
        addi    a0, a0, 1
        j       2b
3:      li      t0, 0xF0003000
        sw      zero, 0(t0)
        halt
        .rodata
done:   .asciz "exit-heavy done\\n"
"""

COMPUTE = EXIT_HEAVY.replace("mfcr    t0, scratch             # one VM exit each: 30,000 of them",
                             "addi    t0, t0, 1               # no exit").replace(
    "li      s1, 30000", "li      s1, 150000").replace("exit-heavy done", "compute done")


def test_an_exit_heavy_guest_gets_no_more_than_its_share_of_modeled_time(tmp_path):
    """docs/vmm.md "Several VMs": a slice is spent in modeled cycles, each exit
    costing the cost model's price of one.  The exit-heavy guest needs 90,000
    instructions but 30,000 exits (30 million modeled cycles); the compute guest
    450,000 instructions and no exit.  Sliced by instructions alone, the
    exit-heavy guest would finish first, having held the machine for a hundred
    times the compute guest's modeled time; sliced by cost, the compute guest does."""
    hog, compute = image(tmp_path, EXIT_HEAVY, "hog"), image(tmp_path, COMPUTE, "compute")
    result, figures = stats_of(tmp_path, "--vm", f"{hog},name=hog", "--vm", f"{compute},name=compute")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout_bytes.decode().splitlines()
    assert lines == ["[compute] compute done", "[hog] exit-heavy done"]
    assert figures["vms"]["hog"]["vm_exits"] >= 30000


def test_each_vms_console_is_line_buffered_so_no_vm_writes_inside_anothers_line():
    from vmm.monitor.vm import SharedConsole, VmConsole
    out = io.BytesIO()
    shared = SharedConsole(out)
    atk, bysd = VmConsole(shared, b"[atk] "), VmConsole(shared, b"[bysd] ")
    atk.write(b"an unfinished line: ")
    bysd.write(b"round 1\nround")
    atk.write(b"still unfinished")
    bysd.write(b" 2\n")
    atk.flush()                     # the end of the run (or a prompt): the partial line goes out ...
    bysd.write(b"round 3\n")        # ... and is ended before another VM's line
    atk.write(b" and the rest\n")
    assert out.getvalue() == (b"[bysd] round 1\n[bysd] round 2\n[atk] an unfinished line: still unfinished\n"
                              b"[bysd] round 3\n[atk]  and the rest\n")

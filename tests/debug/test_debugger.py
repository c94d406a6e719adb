"""`kite debug` end to end: real guest images, scripted sessions, compared with `kite run`.

Each session is a subprocess with its commands on stdin, as a user would
script it; the guest's console goes to --guest-output so it can be compared
byte for byte with what `kite run` prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kite.build import build_all

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "guestos" / "build"
DOC = ROOT / "docs" / "debugger.md"
MODES = {
    "bare": ["--bare", str(BUILD / "kernel-native.elf")],
    "shadow": ["--paging", "shadow", str(BUILD / "kernel-native.elf")],
    "direct": ["--paging", "direct", str(BUILD / "kernel-pv.elf")],
}
HELLO = ["--module", str(BUILD / "user-hello.elf")]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def built_images():
    build_all()


def kite(command: str, args: list[str], commands: str = "") -> subprocess.CompletedProcess:
    """`kite COMMAND ARGS` with `commands` on stdin, from the repository root."""
    return subprocess.run([sys.executable, "-m", "kite", command, *args], input=commands, capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def run_and_debug(tmp_path: Path, args: list[str], script: str) -> tuple:
    """(kite run, kite debug with `script`, the debugged guest's output, the two --stats-json files)."""
    run = kite("run", [*args, "--stats-json", str(tmp_path / "run.json")])
    debug = kite("debug", [*args, "--guest-output", str(tmp_path / "guest.out"),
                           "--stats-json", str(tmp_path / "debug.json")], script)
    return run, debug, (tmp_path / "guest.out").read_text(), tmp_path


SESSION = """\
break main
continue
step
walk 0x00400000
info tlb
{catch}
delete
continue
"""


@pytest.mark.parametrize("mode", list(MODES))
def test_scripted_session_stops_at_a_module_symbol_and_the_guest_ends_as_under_kite_run(tmp_path, mode):
    catch = "catch exit hidden page fault\ncontinue\nwalk $pc" if mode == "shadow" else "info registers"
    run, debug, guest, where = run_and_debug(tmp_path, [*MODES[mode], *HELLO], SESSION.format(catch=catch))
    transcript = debug.stdout
    assert "Breakpoint 1, 0x" in transcript and "<user-hello:main>" in transcript
    assert "user-hello:main+0x4>:" in transcript                     # one step on
    assert re.search(r"PTE +#0 at \S+ 0x[0-9a-f]+ = 0x[0-9a-f]+  P - U A", transcript)   # the code page, user
    assert "valid TLB entries" in transcript
    assert "The guest has ended" in transcript and "error" not in transcript and "Traceback" not in debug.stderr
    assert guest == run.stdout == "hello from user space\n"
    assert debug.returncode == run.returncode == 0
    assert (where / "debug.json").read_text() == (where / "run.json").read_text()


def test_shadow_walk_explains_the_shadow_entries_and_catch_exit_stops_after_a_hidden_fault(tmp_path):
    script = "catch exit hidden page fault\ncontinue\nwalk $pc\ninfo shadow\ninfo p2m\ndelete\ncontinue\n"
    run, debug, guest, _ = run_and_debug(tmp_path, [*MODES["shadow"], *HELLO], script)
    transcript = debug.stdout
    assert "Catchpoint 1 (exit hidden page fault): hidden page fault in vm1" in transcript
    assert "shadow PTE" in transcript and "why: frame: guest frame" in transcript
    assert "current root mfn" in transcript and "hidden_faults:" in transcript
    assert "guest-physical -> machine" in transcript
    assert guest == run.stdout and debug.returncode == run.returncode


def test_direct_walk_shows_each_frames_validation_type_and_counts(tmp_path):
    script = "break main\ncontinue\nwalk $pc\ncatch hypercall\ndelete 1\ncontinue\ndelete\ncontinue\n"
    run, debug, guest, _ = run_and_debug(tmp_path, [*MODES["direct"], *HELLO], script)
    assert re.search(r"validated  directory mfn 0x[0-9a-f]+: type l2, type_count \d+, ref_count \d+, pinned",
                     debug.stdout)
    assert "validated  data      mfn" in debug.stdout
    assert re.search(r"Catchpoint 2 \(hypercall any\): hypercall: \w+ in vm1", debug.stdout)
    assert guest == run.stdout and debug.returncode == run.returncode


def worked_example() -> tuple[list[str], str]:
    """docs/debugger.md's worked example: (the kite debug arguments, the transcript)."""
    match = re.search(r"<!-- worked example: kite debug (.*?) -->\n```text\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/debugger.md has no worked example"
    return match[1].split(), match[2]


def test_the_worked_example_of_the_docs_replays_verbatim():
    args, transcript = worked_example()
    commands = "".join(line.removeprefix("(kite) ") + "\n" for line in transcript.splitlines()
                       if line.startswith("(kite) "))
    debug = kite("debug", args, commands)
    assert debug.stdout == transcript
    assert debug.returncode == 0, debug.stderr


def test_bad_commands_and_addresses_give_one_line_errors_and_end_of_input_quits_cleanly():
    script = "frobnicate\nbreak nosuchsymbol\nx/4q 0\nx/4xw 0x7ff00000\nwalk\nstep zero\ncatch exit\ninfo foo\n" \
             "watch 0x1001 read\ndelete 9\nhelp step\n"
    debug = kite("debug", ["--bare", str(BUILD / "hello.elf")], script)
    errors = [line for line in debug.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 10, debug.stdout
    assert "step [N]: run N instructions" in debug.stdout
    assert "Traceback" not in debug.stdout + debug.stderr
    assert debug.returncode == 130 and "quit before the guest ended" in debug.stderr


def test_x_scripts_run_in_batch_and_stepping_a_bare_example_to_its_end_prints_what_kite_run_prints(tmp_path):
    script = tmp_path / "session.gdb"
    script.write_text("# step the whole example\nstep 100000\ninfo registers\n")
    run = kite("run", ["--bare", str(BUILD / "hello.elf")])
    debug = kite("debug", ["--bare", str(BUILD / "hello.elf"), "-x", str(script), "--batch"])
    assert run.stdout in debug.stdout and "The guest has ended: powered off, exit code 0." in debug.stdout
    assert debug.returncode == run.returncode == 0


def test_several_vms_can_be_listed_selected_and_caught_per_exit_reason(tmp_path):
    specs = ["--vm", f"{BUILD / 'kernel-native.elf'},paging=shadow,module={BUILD / 'user-hello.elf'}",
             "--vm", f"{BUILD / 'kernel-pv.elf'},paging=direct,name=pv,module={BUILD / 'user-fib.elf'}"]
    script = "info vms\nvm pv\ninfo registers\ncatch exit hypercall: set_base\ncontinue\ndelete\ncontinue\n"
    run, debug, guest, _ = run_and_debug(tmp_path, specs, script)
    assert "selected pv (direct)" in debug.stdout
    assert "hypercall: set_base in pv" in debug.stdout
    assert guest == run.stdout and debug.returncode == run.returncode == 0


WATCHED = """\
        .text
        .globl _start
_start:
        la      s0, counter
        lw      t0, 0(s0)               # reads counter
        addi    t0, t0, 1
        sw      t0, 0(s0)               # writes it
        lb      t1, 1(s0)               # reads one byte of it
        li      t2, 0xF0003000
        sw      zero, 0(t2)
        .data
        .globl counter
counter: .word 5
"""


@pytest.mark.parametrize("machine", [["--bare"], ["--paging", "shadow"], ["--sim"]])
def test_read_and_access_watchpoints_stop_after_each_load_or_store_that_touches_the_word(tmp_path, machine):
    """A read watchpoint stops after the lw and the lb (not the sw); an access watchpoint after all three,
    under the VMM too, where the lw first takes a hidden page fault (no guest-visible access yet)."""
    from asm.assembler import assemble
    from asm.linker import LinkOptions, link
    image = tmp_path / "watched.elf"
    image.write_bytes(link([assemble(WATCHED, "watched.s", {}, [])], LinkOptions(text_address=0x100000)))
    read = kite("debug", [*machine, str(image)], "watch counter read\ncontinue\ncontinue\ncontinue\n")
    assert re.findall(r"Read watchpoint 1: 0x00101000 (read \(.*?\))", read.stdout) == \
        ["read (4 bytes at 0x00101000)", "read (1 byte at 0x00101001)"]
    assert read.returncode == 0, read.stderr
    access = kite("debug", [*machine, str(image)], "watch counter access\ncontinue\ncontinue\ncontinue\ncontinue\n")
    assert re.findall(r"Access watchpoint 1: 0x00101000 ((?:read|written) \(.*?\))", access.stdout) == \
        ["read (4 bytes at 0x00101000)", "written (4 bytes at 0x00101000)", "read (1 byte at 0x00101001)"]

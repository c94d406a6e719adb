"""Record and replay of console input (docs/replay.md): a run that read a
terminal is recorded and replayed with the same output, exit code and
instruction count on every engine; a replayed arrival reaches a polling
guest at its tick, never before; bad logs are refused before anything runs."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.isa import POWER_BASE, UART_BASE
from asm.linker import LinkOptions, link
from kite.build import build_all
from vmm import launch
from vmm.cli import run as run_command
from vmm.machine.devices.uart import ConsoleInput
from vmm.machine.replay import MAX_DATA, Arrival, Recorder, read_log, write_log
from vmm.monitor.vm import VmConfig

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "guestos" / "build"
NATIVE, PV = str(BUILD / "kernel-native.elf"), str(BUILD / "kernel-pv.elf")
ECHO, HELLO = str(BUILD / "user-echo.elf"), str(BUILD / "user-hello.elf")
LINES = [b"first line\n", b"\xe9t\xe9 \x00 binary\n", b"last\n"]
LIMIT = 5_000_000

# Polls the UART's STATUS (5 instructions a round) and echoes each byte; powers off at end of input.
POLLER = f"""\
        .text
        .globl _start
_start:
        li      t0, {UART_BASE:#x}
1:      lw      t1, 8(t0)               # STATUS
        andi    t2, t1, 1               # RX_READY
        bnez    t2, 2f
        andi    t2, t1, 4               # RX_EOF
        beqz    t2, 1b
        li      t0, {POWER_BASE:#x}
        sw      zero, 0(t0)
2:      lw      t1, 4(t0)               # RX
        sw      t1, 0(t0)               # TX
        j       1b
"""


@pytest.fixture(scope="module", autouse=True)
def built_images():
    build_all()


class FakeTty(io.RawIOBase):
    """A terminal whose user types `lines`, one each time the guest waits for one, then Ctrl-D."""

    def __init__(self, lines: list[bytes]):
        self.lines = list(lines)

    def readline(self, size: int = -1) -> bytes:
        return self.lines.pop(0) if self.lines else b""


def boot(engine: str, console_input: ConsoleInput, recorder: Recorder | None = None):
    """Run user-echo on `engine` (bare, sim, shadow, direct, or two VMs: echo and hello) with this input:
    (console output, Finished)."""
    output = io.BytesIO()
    console = launch.Console(console_input, output, recorder)
    options = launch.Options(max_instructions=LIMIT)
    if engine == "bare":
        finished = launch.run_bare(launch.Boot(NATIVE, (ECHO,)), console, options)
    elif engine == "sim":
        finished = launch.run_sim(launch.Boot(NATIVE, (ECHO,)), console, options)
    else:
        configs = {"shadow": [VmConfig(NATIVE, "shadow", 16 << 20, "vm1", (ECHO,))],
                   "direct": [VmConfig(PV, "direct", 16 << 20, "vm1", (ECHO,))],
                   "two VMs": [VmConfig(NATIVE, "shadow", 16 << 20, "echo", (ECHO,)),
                               VmConfig(PV, "direct", 16 << 20, "hello", (HELLO,))]}[engine]
        finished = launch.run_vmm(configs, console, options)
    return output.getvalue(), finished


@pytest.mark.parametrize("engine", ["bare", "sim", "shadow", "direct", "two VMs"])
def test_a_run_reading_a_terminal_replays_with_its_output_exit_code_and_instruction_count(engine):
    """The terminal's lines arrive when the guest polls (their ticks depend on nothing else); the replay
    delivers them at those ticks with no terminal, so the guest does exactly what it did."""
    recorder = Recorder()
    recorded_output, recorded = boot(engine, ConsoleInput(interactive=FakeTty(LINES)), recorder)
    assert all(line in recorded_output for line in LINES) and recorded.exit_code == 0   # (several VMs: prefixed)
    assert [arrival.data for arrival in recorder.arrivals] == LINES + [b""] and recorder.arrivals[-1].eof
    assert recorder.arrivals[0].tick > 100_000          # typed after the guest OS booted, not at tick 0
    again = Recorder()
    replayed_output, replayed = boot(engine, ConsoleInput.replaying(recorder.arrivals), again)
    assert replayed_output == recorded_output and replayed.exit_code == recorded.exit_code
    assert replayed.stats.machine.instructions == recorded.stats.machine.instructions
    assert again.arrivals == recorder.arrivals          # the replay's input, recorded, is the log itself
    if recorded.stats.vms is not None:                  # each VM's own figures too (docs/replay.md)
        assert {name: vm.as_dict() for name, vm in replayed.stats.vms.items()} == \
            {name: vm.as_dict() for name, vm in recorded.stats.vms.items()}


def test_kite_run_records_a_real_terminal_and_replays_it_without_reading_stdin(tmp_path):
    """A pty as stdin (canonical mode: one line a read, Ctrl-D at a line's start is end of file); the
    replay gets a pipe that never closes as stdin and must not wait on it."""
    log, stats = tmp_path / "input.log", tmp_path / "recorded.json"
    command = [sys.executable, "-m", "kite", "run", "--bare", NATIVE, "--module", ECHO]
    master, slave = pty.openpty()
    os.write(master, b"hello\nworld\n\x04")
    recorded = subprocess.run([*command, "--record", str(log), "--stats-json", str(stats)], stdin=slave,
                              capture_output=True, cwd=ROOT, timeout=120)
    os.close(slave)
    os.close(master)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == b"hello\nworld\n"
    reader, writer = os.pipe()
    try:
        replayed = subprocess.run([*command, "--replay", str(log), "--stats-json", str(tmp_path / "replayed.json")],
                                  stdin=reader, capture_output=True, cwd=ROOT, timeout=120)
    finally:
        os.close(reader)
        os.close(writer)
    assert replayed.returncode == 0 and replayed.stdout == recorded.stdout, replayed.stderr
    assert json.loads((tmp_path / "replayed.json").read_text()) == json.loads(stats.read_text())
    assert [entry.get("data") for entry in map(json.loads, log.read_text().splitlines()[1:])] == \
        ["hello\n", "world\n", None]


@pytest.fixture(scope="module")
def poller(tmp_path_factory) -> str:
    image = tmp_path_factory.mktemp("poller") / "poller.elf"
    image.write_bytes(link([assemble(POLLER, "poller.s", {}, [])], LinkOptions(text_address=0x100000)))
    return str(image)


def kite_run(*args: str):
    return CliRunner().invoke(run_command, list(args))


@pytest.mark.parametrize("machine", [["--bare"], ["--sim"], ["--paging", "shadow"]])
def test_a_polling_guest_sees_a_replayed_byte_at_its_tick_and_not_before(tmp_path, poller, machine):
    """The guest polls STATUS from its first instruction; the log's byte arrives at tick 5000 and the end of
    input at 6000.  Stopped at 5000 it has printed nothing; by 5010 (one polling round and the echo) it
    has; it powers off within a round of tick 6000."""
    log = tmp_path / "late.log"
    write_log(str(log), [Arrival(5000, b"x"), Arrival(6000, eof=True)])
    early = kite_run(*machine, poller, "--replay", str(log), "--max-instructions", "5000")
    assert early.exit_code == 124 and early.stdout == "", early.stderr
    prompt = kite_run(*machine, poller, "--replay", str(log), "--max-instructions", "5010")
    assert prompt.stdout == "x"
    stats = tmp_path / "stats.json"
    whole = kite_run(*machine, poller, "--replay", str(log), "--stats-json", str(stats))
    assert whole.exit_code == 0 and whole.stdout == "x"
    assert 6000 <= json.loads(stats.read_text())["instructions"] < 6010


def test_a_log_round_trips_every_byte_value_and_splits_long_arrivals():
    """Latin-1 strings carry bytes 0..255 exactly; more than MAX_DATA bytes become several arrivals at one tick."""
    recorder = Recorder()
    ConsoleInput(bytes(range(256)) * 300).listen(lambda data, eof, tick: recorder.heard(data, eof, 0))
    assert [len(arrival.data) for arrival in recorder.arrivals] == [MAX_DATA, 256 * 300 - MAX_DATA, 0]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kite-roundtrip-{os.getpid()}.log"
    try:
        write_log(str(path), recorder.arrivals)
        assert read_log(str(path)) == recorder.arrivals
    finally:
        path.unlink()


HEADER = '{"format": "kite-input-log", "version": 1}\n'


@pytest.mark.parametrize("content, complaint", [
    ("", ":1: empty"),
    ('{"format": "kite-input-log", "version": 2}\n', ":1: version 2; this Kite reads version 1"),
    ('{"format": "other", "version": 1}\n', ":1: not a kite-input-log file"),
    (HEADER + '{"tick": 5, "data": "a"\n', ":2: not valid JSON"),
    (HEADER + '{"tick": 9, "data": "a"}\n{"tick": 3, "data": "b"}\n', ":3: tick 3 is before the previous"),
    (HEADER + '{"tick": -1, "data": "a"}\n', ":2: field tick is missing or not a count"),
    (HEADER + '{"tick": 1, "data": "\\u0100"}\n', ":2: field data: character"),
    (HEADER + '{"tick": 1, "data": ""}\n', ":2: field data holds 0 bytes"),
    (HEADER + '{"tick": 1, "eof": true}\n{"tick": 2, "data": "a"}\n', ":3: an arrival after the end of input"),
    (HEADER + '{"tick": 1, "data": "a", "extra": 1}\n', ':2: expected {"tick": N, "data": "..."}'),
    (HEADER + '{"tick": 1, "data": "' + "a" * (MAX_DATA + 1) + '"}\n', f":2: field data holds {MAX_DATA + 1}"),
    (HEADER + '{"tick": 1, "data": "' + "a" * (7 * MAX_DATA) + '"}\n', ":2: a line of"),
    (HEADER + "[1, 2]\n", ":2: not a JSON object"),
])
def test_a_bad_log_is_refused_naming_its_file_and_line_and_nothing_runs(tmp_path, content, complaint):
    log = tmp_path / "bad.log"
    log.write_text(content)
    result = kite_run("--bare", NATIVE, "--module", HELLO, "--replay", str(log))
    assert result.exit_code == 2 and result.stdout == ""           # the guest (it would greet) never ran
    assert f"kite: error: {log}{complaint}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("extra, complaint", [
    (["--input-text", "a"], "--replay gives the console input: it cannot be combined with --input-text"),
    (["--record", "LOG"], "--record LOG would overwrite an input of the run"),
])
def test_replay_with_other_input_or_recording_over_its_own_log_is_a_usage_error(tmp_path, extra, complaint):
    log = tmp_path / "ok.log"
    write_log(str(log), [])
    result = kite_run("--bare", NATIVE, "--replay", str(log), *[str(log) if arg == "LOG" else arg for arg in extra])
    assert result.exit_code == 2 and complaint.replace("LOG", str(log)) in result.stderr


def test_the_example_log_of_the_docs_is_a_valid_log_of_those_arrivals(tmp_path):
    text = (ROOT / "docs" / "replay.md").read_text()
    example = text.split("<!-- example log -->\n```jsonl\n", 1)[1].split("```", 1)[0]
    log = tmp_path / "example.log"
    log.write_text(example)
    assert read_log(str(log)) == [Arrival(169039, b"first line\n"), Arrival(169127, b"caf\xe9 \x00\n"),
                                  Arrival(169183, eof=True)]

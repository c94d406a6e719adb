"""Live migration (docs/encapsulation.md): a VM pre-copied to a monitor in a second
process goes on there exactly as it would have gone on at the source; a destination
that refuses leaves it running at the source; a hostile stream is refused."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.isa import PAGE_SIZE
from kite.build import GUESTOS, build_all
from vmm.cli import run
from vmm.launch import Console, Migrate, Options, run_vmm
from vmm.machine.devices.uart import ConsoleInput
from vmm.machine.errors import KiteError
from vmm.monitor import migration
from vmm.monitor.migration import DIRTY_EXIT, HEADER, Channel, Plan
from vmm.monitor.vm import VmConfig

BUILD = GUESTOS / "build"
KERNELS = {"shadow": "kernel-native.elf", "direct": "kernel-pv.elf", "nested": "kernel-native.elf"}
AT = 300_000          # in pagestress's workload, after boot
BANDWIDTH = 32        # slow enough for a second pre-copy round on pagestress


def workload(paging: str, program: str = "user-pagestress.elf") -> list[str]:
    return ["--paging", paging, str(BUILD / KERNELS[paging]), "--module", str(BUILD / program)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """paging -> (output, exit code, the VM's figures) of pagestress run without a migration."""
    build_all()
    runs = {}
    for paging in KERNELS:
        stats = tmp_path_factory.mktemp(paging) / "stats.json"
        result = CliRunner().invoke(run, [*workload(paging), "--stats-json", str(stats)])
        assert result.exit_code == 0, result.stderr
        runs[paging] = result.stdout_bytes, result.exit_code, json.loads(stats.read_text())["vms"]["vm1"]
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("paging", KERNELS)
def test_a_migrated_vm_goes_on_exactly_and_its_downtime_is_small(uninterrupted, tmp_path, paging):
    """The destination's output follows the source's byte for byte, with the exit code and the
    guest instructions of the uninterrupted run.  Round 0 sends every frame of the 16 MiB guest;
    the frames dirtied in a round are the next round's (a missed write would leave stale RAM at
    the destination); every logged write is priced as an exit; the downtime is under 1%."""
    output, exit_code, whole = uninterrupted[paging]
    stats = tmp_path / "stats.json"
    moved = subprocess.run([sys.executable, "-m", "kite", "run", *workload(paging), "--migrate-at", str(AT),
                            "--migrate-bandwidth", str(BANDWIDTH), "--stats-json", str(stats)],
                           capture_output=True, timeout=300)
    assert (moved.stdout, moved.returncode) == (output, exit_code), moved.stderr.decode()
    figures = json.loads(stats.read_text())
    vm, moves = figures["vms"]["vm1"], figures["migration"]
    assert vm["guest_instructions"] == whole["guest_instructions"]
    rounds = moves["rounds"]
    assert rounds[0]["frames"] == (16 << 20) // PAGE_SIZE and len(rounds) >= 2
    assert all(later["frames"] == earlier["dirtied"] for earlier, later in zip(rounds, rounds[1:]))
    assert moves["stop_copy_frames"] == rounds[-1]["dirtied"] <= migration.STOP_FRAMES
    assert vm["exits"][DIRTY_EXIT] == sum(round_["dirtied"] for round_ in rounds)
    assert moves["downtime_instructions"] < vm["guest_instructions"] // 100
    stderr = moved.stderr.decode()
    assert f"migrated live from instruction {AT}" in stderr and "round 0: 4096 frames sent" in stderr


@pytest.mark.slow
def test_one_vm_of_two_migrates_while_the_other_runs_on_at_the_source(tmp_path):
    """--migrate-vm b: b's lines go on in the destination, exactly the uninterrupted run's; a runs on
    at the source undisturbed, every line of it the uninterrupted run's; both exit 0."""
    build_all()
    several = ["--vm", f"{BUILD / KERNELS['shadow']},name=a,module={BUILD / 'user-fib.elf'}",
               "--vm", f"{BUILD / KERNELS['direct']},paging=direct,name=b,module={BUILD / 'user-pagestress.elf'}"]
    whole = CliRunner().invoke(run, several)
    moved = subprocess.run([sys.executable, "-m", "kite", "run", *several, "--migrate-at", "600000",
                            "--migrate-vm", "b"], capture_output=True, timeout=300)
    assert whole.exit_code == moved.returncode == 0, moved.stderr.decode()
    for name in ("a", "b"):
        prefix = f"[{name}] ".encode()
        assert ([line for line in moved.stdout.splitlines() if line.startswith(prefix)]
                == [line for line in whole.stdout_bytes.splitlines() if line.startswith(prefix)])
    stderr = moved.stderr.decode()
    assert "migrated live from instruction 600000" in stderr and "kite: b: exit code 0 (moved)" in stderr
    assert "kite: a: exit code 0 (done)" in stderr


REFUSING_DESTINATION = """
import json, socket, struct, sys
sock = socket.socket(fileno=int(sys.argv[-1]))
def exactly(size):
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data
while True:
    sizes = struct.unpack("<II", exactly(8))
    message = json.loads(exactly(sizes[0]))
    exactly(sizes[1])
    if message["kind"] == "state":
        break
answer = json.dumps({"kind": "refused", "error": "no room here"}).encode()
sock.sendall(struct.pack("<II", len(answer), 0) + answer)
"""


@pytest.mark.slow
def test_a_vm_the_destination_refuses_goes_on_at_the_source(uninterrupted):
    """Only the destination's answer lets the VM go: refused after stop-and-copy, it runs on
    at the source, whole, and the run ends as the uninterrupted one does."""
    output, exit_code, whole = uninterrupted["shadow"]
    out = io.BytesIO()
    config = VmConfig(str(BUILD / KERNELS["shadow"]), "shadow", 16 << 20, modules=(str(BUILD / "user-pagestress.elf"),))
    finished = run_vmm([config], Console(ConsoleInput(b""), out),
                       Options(migrate=Migrate(Plan(AT), (sys.executable, "-c", REFUSING_DESTINATION))))
    assert not finished.migrated and "no room here" in finished.hint and "went on at the source" in finished.hint
    assert (out.getvalue(), finished.exit_code) == (output, exit_code)
    assert finished.stats.only_vm().guest_instructions == whole["guest_instructions"]


def test_a_guest_that_ends_before_the_migration_point_ends_at_the_source():
    build_all()
    result = CliRunner().invoke(run, [*workload("shadow", "user-hello.elf"), "--migrate-at", str(10 ** 9)])
    assert result.exit_code == 0 and b"hello" in result.stdout_bytes.lower()
    assert f"the guest ended before instruction {10 ** 9}: no migration" in result.stderr


@pytest.mark.parametrize("arguments, complaint", [
    (["--bare", str(BUILD / "hello.elf"), "--migrate-at", "5"], "--migrate-at works with --paging"),
    (["--vm", str(BUILD / "kernel-native.elf"), "--vm", str(BUILD / "kernel-native.elf") + ",name=b",
      "--migrate-at", "5"], "name the VM --migrate-at takes: --migrate-vm NAME"),
    ([*workload("shadow"), "--migrate-at", "5", "--checkpoint-at", "5", "--checkpoint", "x.ckpt"],
     "cannot be combined"),
    ([*workload("shadow"), "--migrate-bandwidth", "5"], "go with --migrate-at"),
    ([*workload("shadow"), "--migrate-at", "5", "--migrate-rounds", "1001"], "--migrate-rounds"),
])
def test_migration_options_are_checked(arguments, complaint):
    result = CliRunner().invoke(run, arguments)
    assert result.exit_code == 2 and complaint in result.stderr


# --- a hostile stream --------------------------------------------------------------------------

def message(header: dict, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return HEADER.pack(len(text), len(payload)) + text + payload


HELLO = message({"kind": "hello", "format": migration.FORMAT, "version": migration.VERSION, "mem": 4 * PAGE_SIZE})
FRAME = b"\x01" * PAGE_SIZE

HOSTILE = {
    "not a hello": message({"kind": "round", "round": 0, "frames": []}),
    "a newer version": message({"kind": "hello", "format": migration.FORMAT, "version": 2, "mem": PAGE_SIZE}),
    "a RAM size that is not pages": message({"kind": "hello", "format": migration.FORMAT, "version": 1,
                                             "mem": 1000}),
    "a skipped round": HELLO + message({"kind": "round", "round": 1, "frames": [0]}, FRAME),
    "a frame outside the RAM": HELLO + message({"kind": "round", "round": 0, "frames": [4]}, FRAME),
    "frames not ascending": HELLO + message({"kind": "round", "round": 0, "frames": [1, 1]}, FRAME * 2),
    "a payload short of its frames": HELLO + message({"kind": "round", "round": 0, "frames": [0, 1]}, FRAME),
    "a payload larger than the RAM": HELLO + HEADER.pack(2, 5 * PAGE_SIZE) + b"{}",
    "a JSON part over the limit": HELLO + HEADER.pack(migration.MAX_HEADER_JSON + 1, 0),
    "JSON that is not JSON": HELLO + HEADER.pack(3, 0) + b"{{{",
    "a stream cut in a message": HELLO + message({"kind": "round", "round": 0, "frames": [0]}, FRAME)[:100],
    "a state that is not a VM's": HELLO + message({"kind": "state", "state": {}, "figures": {}}),
}


def receive_from(data: bytes):
    """migration.receive on a socket whose other end sends `data`, then closes."""
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (theirs.sendall(data), theirs.close()))
    sender.start()
    try:
        return migration.receive(Channel(ours, "the migration stream"))
    finally:
        sender.join()
        ours.close()


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_stream_is_refused_with_a_clear_error(name):
    with pytest.raises(KiteError, match="the migration stream"):
        receive_from(HOSTILE[name])


def test_an_aborted_migration_receives_nothing():
    assert receive_from(HELLO + message({"kind": "abort"})) is None


def test_the_destination_command_refuses_a_hostile_stream_without_a_traceback():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        child = subprocess.Popen([sys.executable, "-m", "kite", "migrate-receive", "--fd", str(theirs.fileno())],
                                 pass_fds=(theirs.fileno(),), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        theirs.close()
        ours.sendall(HOSTILE["a frame outside the RAM"])
        answer, _ = Channel(ours, "test").receive(0)
        stdout, stderr = child.communicate(timeout=60)
    assert answer["kind"] == "refused" and "round message 0 is malformed" in answer["error"]
    assert child.returncode == 2 and b"Traceback" not in stderr
    assert b"kite: error: the migration stream: round message 0 is malformed" in stderr


def documented_example() -> tuple[list[str], str]:
    """docs/encapsulation.md's example command (its arguments after `kite`) and the figures it shows."""
    text = (Path(__file__).parents[2] / "docs" / "encapsulation.md").read_text()
    blocks = text.split("```\n")[1::2]
    command = blocks[0].replace("\\\n", " ").split()
    return command[1:], blocks[1]


@pytest.mark.slow
def test_the_documented_example_prints_the_documented_figures():
    build_all()
    arguments, figures = documented_example()
    moved = subprocess.run([sys.executable, "-m", "kite", *arguments], capture_output=True, timeout=300,
                           cwd=Path(__file__).parents[2])
    assert moved.returncode == 0 and moved.stderr.decode() == figures

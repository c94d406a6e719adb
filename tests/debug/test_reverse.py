"""Going back in `kite debug` (vmm/debug/reverse.py): reverse-step lands on the forward run's exact
state (registers, control registers, guest memory, pc, instruction count, ticks) on every engine
that can checkpoint; reverse-continue goes back to the last breakpoint or watchpoint stop; the
engines that cannot go back say why.

The sessions run in-process, the Session driven as the console drives it, so the whole guest RAM
can be compared; one end-to-end session replays docs/debugger.md's example verbatim."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kite.build import build_all
from vmm import launch
from vmm.debug import reverse
from vmm.debug.session import CHUNK, Breakpoint, Session
from vmm.debug.symbols import DebugError, Symbols
from vmm.debug.target import MachineTarget, SimTarget, vm_space
from vmm.machine.devices.uart import ConsoleInput
from vmm.monitor.monitor import Monitor
from vmm.monitor.simulate import Simulator
from vmm.monitor.vm import VmConfig

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "guestos" / "build"
NATIVE, PV = str(BUILD / "kernel-native.elf"), str(BUILD / "kernel-pv.elf")
ECHO, HELLO = str(BUILD / "user-echo.elf"), str(BUILD / "user-hello.elf")
DOC = ROOT / "docs" / "debugger.md"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def built_images():
    build_all()


def debugged(engine_kind: str, body, configs: list[VmConfig] | None = None) -> bytes:
    """Boot user-echo (input "abc\\n") as `kite debug` does, call body(session) where the console would
    start, then let the run end; returns the guest's console output."""
    output = launch.Console(ConsoleInput(b"abc\n"), _Sink())

    def attach(engine) -> None:
        def symbols_for(vm):
            if vm is not None:
                return Symbols.load(vm.config.image, vm.config.modules, lambda va, n: vm_space(vm).read_virtual(va, n))
            return Symbols.load(NATIVE, (ECHO,), lambda va, n: target.view().space.read_virtual(va, n))
        if isinstance(engine, Monitor):
            target, method = MachineTarget(engine.machine, symbols_for, engine), "run_on"
        elif isinstance(engine, Simulator):
            target, method = SimTarget(engine, symbols_for), "run"
        else:
            target, method = MachineTarget(engine, symbols_for), "run"

        def run(max_instructions=None):
            body(Session(target, None))
            return target.finish(max_instructions)
        setattr(engine, method, run)

    token = launch.ATTACH.set(attach)
    try:
        if engine_kind == "bare":
            launch.run_bare(launch.Boot(NATIVE, (ECHO,)), output, launch.Options())
        elif engine_kind == "sim":
            launch.run_sim(launch.Boot(NATIVE, (ECHO,)), output, launch.Options())
        else:
            launch.run_vmm(configs or [VmConfig(PV if engine_kind == "direct" else NATIVE, engine_kind,
                                                16 << 20, "vm1", (ECHO,))], output, launch.Options())
    finally:
        launch.ATTACH.reset(token)
    return output.output.written


class _Sink:
    """The guest's console: what reached it."""

    def __init__(self):
        self.written = b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def flush(self) -> None:
        pass


def state_of(target) -> tuple:
    """Everything the guest can observe: instruction count, ticks, pc, registers, control registers, RAM."""
    view = target.view()
    if isinstance(target, SimTarget):
        ram, ticks = target.sim.memory.ram, target.sim.ticks
    elif target.monitor is not None:
        ram = b"".join(target.machine.memory.ram[mfn << 12:(mfn + 1) << 12] for mfn in view.vm.physmap.p2m)
        ticks = target.cpu.ticks
    else:
        ram, ticks = target.machine.memory.ram, target.cpu.ticks
    return (target.instructions, ticks, view.pc, list(view.regs), list(view.cr), hashlib.sha256(ram).hexdigest())


def run_legs(session: Session, until: int) -> None:
    """Run forward as `continue` does, in legs of CHUNK instructions (taking the checkpoints due)."""
    while session.target.instructions < until and session.target.active:
        session.target.advance(min(until, session.target.instructions + CHUNK))
        session.reverse.note()
    assert session.target.instructions == until, "the guest ended before the test's mark"


@pytest.mark.parametrize("engine", ["bare", "sim", "shadow", "direct"])
def test_reverse_step_lands_on_the_forward_runs_exact_state_and_stepping_on_repeats_it(engine, monkeypatch):
    """Checkpoints every 20,000 instructions, at most 4 kept, so by the mark (after the guest OS's boot,
    about 170,000 instructions in all) they were thinned once: the replay starts from the one at 120,000."""
    monkeypatch.setattr(reverse, "INTERVAL", 20_000)
    monkeypatch.setattr(reverse, "MAX_CHECKPOINTS", 4)
    seen = {}

    def body(session: Session) -> None:
        target, mark = session.target, 150_001
        seen["start"] = state_of(target)
        run_legs(session, mark - 1)
        seen["before"] = state_of(target)
        session.resume(1)
        seen["at"] = state_of(target)
        assert session.reverse.starts() == [0, 40_000, 80_000, 120_000] and session.reverse.interval == 40_000
        assert session.reverse_step(1) == []
        seen["back"] = state_of(target)
        session.resume(1)
        seen["again"] = state_of(target)
        assert session.reverse_step(mark + 5) == ["Reached the start (instruction 0)."]
        seen["start again"] = state_of(target)
        session.resume()                              # to the end, from the start again

    output = debugged(engine, body)
    assert seen["back"] == seen["before"] and seen["before"][0] == 150_000
    assert seen["again"] == seen["at"] and seen["start again"] == seen["start"]
    assert output == b"abc\n"                         # printed once: the replays' output is muted


def test_reverse_continue_goes_back_to_each_earlier_breakpoint_stop_then_to_the_start():
    """kalloc is called again and again; going back passes the stops in reverse order, and a
    breakpoint's hit count is not changed by looking back."""
    stops = []

    def body(session: Session) -> None:
        target = session.target
        point = session.add(Breakpoint, target.view().symbols.address_of("kalloc"))
        for _ in range(2):
            assert session.resume()[0].startswith("Breakpoint 1, ")
            stops.append(target.instructions)
        session.resume(300)
        now = target.instructions
        assert session.reverse_continue() == ["Breakpoint 1, 0xc010030c <kalloc>"]
        assert target.instructions == stops[1]
        assert session.reverse_continue()[0].startswith("Breakpoint 1, ") and target.instructions == stops[0]
        assert session.reverse_continue() == [f"No breakpoint or watchpoint stops the guest before instruction "
                                              f"{stops[0]}: back at its start (instruction 0)."]
        assert target.instructions == 0 and point.hits == 2 and now > stops[1]
        session.delete([])
        session.resume()

    assert debugged("bare", body) == b"abc\n"


def test_reverse_commands_under_several_vms_say_they_need_one_vm():
    def body(session: Session) -> None:
        session.resume(10)
        with pytest.raises(DebugError, match="reverse execution under the VMM needs one VM"):
            session.reverse_step(1)
        session.resume()

    debugged("two", body, [VmConfig(NATIVE, "shadow", 16 << 20, "a", (ECHO,)),
                           VmConfig(NATIVE, "shadow", 16 << 20, "b", (HELLO,))])


def going_back_example() -> tuple[list[str], str]:
    """docs/debugger.md's going-back example: (the kite debug arguments, the transcript)."""
    match = re.search(r"<!-- going back example: kite debug (.*?) -->\n```text\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/debugger.md has no going-back example"
    return match[1].split(), match[2]


def test_the_going_back_example_of_the_docs_replays_verbatim():
    args, transcript = going_back_example()
    commands = "".join(line.removeprefix("(kite) ") + "\n" for line in transcript.splitlines()
                       if line.startswith("(kite) "))
    debug = subprocess.run([sys.executable, "-m", "kite", "debug", *args], input=commands, capture_output=True,
                           text=True, cwd=ROOT, timeout=300)
    assert debug.stdout == transcript
    assert debug.returncode == 0, debug.stderr


@pytest.mark.parametrize("kind", ["write", "read"])
def test_reverse_continue_goes_back_to_each_watchpoint_stop_even_from_the_guests_end(tmp_path, kind):
    """The guest reads its counter (lw), writes it (sw), reads a byte of it (lb) and powers off.  Going back
    from its end passes the watchpoint's stops latest first: the values (write) and accesses (read) are the
    forward run's, and the guest runs again from there."""
    from asm.assembler import assemble
    from asm.linker import LinkOptions, link
    from tests.debug.test_debugger import WATCHED
    image = tmp_path / "watched.elf"
    image.write_bytes(link([assemble(WATCHED, "watched.s", {}, [])], LinkOptions(text_address=0x100000)))
    forward = ["old 0x00000005  new 0x00000006"] if kind == "write" else \
        ["read (4 bytes at 0x00101000)", "read (1 byte at 0x00101001)"]
    legs = len(forward) + 1                  # each stop, then the end (or the start, going back)
    script = f"watch counter {kind}\n" + "continue\n" * legs + "reverse-continue\n" * legs + "info registers\n" + \
        "continue\n" * legs
    debug = subprocess.run([sys.executable, "-m", "kite", "debug", "--bare", str(image)], input=script,
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    stops = re.findall(r"^(?:Read w|W)atchpoint 1: 0x00101000 +([^(].*)$", debug.stdout, re.M)
    assert stops == forward + forward[::-1] + forward, debug.stdout      # forward, back, forward again
    assert "back at its start (instruction 0)" in debug.stdout
    assert debug.stdout.count("The guest has ended: powered off, exit code 0.") == 2
    assert debug.returncode == 0 and "error" not in debug.stdout, debug.stderr

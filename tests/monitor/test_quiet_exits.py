"""Quiet exits (Monitor.exit, docs/vmm.md "The cost of an exit") and the
machine's exits in place (vmm/machine/cpu.py) are shortcuts through the exit
path, so they must change nothing but host time: the same runs with every
exit taken the full way (Monitor.quiet made a no-op, and a store's exit
raised as a Trap and unwound, as before exits in place) must give the same
console bytes, in the same interleaving of the VMs' lines, the same exit
codes and every figure the same.  Two VMs share the machine so the slice's
end, which a quiet exit's charge moves, decides the interleaving: one runs
spawnstorm under the basic shadow MMU (tens of thousands of traced page-table
writes and hidden faults), the other pingpong (system calls: privileged
instructions, quiet or not)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kite.build import GUESTOS, build_all
from vmm.cli import run
from vmm.machine.cpu import CPU
from vmm.machine.translate import Trap
from vmm.monitor.monitor import Monitor

BUILD = GUESTOS / "build"


def two_vms(tmp_path, name: str) -> tuple[bytes, int, dict]:
    """(console bytes, exit code, --stats-json figures) of the two VMs' run."""
    build_all()
    kernel = BUILD / "kernel-native.elf"
    stats = tmp_path / f"{name}.json"
    result = CliRunner().invoke(run, [
        "--vm", f"{kernel},name=fork,shadow=none,module={BUILD / 'user-spawnstorm.elf'},"
                f"module={BUILD / 'user-nop.elf'}",
        "--vm", f"{kernel},name=ipc,module={BUILD / 'user-pingpong.elf'},module={BUILD / 'user-pong.elf'}",
        "--input-text", "", "--stats-json", str(stats)])
    figures = json.loads(stats.read_text())
    for vm in figures["vms"].values():
        vm.pop("wall_seconds", None)
    figures.pop("wall_seconds", None)
    return result.stdout_bytes, result.exit_code, figures


def unwound(cpu, fault, pc, tick, word):
    """CPU._exit_in_place as the exit was before it: the store's Trap, unwound to the run loop."""
    raise Trap(fault.cause, fault.badaddr, pc, tick, 2 if cpu.mmu.enabled else 0)


def test_quiet_exits_change_nothing_the_guests_or_the_figures_show(tmp_path, monkeypatch):
    quiet = two_vms(tmp_path, "quiet")
    monkeypatch.setattr(Monitor, "quiet", lambda self: None)
    monkeypatch.setattr(CPU, "_exit_in_place", unwound)
    full = two_vms(tmp_path, "full")
    assert quiet[1] == full[1] == 0
    assert quiet[0] == full[0]
    assert b"[fork] " in quiet[0] and b"[ipc] " in quiet[0]
    assert quiet[2] == full[2]
    exits = quiet[2]["vms"]["fork"]["exits"]
    assert exits["page-table write"] > 10_000 and exits["hidden page fault"] > 1_000

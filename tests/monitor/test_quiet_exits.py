"""Quiet exits (Monitor.exit, docs/vmm.md "The cost of an exit") are a shortcut
through the exit path, so they must change nothing but host time: the same
runs with every exit taken the full way (Monitor.quiet made a no-op) must give
the same console bytes, in the same interleaving of the VMs' lines, the same
exit codes and every figure the same.  Two VMs share the machine so the slice's
end, which a quiet exit's charge moves, decides the interleaving: one runs
spawnstorm under the basic shadow MMU (tens of thousands of traced page-table
writes and hidden faults), the other pingpong (system calls: privileged
instructions, quiet or not)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kite.build import GUESTOS, build_all
from vmm.cli import run
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


def test_quiet_exits_change_nothing_the_guests_or_the_figures_show(tmp_path, monkeypatch):
    quiet = two_vms(tmp_path, "quiet")
    monkeypatch.setattr(Monitor, "quiet", lambda self: None)
    full = two_vms(tmp_path, "full")
    assert quiet[1] == full[1] == 0
    assert quiet[0] == full[0]
    assert b"[fork] " in quiet[0] and b"[ipc] " in quiet[0]
    assert quiet[2] == full[2]
    exits = quiet[2]["vms"]["fork"]["exits"]
    assert exits["page-table write"] > 10_000 and exits["hidden page fault"] > 1_000

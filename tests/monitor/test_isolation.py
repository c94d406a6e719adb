"""Isolation between VMs on one machine, end to end through `kite run --vm`.

A direct-mode guest asks to map every frame of the VMM and of its neighbour;
a shadow-mode guest maps 4 MiB of guest-physical space (twice its RAM) and
reads every page.  Each first fills a page with its own secret and checks it
at the end.  Neither may read or change the other's memory.  A VM that
crashes stops alone.  Guests: tests/monitor/pvguests/isolation_*.s, crasher.s.
"""

from __future__ import annotations

import pytest

from tests.monitor.guestrun import GUEST_MEM
from tests.monitor.test_direct_guests import kite_run


def pv_lines(asked: int) -> list[str]:
    """isolation_pv's output when it asked for `asked` frames: machine frames 0 up to its own
    last + its frame count (512 at GUEST_MEM), less its own 512."""
    return [f"[pv] pv: asked to map {asked} foreign frames: mapped 0, refused with -EPERM {asked}",
            "[pv] pv: own secret intact"]


PV_FIRST_ASKS = 16 + 512          # the VMM's frames, then the next VM's
PV_SECOND_ASKS = 16 + 512 + 512   # the VMM's, the first VM's, then free frames
SHADOW_LINES = [
    "[shadow] shadow: scanned 4 MiB of guest-physical space: readable pages 512, bus errors 512, "
    "other VM's secret seen 0 times, own 1 times",
    "[shadow] shadow: own secret intact",
]


def vm_spec(image: str, paging: str, name: str) -> str:
    return f"{image},paging={paging},mem={GUEST_MEM},name={name}"


def lines_of(result, name: str) -> list[str]:
    """The console lines VM `name` printed, in order (prefix kept)."""
    return [line for line in result.stdout_bytes.decode().splitlines() if line.startswith(f"[{name}] ")]


def test_pv_and_shadow_guests_can_neither_read_nor_change_each_others_memory(tmp_path, guest):
    result, figures = kite_run(tmp_path, "--vm", vm_spec(guest("isolation_pv"), "direct", "pv"),
                               "--vm", vm_spec(guest("isolation_shadow"), "shadow", "shadow"))
    assert lines_of(result, "pv") == pv_lines(PV_FIRST_ASKS), result.stderr
    assert lines_of(result, "shadow") == SHADOW_LINES
    assert sorted(result.stdout_bytes.decode().splitlines()) == sorted(pv_lines(PV_FIRST_ASKS) + SHADOW_LINES)
    assert "kite: pv: exit code 5 (done)" in result.stderr
    assert "kite: shadow: exit code 0 (done)" in result.stderr
    assert result.exit_code == 5
    pv, shadow = figures["vms"]["pv"], figures["vms"]["shadow"]
    assert pv["counters"]["updates_accepted"] == 0 and pv["counters"]["updates_rejected"] == 528
    assert shadow["counters"]["bus_errors"] == 512 and shadow["exits"]["bus error"] == 512


@pytest.mark.parametrize("order", ["pv first", "crasher first"])
def test_crash_of_one_vm_leaves_the_other_to_its_normal_end(tmp_path, guest, order):
    specs = [vm_spec(guest("isolation_pv"), "direct", "pv"), vm_spec(guest("crasher"), "shadow", "crasher")]
    if order == "crasher first":
        specs.reverse()
    result, figures = kite_run(tmp_path, *(part for spec in specs for part in ("--vm", spec)))
    asked = PV_FIRST_ASKS if order == "pv first" else PV_SECOND_ASKS
    assert lines_of(result, "pv") == pv_lines(asked), result.stderr
    assert lines_of(result, "crasher") == ["[crasher] crasher: loading from 0xe0000000 with no trap vector"]
    assert "kite: crasher: stopped: unhandled bus error at pc 0x" in result.stderr
    assert "kite: crasher: exit code 125 (crashed)" in result.stderr
    assert "kite: pv: exit code 5 (done)" in result.stderr
    assert figures["vms"]["pv"]["state"] == "done" and figures["vms"]["crasher"]["state"] == "crashed"
    assert result.exit_code == (5 if order == "pv first" else 125)    # the first nonzero, in VM order

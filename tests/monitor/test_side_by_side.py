"""The issue's headline case: an unmodified kernel-mode guest under shadow paging and
a paravirtual one under direct mapping, side by side in one `kite run`."""

from __future__ import annotations

from click.testing import CliRunner

from tests.monitor.guestrun import expected_transcript
from tests.monitor.guestrun import GUEST_MEM
from tests.monitor.test_direct_guests import PV_DEMO_OUTPUT
from vmm.cli import run


def prefixed(name: str, transcript: str) -> list[str]:
    return [f"[{name}] {line}" for line in transcript.splitlines()]


def test_shadow_and_direct_guests_run_side_by_side_each_as_it_runs_alone(guest_image, guest):
    result = CliRunner().invoke(run, [
        "--vm", f"{guest_image('paging_demo')},paging=shadow,name=native",
        "--vm", f"{guest('pv_demo')},paging=direct,mem={GUEST_MEM},name=pv",
        "--max-instructions", "20000000", "--input-text", ""])
    lines = result.stdout_bytes.decode().splitlines()
    assert [line for line in lines if line.startswith("[native] ")] == prefixed(
        "native", expected_transcript("paging_demo"))
    assert [line for line in lines if line.startswith("[pv] ")] == prefixed("pv", PV_DEMO_OUTPUT.decode())
    assert len(lines) == len(expected_transcript("paging_demo").splitlines()) + len(PV_DEMO_OUTPUT.splitlines())
    assert "kite: native: exit code 42 (done)" in result.stderr
    assert "kite: pv: exit code 7 (done)" in result.stderr
    assert result.exit_code == 42

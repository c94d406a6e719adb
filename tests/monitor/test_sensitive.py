"""rdsr/wrsr, the sensitive-but-unprivileged pair, break pure trap-and-emulate
(Popek and Goldberg): the guest kernel runs in machine user mode, the pair
does not trap, so the VMM never sees it."""

from __future__ import annotations

import re

from tests.monitor.guestrun import expected_transcript

RDSR_LINE = re.compile(r"^(rdsr [^:]*): 0x([0-9a-f]{8}) \(KM=(\d) IE=(\d)\)$")


def rdsr_readings(output: str) -> dict[str, tuple[int, int, int]]:
    """label -> (status value, KM, IE) for every rdsr line the guest printed."""
    readings = {}
    for line in output.splitlines():
        match = RDSR_LINE.match(line)
        if match:
            readings[match.group(1)] = (int(match.group(2), 16), int(match.group(3)), int(match.group(4)))
    return readings


def test_on_bare_hardware_the_kernel_sees_its_own_mode_and_interrupt_state(guest_run):
    bare = guest_run("sensitive", "bare")
    assert bare.output == expected_transcript("sensitive") and bare.exit_code == 23


def test_under_trap_and_emulate_rdsr_shows_the_machines_user_mode_and_wrsr_cannot_restore_ie(guest_run):
    shadow = guest_run("sensitive", "shadow")
    readings = rdsr_readings(shadow.output)
    assert readings.keys() == rdsr_readings(expected_transcript("sensitive")).keys()
    # every reading is the MACHINE status: user mode, the VMM's IE; only the user-flag byte is the guest's
    assert {(km, ie) for _, km, ie in readings.values()} == {(0, 1)}
    assert readings["rdsr after wrsr of the user flags 0x5a"][0] >> 8 == 0x5A
    # the critical section's restoring wrsr cannot set the virtual IE, so the tick that expired inside
    # it is not delivered where the bare machine delivers it
    assert "ticks right after the restoring wrsr: 0" in shadow.output.splitlines()
    assert "ticks right after the restoring wrsr: 1" in expected_transcript("sensitive").splitlines()

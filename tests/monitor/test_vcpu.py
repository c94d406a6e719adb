"""The virtual CPU applies the bare machine's trap-entry and rfe rules to the guest's virtual state."""

from __future__ import annotations

from asm.isa import (CR_BADADDR, CR_CAUSE, CR_EPC, CR_STATUS, CR_TVEC, STATUS_IE, STATUS_KM,
                     STATUS_PIE, STATUS_PKM)
from vmm.monitor.vcpu import VirtualCPU


def test_boot_state_is_virtual_kernel_mode_with_interrupts_off():
    vcpu = VirtualCPU()
    assert vcpu.kernel and not vcpu.interrupts_enabled
    assert vcpu.cr == [STATUS_KM, 0, 0, 0, 0, 0, 0, 0]


def test_trap_from_user_with_ie_saves_mode_and_ie_and_enters_kernel_at_tvec():
    vcpu = VirtualCPU()
    vcpu.cr[CR_TVEC] = 0x8000
    vcpu.cr[CR_STATUS] = STATUS_IE                     # user mode, interrupts on
    assert vcpu.enter_trap(7, 0x1234, None) == 0x8000
    assert vcpu.cr[CR_STATUS] == STATUS_KM | STATUS_PIE   # PKM = 0 (came from user), PIE = 1
    assert (vcpu.cr[CR_EPC], vcpu.cr[CR_CAUSE]) == (0x1234, 7)


def test_trap_without_badaddr_keeps_the_old_badaddr_and_with_one_sets_it():
    vcpu = VirtualCPU()
    vcpu.cr[CR_BADADDR] = 0x55
    vcpu.enter_trap(7, 0, None)
    assert vcpu.cr[CR_BADADDR] == 0x55
    vcpu.enter_trap(4, 0, 0xDEAD000)
    assert vcpu.cr[CR_BADADDR] == 0xDEAD000


def test_rfe_restores_mode_and_ie_from_the_saved_bits_and_keeps_them():
    vcpu = VirtualCPU()
    vcpu.cr[CR_STATUS] = STATUS_KM | STATUS_PIE          # saved: user mode, IE on
    vcpu.cr[CR_EPC] = 0x4000
    assert vcpu.return_from_trap() == 0x4000
    assert vcpu.cr[CR_STATUS] == STATUS_IE | STATUS_PIE
    assert not vcpu.kernel and vcpu.interrupts_enabled


def test_status_combines_virtual_privileged_bits_with_the_machines_user_flags():
    vcpu = VirtualCPU()
    machine_status = 0xAB00 | STATUS_IE                  # the machine's IE is the VMM's, not the guest's
    assert vcpu.status(machine_status) == 0xAB00 | STATUS_KM
    assert vcpu.write_status(0x1200 | STATUS_PKM | STATUS_IE | 0x10) == 0x1200
    assert vcpu.cr[CR_STATUS] == STATUS_PKM | STATUS_IE   # bit 4 is not a status bit


def test_set_interrupts_returns_the_previous_enable():
    vcpu = VirtualCPU()
    assert vcpu.set_interrupts(True) is False
    assert vcpu.set_interrupts(False) is True
    assert not vcpu.interrupts_enabled

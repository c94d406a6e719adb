"""The hypercall dispatcher: a table indexed by number (docs/hypercalls.md).

Register convention and numbers come from hypercall_abi.  Every guest
address is checked through the guest's own view of memory (a page the guest
cannot read is -EFAULT, never a VMM error); every frame number is checked by
the direct-paging validator.  A hypercall from virtual user mode is refused
as on bare hardware: the guest kernel gets the illegal-instruction exception.
"""

from __future__ import annotations

from asm.arch import Access
from asm.isa import CR_STATUS, CR_TVEC, EXC_ILLEGAL, PAGE_MASK, PAGE_SHIFT, REG_NUMBERS, STATUS_IE, STATUS_KM
from vmm.machine.devices.timer import (CTRL_ENABLE, CTRL_PERIODIC, TIMER_CTRL, TIMER_INTERVAL)
from vmm.machine.devices.uart import UART_TX
from vmm.monitor.direct import Rejected
from vmm.monitor.hypercall_abi import (CONSOLE_READ_MAX, CONSOLE_WRITE_MAX, EFAULT, EINVAL, ENODEV, ENOSYS,
                                       HC_ARG_REGS,
                                       HC_NUMBER_REG, HC_RESULT2_REG, HC_RESULT_REG, HYPERCALLS_BY_NUMBER,
                                       MODE_DIRECT, TIMER_PERIODIC, result_word)
from vmm.monitor.physmap import GVA, MA
from vmm.monitor.pvcpu import returned_status

SP = REG_NUMBERS["sp"]


def dispatch(monitor, vm, epc: int) -> None:
    """Run the hypercall the guest made at `epc` and continue after it."""
    if not vm.vcpu.kernel:
        monitor.reflect(vm, EXC_ILLEGAL, epc, None, "reflect: hypercall from user mode")
        return
    regs = monitor.cpu.regs
    call = HYPERCALLS_BY_NUMBER.get(regs[HC_NUMBER_REG])
    vm.exits[f"hypercall: {call.name if call else 'unknown'}"] += 1
    if call is None or (call.modes == MODE_DIRECT and vm.config.paging != "direct"):
        if monitor.trace_hypercall is not None:
            monitor.trace_hypercall(vm, epc, call.name if call else f"unknown {regs[HC_NUMBER_REG]}", [], -ENOSYS)
        regs[HC_RESULT_REG] = result_word(-ENOSYS)
        monitor.complete(vm, epc + 4)
        return
    args = [regs[number] for number in HC_ARG_REGS][:len(call.args)]
    result = HANDLERS[call.name](monitor, vm, *args)
    if monitor.trace_hypercall is not None:
        monitor.trace_hypercall(vm, epc, call.name, args, result)
    if vm.alive and result is not None:
        regs[HC_RESULT_REG] = result_word(result)
        monitor.complete(vm, epc + 4)


def read_guest_word(monitor, vm, gva: GVA) -> int | None:
    """The word at guest-virtual `gva` as the guest kernel reads it, or None."""
    if gva & 3:
        return None
    ma = vm.mode.guest_address(vm.vcpu, gva, Access.READ)
    return None if ma is None else monitor.machine.memory.read(ma, 4)


def buffer_addresses(vm, buf: GVA, length: int, access: Access) -> list[MA] | int:
    """The machine address of each byte of the guest buffer [buf, buf + length)
    as the guest may access it, or -EFAULT if any byte is not (a buffer past
    the top of the 32-bit address space included)."""
    if buf + length > 1 << 32:
        return -EFAULT
    addresses = [vm.mode.guest_address(vm.vcpu, buf + index, access) for index in range(length)]
    return -EFAULT if None in addresses else addresses


def _console_write(monitor, vm, buf: int, length: int) -> int:
    """Check every byte is readable, then write them all: all or nothing."""
    if length > CONSOLE_WRITE_MAX:
        return -EINVAL
    addresses = buffer_addresses(vm, buf, length, Access.READ)
    if isinstance(addresses, int):
        return addresses
    memory = monitor.machine.memory
    for ma in addresses:
        vm.uart.write(UART_TX, 4, memory.read(ma, 1))
    return length


def _console_read(monitor, vm, buf: int, length: int) -> int:
    """Up to `length` input bytes into the guest's buffer (each byte checked
    writable first), at least one unless the input has ended."""
    if length > CONSOLE_READ_MAX:
        return -EINVAL
    addresses = buffer_addresses(vm, buf, length, Access.WRITE)
    if isinstance(addresses, int):
        return addresses
    console = vm.console_in
    if console.peek() is None:
        console.poll()
    count = 0
    while count < length and console.peek() is not None:
        monitor.machine.memory.write(addresses[count], 1, console.pop())
        vm.mode.guest_written(addresses[count], 1)
        count += 1
    return count


def _mmu_update(monitor, vm, batch: int, count: int) -> int:
    result = vm.mode.direct.apply_batch(lambda gva: read_guest_word(monitor, vm, gva), batch, count)
    monitor.cpu.regs[HC_RESULT2_REG] = result.done
    return result.error or 0


def _validated(action) -> int:
    """Run a DirectPaging call; 0, or the -errno of its refusal."""
    try:
        action()
    except Rejected as refusal:
        return refusal.error
    return 0


def _set_base(monitor, vm, kernel_mfn: int, user_mfn: int) -> int:
    result = _validated(lambda: vm.mode.direct.set_base(kernel_mfn, user_mfn))
    if result == 0:
        monitor.load_mode(vm)
    return result


def _pin_table(monitor, vm, mfn: int, level: int) -> int:
    return _validated(lambda: vm.mode.direct.pin_table(mfn, level))


def _unpin_table(monitor, vm, mfn: int) -> int:
    return _validated(lambda: vm.mode.direct.unpin(mfn))


def _tlb_flush(monitor, vm) -> int:
    vm.mode.flush()
    return 0


def _tlb_invlpg(monitor, vm, va: int) -> int:
    vm.mode.invlpg(va)
    return 0


def _set_timer(monitor, vm, interval: int, flags: int) -> int:
    """Program the VM's timer as the MMIO registers would."""
    vm.timer.write(TIMER_INTERVAL, 4, interval)
    ctrl = 0 if interval == 0 else CTRL_ENABLE | (CTRL_PERIODIC if flags & TIMER_PERIODIC else 0)
    vm.timer.write(TIMER_CTRL, 4, ctrl)
    return 0


def _yield(monitor, vm) -> int:
    monitor.end_slice()
    return 0


def _shutdown(monitor, vm, exit_code: int) -> None:
    vm.finish(exit_code & 0xFF)


def _set_trap_vector(monitor, vm, handler: int) -> int:
    vm.vcpu.cr[CR_TVEC] = handler
    return 0


def _return_from_trap(monitor, vm) -> int | None:
    """Pop the interrupted a0 from 0(sp), then rfe on the virtual state."""
    regs = monitor.cpu.regs
    saved = read_guest_word(monitor, vm, regs[SP])
    if saved is None:
        return -EFAULT
    regs[HC_RESULT_REG], regs[SP] = saved, (regs[SP] + 4) & 0xFFFFFFFF
    target = vm.vcpu.return_from_trap()
    monitor.load_mode(vm)
    monitor.complete(vm, target)
    return None


def _set_irq_enable(monitor, vm, enable: int) -> int:
    return int(vm.vcpu.set_interrupts(bool(enable)))


def _set_vcpu_page(monitor, vm, page_gva: int) -> int:
    """Register the per-vCPU page at `page_gva` (0: unregister), held
    writable while registered (vmm/monitor/pvcpu.py)."""
    return _register_page(vm, page_gva, lambda ma: monitor.set_pv_cpu(vm, ma))


def _blk_setup(monitor, vm, ring_gva: int) -> int:
    """Register the block ring page at `ring_gva` (0: unregister), checked
    as the per-vCPU page is; a1 = the disk's sectors (docs/hypercalls.md
    "The block ring")."""
    if vm.disk is None:
        return -ENODEV
    if not ring_gva & PAGE_MASK:
        monitor.cpu.regs[HC_RESULT2_REG] = vm.disk.image.capacity
    return _register_page(vm, ring_gva, lambda ma: monitor.set_block_ring(vm, ma))


def _register_page(vm, page_gva: int, register) -> int:
    """A page the guest shares with the VMM: `page_gva` page-aligned (else
    -EINVAL), 0 to unregister (register(None)), else mapped writable for the
    guest kernel (else -EFAULT) and a frame that is not a page table, which
    the validator then holds typed writable (else its code); register(ma)
    when it is."""
    if page_gva & PAGE_MASK:
        return -EINVAL
    if page_gva == 0:
        register(None)
        return 0
    ma = vm.mode.guest_address(vm.vcpu, page_gva, Access.WRITE)
    if ma is None:
        return -EFAULT
    result = _validated(lambda: vm.mode.direct.hold_writable(ma >> PAGE_SHIFT))
    if result == 0:
        register(ma)
    return result


def _blk_notify(monitor, vm) -> int:
    """Queue the ring's new requests (blkback.BlockBackend.notify)."""
    return -EINVAL if vm.blk is None else vm.blk.notify()


def _iret(monitor, vm) -> int | None:
    """Return through the per-vCPU page's frame: pc, sp, a0, KM, IE and UF."""
    if vm.pvcpu is None:
        return -EINVAL
    pc, sp, a0, status = vm.pvcpu.return_state()
    privileged, user_flags = returned_status(status)
    vm.vcpu.cr[CR_STATUS] = (vm.vcpu.cr[CR_STATUS] & ~(STATUS_KM | STATUS_IE)) | privileged
    regs = monitor.cpu.regs
    regs[SP], regs[HC_RESULT_REG] = sp, a0
    monitor.load_mode(vm, user_flags=user_flags)
    monitor.complete(vm, pc)
    return None


HANDLERS = {
    "console_write": _console_write, "console_read": _console_read, "mmu_update": _mmu_update, "set_base": _set_base,
    "pin_table": _pin_table, "unpin_table": _unpin_table, "tlb_flush": _tlb_flush,
    "tlb_invlpg": _tlb_invlpg, "set_timer": _set_timer, "yield": _yield, "shutdown": _shutdown,
    "set_trap_vector": _set_trap_vector, "return_from_trap": _return_from_trap,
    "set_irq_enable": _set_irq_enable, "set_vcpu_page": _set_vcpu_page, "iret": _iret,
    "blk_setup": _blk_setup, "blk_notify": _blk_notify,
}

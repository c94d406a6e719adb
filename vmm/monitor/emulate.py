"""Instruction emulation at VM exits: privileged instructions against the
virtual CPU, stores into traced guest page tables, and guest MMIO.

Each function gets the exit's epc and decodes, with the ISA table, the
instruction word the machine hands over with the exit (`CPU.exit_word`, the
word it was executing, as VT-x's VM-exit instruction information does), so
what is emulated is exactly what ran; without one it fetches the word at epc
through the guest's own view of memory (paging.*.guest_address).  It then
either completes the instruction (`Monitor.complete`: one tick, pc = next) or
reflects the exception the bare machine would raise.  A guest whose
instruction cannot be fetched is stopped: it just ran from there, so its
tables changed under the VMM's feet in a way the bare machine could not show.
A fetched word that is not the kind of instruction that exited (the guest
remapped its own code without flushing, so the CPU ran a stale one) makes the
VMM drop the stale translation and let the guest retry (`retry_stale`), as
the guest's own flush would.
"""

from __future__ import annotations

from asm.arch import Access, extend
from asm.isa import (CR_PTB, CR_STATUS, EXC_BUS_ERROR, EXC_PRIVILEGED, LOAD_WIDTHS, STORE_WIDTHS, Decoded,
                     decode)
from vmm.monitor.physmap import GPA, GVA
from vmm.monitor.vm import WAITING

WORD = 0xFFFFFFFF


def fetch(monitor, vm, epc: GVA) -> Decoded | None:
    """The decoded guest instruction that exited at `epc` (the machine's
    exit word, else fetched through the guest's view), or None (the VM is
    stopped)."""
    word = monitor.cpu.exit_word
    if word is not None:
        decoded = decode(word)
        if decoded is not None:
            return decoded
    ma = vm.mode.guest_address(vm.vcpu, epc, Access.FETCH)
    decoded = None if ma is None else decode(monitor.machine.memory.read(ma, 4))
    if decoded is None:
        vm.crash(f"cannot fetch the instruction to emulate at {epc:#010x}")
    return decoded


def retry_stale(monitor, vm, epc: int, expected: str) -> None:
    """The instruction at `epc` as the guest's tables map it now is not the one
    that exited: drop the stale translation of that page and retry it."""
    vm.exits[f"stale instruction ({expected})"] += 1
    monitor.cpu.invalidate_tlb(epc)
    monitor.cpu.pc = epc


def effective_address(vm_regs: list[int], decoded: Decoded) -> int:
    """rs1 + imm of a load or store."""
    return (vm_regs[decoded.operands["rs1"]] + decoded.operands["imm"]) & WORD


def set_register(monitor, number: int, value: int) -> None:
    if number:
        monitor.cpu.regs[number] = value & WORD


# --- privileged instructions -----------------------------------------------------------------

def privileged(monitor, vm, epc: int) -> None:
    """A privileged instruction trapped: emulate it in virtual kernel mode,
    reflect the privileged-instruction exception in virtual user mode."""
    decoded = fetch(monitor, vm, epc)
    if decoded is None:
        return
    if not vm.vcpu.kernel:
        monitor.reflect(vm, EXC_PRIVILEGED, epc, None, "reflect: privileged instruction")
        return
    mnemonic = decoded.insn.mnemonic
    if mnemonic not in EMULATORS:
        retry_stale(monitor, vm, epc, "privileged")
        return
    vm.exits[f"privileged: {mnemonic}"] += 1
    EMULATORS[mnemonic](monitor, vm, decoded.operands, epc)
    if mnemonic in QUIET or mnemonic == "mtcr" and decoded.operands["cr"] not in (CR_STATUS, CR_PTB):
        monitor.quiet()


def _mfcr(monitor, vm, operands, epc) -> None:
    cr = operands["cr"]
    value = vm.vcpu.status(monitor.cpu.cr[CR_STATUS]) if cr == CR_STATUS else vm.vcpu.cr[cr]
    set_register(monitor, operands["rd"], value)
    monitor.complete(vm, epc + 4)


def _mtcr(monitor, vm, operands, epc) -> None:
    cr, value = operands["cr"], monitor.cpu.regs[operands["rs1"]]
    if cr == CR_STATUS:
        monitor.load_mode(vm, user_flags=vm.vcpu.write_status(value))
    elif cr == CR_PTB:
        if not vm.mode.write_ptb(vm.vcpu, value):
            monitor.reflect(vm, EXC_PRIVILEGED, epc, None, "reflect: mtcr ptb (direct mode)")
            return
        monitor.load_mode(vm)
    else:
        vm.vcpu.cr[cr] = value
    monitor.complete(vm, epc + 4)


def _rfe(monitor, vm, operands, epc) -> None:
    target = vm.vcpu.return_from_trap()
    monitor.load_mode(vm)
    monitor.complete(vm, target)


def _halt(monitor, vm, operands, epc) -> None:
    vm.finish(vm.power.exit_code or 0)
    monitor.complete(vm, epc + 4)


def _wfi(monitor, vm, operands, epc) -> None:
    """Wait unless a virtual line is asserted (IE does not matter), as on bare hardware."""
    monitor.bring_devices_current()      # the lines as they are now (Monitor.exit may not have)
    if not vm.irq.pending:
        vm.state = WAITING
    monitor.complete(vm, epc + 4)


def _ei(monitor, vm, operands, epc) -> None:
    vm.vcpu.set_interrupts(True)
    monitor.complete(vm, epc + 4)


def _di(monitor, vm, operands, epc) -> None:
    vm.vcpu.set_interrupts(False)
    monitor.complete(vm, epc + 4)


def _tlbflush(monitor, vm, operands, epc) -> None:
    vm.mode.flush()
    monitor.complete(vm, epc + 4)


def _tlbinv(monitor, vm, operands, epc) -> None:
    vm.mode.invlpg(monitor.cpu.regs[operands["rs1"]])
    monitor.complete(vm, epc + 4)


# what emulating them changes is the virtual CPU's registers, the guest's or the paging mode's tables,
# never a device, an interrupt line, the virtual interrupt flag or the mode (Monitor.exit: a quiet exit),
# as mtcr of a register other than status and ptb
QUIET = frozenset({"mfcr", "di", "tlbflush", "tlbinv"})
EMULATORS = {"mfcr": _mfcr, "mtcr": _mtcr, "rfe": _rfe, "halt": _halt, "wfi": _wfi, "ei": _ei,
             "di": _di, "tlbflush": _tlbflush, "tlbinv": _tlbinv}


# --- memory tracing and MMIO -------------------------------------------------------------------

def traced_write(monitor, vm, epc: GVA, gpa: GPA) -> None:
    """A store into a write-protected guest page table: perform it on the
    guest table through the shadow, which updates the shadow entries."""
    decoded = fetch(monitor, vm, epc)
    if decoded is None:
        return
    width = STORE_WIDTHS.get(decoded.insn.mnemonic)
    if width is None:
        retry_stale(monitor, vm, epc, "store")
        return
    vm.mode.emulate_pt_write(gpa, width, monitor.cpu.regs[decoded.operands["rs2"]])
    monitor.complete(vm, epc + 4)


def mmio(monitor, vm, epc: GVA, gpa: GPA) -> None:
    """A load or store to a guest device page: the VM's device model answers,
    at the exact tick; no device there is the guest's bus error."""
    decoded = fetch(monitor, vm, epc)
    if decoded is None:
        return
    regs, mnemonic = monitor.cpu.regs, decoded.insn.mnemonic
    if mnemonic not in STORE_WIDTHS and mnemonic not in LOAD_WIDTHS:
        retry_stale(monitor, vm, epc, "load or store")
        return
    found = vm.device_at(gpa)
    if found is None:
        monitor.reflect(vm, EXC_BUS_ERROR, epc, effective_address(regs, decoded), "bus error")
        return
    device, offset = found
    if device is vm.disk:
        vm.disk_mmio_exits += 1
    if mnemonic in STORE_WIDTHS:
        width = STORE_WIDTHS[mnemonic]
        device.write(offset, width, regs[decoded.operands["rs2"]] & ((1 << 8 * width) - 1))
    else:
        width, signed = LOAD_WIDTHS[mnemonic]
        set_register(monitor, decoded.operands["rd"], extend(device.read(offset, width), width, signed))
    monitor.complete(vm, epc + 4)

"""Running a nested-paging VM in the machine's guest mode: entry, exit, and
the exits mapped onto the monitor's existing handlers (KVM's vcpu_run loop).

A trap-and-emulate VM's registers ARE the machine's while it runs.  A guest-
mode VM's live in its VMCS guest area while it runs; between an exit and the
next entry they are where every monitor handler expects them, exactly as for
a trap-and-emulate VM:

    registers, pc          monitor.cpu.regs, monitor.cpu.pc  (vm.regs / vm.pc while switched out)
    control registers      vm.vcpu.cr, all eight, status whole (KM, IE, PKM, PIE and the user flags)

    enter:  cpu.regs, pc, vcpu.cr ──► VMCS guest area;  vm.irq.pending ──► VMCS_VIRQ;  cpu.enter_guest
    exit:   VMCS guest area ──► cpu.regs, pc, vcpu.cr;  the exit word ──► cpu.exit_word;
            Monitor.exit(cause, guest pc, badaddr) with the cause the exit stands for (through
            cpu.vm_exit, so a trace of exits sees it as any VMM exit):

    VM exit              cause given to Monitor.exit      handled by (the monitor's own dispatch)
    external interrupt   CAUSE_INTERRUPT | irq            the VMM's timer: devices current, slice, schedule
    hypercall            EXIT_HYPERCALL                   hypercalls.dispatch
    halt, wfi            EXC_PRIVILEGED (with the word)   emulate.privileged: the VM finishes / waits
    nested fault         EXC_PAGE_FAULT | access          NestedMode.page_fault: MMIO (emulate.mmio) or
                                                          the bare machine's bus error, reflected
    vmenter              EXC_ILLEGAL                      reflected: the VMM's vCPUs lack the extension
    triple fault,        the guest's cause                stop_guest: VM.crash with the bare machine's
      no trap vector                                        message (the monitor's dispatch is bypassed)

An instruction that exits did not retire; the handlers that complete one
(Monitor.complete) add 4 to the pc and charge its tick, so tick counts match
the bare machine's.  Virtual interrupts are not injected by the monitor
(Monitor._inject skips this mode): the VM's lines are copied into VMCS_VIRQ
at every entry and the hardware delivers the lowest one the guest's IE
allows; a line stays set until the guest acknowledges its device (an MMIO
exit), and the next entry copies the cleared line.
"""

from __future__ import annotations

from asm.arch import is_fetch_fault, triple_fault_message, unhandled_trap_message
from asm.isa import (CAUSE_ERRCODE_SHIFT, CAUSE_INTERRUPT, CR_BADADDR, CR_EPC, EXC_ILLEGAL, EXC_PAGE_FAULT,
                     EXC_PRIVILEGED, EXIT_INFO_GVA, EXIT_INFO_WORD, NUM_REGS, VMCS_AREA_CR, VMCS_AREA_PC,
                     VMCS_AREA_REGS, VMCS_EXIT_ACCESS, VMCS_EXIT_GVA, VMCS_EXIT_INFO, VMCS_EXIT_WORD,
                     VMCS_GUEST, VMCS_VIRQ, VMEXIT_EXTERNAL, VMEXIT_HALT, VMEXIT_HOST, VMEXIT_HYPERCALL,
                     VMEXIT_NAMES,
                     VMEXIT_NESTED_FAULT, VMEXIT_NO_VECTOR, VMEXIT_TRIPLE_FAULT, VMEXIT_VMENTER, VMEXIT_WFI)
from vmm.machine.cpu import EXIT_HYPERCALL

NUM_CRS = 8
ACCESS_CODE = 0xF                   # the PF_* bits of a nested fault's access kind: its error code


def traps_taken(cpu) -> int:
    """Every exception and interrupt the machine has counted."""
    return sum(cpu.counters.exceptions.values()) + sum(cpu.counters.interrupts.values())


class GuestMode:
    """The guest-mode run of one NestedMode VM (module doc)."""

    def __init__(self, mode):
        self.mode = mode
        self.memory, self.tables = mode.memory, mode.tables
        self._monitor = self._vm = None
        self._at_entry = (0, 0, 0)      # the machine's (nested_walk_refs, pwc_hits, traps) at the last entry
        self._reason = 0                # the last exit's VMEXIT_* reason

    def enter(self, vm, monitor) -> None:
        """Enter guest mode for `vm` (the current VM, runnable): its state
        into the VMCS guest area, its lines into VMCS_VIRQ."""
        cpu, write, area = monitor.cpu, self.memory.write, self.tables.vmcs + VMCS_GUEST
        for number, value in enumerate(cpu.regs):
            write(area + VMCS_AREA_REGS + 4 * number, 4, value)
        write(area + VMCS_AREA_PC, 4, cpu.pc)
        for number, value in enumerate(vm.vcpu.cr):
            write(area + VMCS_AREA_CR + 4 * number, 4, value)
        write(self.tables.vmcs + VMCS_VIRQ, 4, vm.irq.pending)
        self._monitor, self._vm = monitor, vm
        vm_counts = cpu.counters.vm
        self._at_entry = (vm_counts.nested_walk_refs, vm_counts.pwc_hits, traps_taken(cpu))
        self.mode.counters["vm_entries"] += 1
        cpu.guest_exit = self.exited
        cpu.enter_guest(self.tables.vmcs)

    def exited(self, reason: int, qualification: int) -> None:
        """The CPU's guest_exit hook (host state loaded): the guest's state
        back into the register file, then Monitor.exit with the cause the
        exit stands for (module doc)."""
        monitor, vm, read = self._monitor, self._vm, self.memory.read
        cpu, vmcs = monitor.cpu, self.tables.vmcs
        self._take_state(cpu, vm)
        info = read(vmcs + VMCS_EXIT_INFO, 4)
        cpu.exit_word = read(vmcs + VMCS_EXIT_WORD, 4) if info & EXIT_INFO_WORD else None
        gva = read(vmcs + VMCS_EXIT_GVA, 4) if info & EXIT_INFO_GVA else None
        self._count(cpu, reason)
        self._reason = reason
        cause, badaddr, dispatch = self._cause(reason, qualification, gva)
        if dispatch is None:
            cpu.vm_exit(cause, cpu.pc, badaddr)     # Monitor.exit, or the tracer's wrapper of it
        else:
            monitor.exit(cause, cpu.pc, badaddr, dispatch)

    def pause(self, vm, monitor) -> None:
        """Leave guest mode between two instructions at the VMM's request
        (CPU.leave_guest: VMEXIT_HOST, nothing to handle), the guest's state
        back where the monitor keeps it, as after any exit: for a checkpoint or
        a migration to capture.  Monitor._run_current enters again."""
        monitor.cpu.leave_guest()
        self._take_state(monitor.cpu, vm)
        self._count(monitor.cpu, VMEXIT_HOST)

    def _take_state(self, cpu, vm) -> None:
        """The VMCS guest area into the register file and the vCPU's control registers."""
        read, area = self.memory.read, self.tables.vmcs + VMCS_GUEST
        cpu.regs = [read(area + VMCS_AREA_REGS + 4 * number, 4) for number in range(NUM_REGS)]
        cpu.pc = read(area + VMCS_AREA_PC, 4)
        vm.vcpu.cr[:] = [read(area + VMCS_AREA_CR + 4 * number, 4) for number in range(NUM_CRS)]

    def _count(self, cpu, reason: int) -> None:
        """The mode's counters: exits by reason, and since the entry the nested
        walk's figures and the traps the guest took in guest mode (its own
        exceptions, system calls and virtual interrupts: no exit, but a trap's
        price in the VM's modeled cycles, as on the bare machine)."""
        counters, vm_counts = self.mode.counters, cpu.counters.vm
        key = "exits: " + VMEXIT_NAMES.get(reason, f"reason {reason}")
        counters[key] = counters.get(key, 0) + 1
        counters["nested_faults"] += reason == VMEXIT_NESTED_FAULT
        counters["nested_walk_refs"] += vm_counts.nested_walk_refs - self._at_entry[0]
        counters["pwc_hits"] += vm_counts.pwc_hits - self._at_entry[1]
        counters["guest_traps"] += traps_taken(cpu) - self._at_entry[2]

    def _cause(self, reason: int, qualification: int, gva: int | None):
        """(cause, badaddr, dispatch) for Monitor.exit: dispatch None means
        the monitor's own dispatch on the cause (module doc's table)."""
        if reason == VMEXIT_EXTERNAL:
            return CAUSE_INTERRUPT | qualification, None, None
        if reason == VMEXIT_HYPERCALL:
            return EXIT_HYPERCALL, None, None
        if reason in (VMEXIT_HALT, VMEXIT_WFI):
            return EXC_PRIVILEGED, None, None
        if reason == VMEXIT_NESTED_FAULT:
            access = self.memory.read(self.tables.vmcs + VMCS_EXIT_ACCESS, 4)
            self.mode.fault = (qualification, access)
            return EXC_PAGE_FAULT | (access & ACCESS_CODE) << CAUSE_ERRCODE_SHIFT, gva, None
        if reason == VMEXIT_VMENTER:
            return EXC_ILLEGAL, None, None
        if reason in (VMEXIT_TRIPLE_FAULT, VMEXIT_NO_VECTOR):
            return qualification, gva, self.stop_guest
        return EXC_ILLEGAL, None, self.unexpected

    def stop_guest(self, vm, cause: int, epc: int, badaddr: int | None) -> None:
        """A triple fault or a trap with no vector: the guest stops as the bare
        machine stops, with its message (for no vector: the epc and badaddr
        its trap entry recorded)."""
        if self._reason == VMEXIT_TRIPLE_FAULT:
            vm.crash(triple_fault_message(cause, epc, badaddr, is_fetch_fault(cause, epc, badaddr)))
        else:
            recorded = vm.vcpu.cr[CR_BADADDR] if badaddr is not None else None
            vm.crash(unhandled_trap_message(cause, vm.vcpu.cr[CR_EPC], recorded))

    def unexpected(self, vm, cause: int, epc: int, badaddr: int | None) -> None:
        """An exit this mode's controls never ask for: a VMM bug, stopping only this VM."""
        raise RuntimeError(f"guest mode: unexpected VM exit at {epc:#010x}")

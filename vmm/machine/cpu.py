"""The Kite32 CPU: architectural state, the run loop, trap delivery and the
slow paths that translated blocks call (vmm/machine/translate.py).

The run loop (QEMU-like):

    until ticks reach until_tick, while state == "running":
        an interrupt pending and IE set        -> trap entry (no tick)
        the block entry for pc                 (a dict lookup by virtual pc;
            miss: translate the fetch, find or translate the block)
        then follow the successors the blocks return (chained on a page,
        looked up across pages); per block: does it fit the ticks left?
        run it, add its length and its translations.  Markers stop the
        loop's fast path: a lookup (and chaining), the extra rounds of a
        looping block, or a stop after a block that may change the
        context (mode, paging, IE, state), which looks again
        too long for the ticks left             -> single-instruction blocks

Block entries are kept per page, (context, virtual page, physical page),
until that physical page is written; a TLB flush empties only the lookup, a
tlbinv takes one page out of it, and the first fetch from a page afterwards
(its walk counted as ever) puts that page's entries back (_entry).

Blocks leave early (BlockExit) after any device access or code-page write, so
interrupts are checked before every instruction, `request_stop` takes effect
right after the current instruction, and `ticks` is exact whenever a device
runs.  A guest exception (Trap) retires exactly the instructions before the
faulting one.

Decisions where the spec is silent:
- `ticks` counts retired instructions; a trapping instruction (syscall,
  break, hypercall, any fault) does not retire.  `halt` and `wfi` retire and
  leave pc after themselves.
- badaddr is the address the instruction used: the virtual address for page
  faults, misaligned accesses and bus errors (a device page or unmapped
  physical page behind a valid translation), the pc for fetch faults.  An
  instruction fetch from outside RAM (devices included) is a bus error.
- Immediate shifts with an amount outside 0..31 are illegal instructions.
- `mtcr status` and kernel `wrsr` keep only the defined status bits.
- An unhandled fault (tvec 0) still records epc, cause and badaddr, for the
  register dump, but changes neither status nor pc.
- An exception raised by the first instruction of a trap handler (fetching it
  or executing it, before it retires) is a triple fault: delivering it would
  raise it again forever.  The machine stops.
- The trace hook sees every instruction the CPU starts (a faulting one too,
  followed by its trap line).

VMM hook: with `vm_exit` set, every exception, interrupt and `hypercall` calls
vm_exit(cause, epc, badaddr) instead of entering tvec: the CPU changes no
state (pc = epc on the call, badaddr None for causes without one) and goes on
from cpu.pc afterwards; direct changes to `cr` (status, ptb) are picked up,
and so is a change to `ticks` (the VMM charges the instructions it emulates).
Interrupts reach vm_exit only while status.IE is set, as on bare hardware.
During the call `exit_word` is the instruction word the CPU was executing at
epc (the one that trapped, as fetched through the TLB), or None for an
interrupt or a fault fetching it: a VMM may decode that instead of fetching
the word again.

Exits in place: in host mode with no trace, a store's translation fault (a
page fault, or the bus error of a table outside RAM) reaches vm_exit from
the store's slow path, inside the block, not after unwinding it.  What the
VMM sees is the same (pc, ticks, exit_word, counters), but for
counters.translations, which the run loop settles when the block ends or
is left (no VMM reads it during an exit).  vm_exit returns True for a
quiet exit: the same VM goes on, and the VMM changed nothing but what
emulating or retrying the instruction changes.  If it completed the store
(pc = epc + 4, one tick later; a store writes no register), the mode, ptb
and the code page's translation are as they were, the CPU is still in host
mode with no trace, no code was written, nothing stopped the CPU and no
interrupt is to be taken, the block goes on with the next instruction, as
the run loop would have; otherwise the run loop goes on from where the VMM
left pc and ticks (Exited), as after any exit.

Guest mode (the optional virtualization extension, docs/isa.md
"Virtualization extension (optional)"): `vmenter rs1` and `enter_guest(vmcs)`
are one operation (_enter): the host's registers, pc and control registers
go to the VMCS host area, the guest's come from its guest area, and the CPU
runs the guest in guest-mode contexts (Context.guest: the controlled
instructions exit, asm.arch.guest_exit_reason) with the MMU on the guest
side (nested paging, mmu.py).  The guest's own exceptions, syscalls and
virtual interrupts (VMCS_VIRQ, taken by asm.arch.interrupt_to_take when the
guest's IE allows) enter the guest's tvec with no exit.  A VM exit (_vm_exit)
stores the guest state and the exit information in the VMCS, loads the host
state and goes on at the host pc (after the vmenter), or, with `guest_exit`
set, calls guest_exit(reason, qualification) there instead (the VMM may call
enter_guest again from it).  In guest mode `vm_exit` is not consulted.

Decisions where the spec is silent (guest mode):
- vmenter retires when the entry succeeds (one tick); an exit adds none, and
  an instruction that exits does not retire: the guest pc saved is its own
  address (the VMM adds 4 after emulating it).
- vmenter of a VMCS address not page-aligned or not wholly in RAM raises the
  bus error (badaddr = rs1); of a VMCS whose nptb lacks NPTB_ENABLE or names
  a root outside RAM, the illegal-instruction exception.  enter_guest raises
  ValueError for the same VMCS.
- A machine interrupt line asserted in guest mode exits (external interrupt,
  qualification = the lowest line) before the next guest instruction,
  whatever the guest's IE; the host takes it after the exit by its own IE.
- The guest's triple fault exits with the guest state as it was at the
  faulting instruction; a guest trap while the guest's tvec is 0 exits with
  epc, cause and badaddr recorded in the guest's control registers.
- checkpoint() is refused in guest mode, and the virtualization counts
  (counters.vm) are not part of a checkpoint.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Callable

from asm.arch import (FETCH, READ, WRITE, enter_trap, extend, guest_exit_reason, interrupt_to_take, rfe,
                      triple_fault_message, unhandled_trap_message, written_status)
from asm.isa import (BY_MNEMONIC, CAUSE_CODE_MASK, CAUSE_INTERRUPT, CR_PTB, CR_STATUS, EXC_BUS_ERROR,
                     EXC_ILLEGAL, EXC_MISALIGNED, EXIT_INFO_GVA, EXIT_INFO_WORD, NPTB_ENABLE, NUM_REGS,
                     PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PTB_FRAME_MASK, REG_A0, STATUS_DEFINED, STATUS_IE,
                     STATUS_KM, VMCS_AREA_CR, VMCS_AREA_PC, VMCS_AREA_REGS, VMCS_EXIT_ACCESS,
                     VMCS_EXIT_CONTROLS, VMCS_EXIT_GVA, VMCS_EXIT_INFO, VMCS_EXIT_QUALIFICATION,
                     VMCS_EXIT_REASON, VMCS_EXIT_WORD, VMCS_GUEST, VMCS_HOST, VMCS_MTCR_EXITS, VMCS_NPTB,
                     VMCS_SIZE, VMCS_VIRQ, VMEXIT_EXTERNAL, VMEXIT_HYPERCALL, VMEXIT_NESTED_FAULT,
                     VMEXIT_HOST, VMEXIT_NO_VECTOR, VMEXIT_SENSITIVE, VMEXIT_TRIPLE_FAULT)
from vmm.machine.bus import Bus
from vmm.machine.counters import Counters
from vmm.machine.errors import BusError, KiteError
from vmm.machine.irq import InterruptLines
from vmm.machine.memory import PhysicalMemory
from vmm.machine.mmu import MMU, Fault
from vmm.machine.outcome import CpuState
from vmm.machine.translate import (BIG, EXIT_HYPERCALL, GUEST_EXIT, BlockExit, Block, Context, Exited,
                                   Translator, Trap)

__all__ = ["CPU", "EXIT_HYPERCALL", "GuestExit"]

M32 = 0xFFFFFFFF
NUM_CRS = 8
RUNNING = CpuState.RUNNING      # tested on every run-loop round and exit: an Enum member's lookup costs a call
VmExit = Callable[[int, int, "int | None"], "bool | None"]     # True: a quiet exit (module doc)
GuestExit = Callable[[int, int], None]      # guest_exit(reason, qualification); the rest is in the VMCS
CONTEXTS = {(user, paging, guest): Context(user, paging, guest)
            for user in (False, True) for paging in (False, True) for guest in (False, True)}


class Meta:
    """What the run loop needs of a block entry off the fast path: its pc and Block."""
    __slots__ = ("pc", "block")

    def __init__(self, pc: int, block: Block):
        self.pc, self.block = pc, block


class Link:
    """A LOOKUP marker's target in a chain cell: the pc, and the cell to
    point at the block found there."""
    __slots__ = ("pc", "cell")

    def __init__(self, pc: int, cell):
        self.pc, self.cell = pc, cell


class Guest:
    """What the CPU holds of the VMCS while in guest mode: where it is, the
    exit controls, the virtual lines (read at entry) and the host's ptb."""
    __slots__ = ("vmcs", "exit_controls", "mtcr_exits", "virq", "host_ptb")

    def __init__(self, vmcs: int, exit_controls: int, mtcr_exits: int, virq: int, host_ptb: int):
        self.vmcs, self.exit_controls, self.mtcr_exits = vmcs, exit_controls, mtcr_exits
        self.virq, self.host_ptb = virq, host_ptb


class CPU:
    """One Kite32 CPU on `memory` (RAM), `bus` (devices) and `irq` (lines)."""

    def __init__(self, memory: PhysicalMemory, bus: Bus, irq: InterruptLines):
        self.memory, self.bus, self.irq = memory, bus, irq
        self._regs = [0] * NUM_REGS
        self._cr = [0] * NUM_CRS
        self.counters = Counters()
        self.mmu = MMU(memory, self.counters)
        self.trace: Callable[[str, int, int], None] | None = None
        self.vm_exit: VmExit | None = None
        self.exit_word: int | None = None
        self.guest_exit: GuestExit | None = None
        self._guest: Guest | None = None
        hooks = {"R": self._regs, "CR": self._cr, "LD": self._load, "ST": self._store,
                 "WSTATUS": self._write_status, "WPTB": self._write_ptb, "RFE": self._rfe,
                 "HALT": self._halt, "WFI": self._wfi, "FLUSH": self.flush_tlb,
                 "INV": self.invalidate_tlb, "VMENTER": self._vmenter, "GX": self._guest_exits}
        self._translator = Translator(memory, hooks, self.mmu.fast_read, self.mmu.fast_write,
                                      self.mmu.forget_fast_write, self._code_written)
        # block entries: every page's, and the lookup of the pages whose translation was checked since
        # the last flush (see _entry)
        self._pages: dict[tuple[Context, int, int], dict[int, tuple]] = {}     # (ctx, vpn, ppn) -> {pc: entry}
        self._pages_of: dict[int, set[tuple[Context, int]]] = {}               # ppn -> {(ctx, vpn)}
        self._vblocks: dict[Context, dict[int, tuple]] = {context: {} for context in CONTEXTS.values()}
        self._live: dict[Context, dict[int, dict]] = {context: {} for context in CONTEXTS.values()}
        self._code_changed = False
        self._entering_trap = False
        self._select_context()
        self.reset(0, 0)

    # --- architectural state ----------------------------------------------------

    @property
    def regs(self) -> list[int]:
        """r0..r15 (a live list: the translated code holds it)."""
        return self._regs

    @regs.setter
    def regs(self, values: list[int]) -> None:
        self._regs[:] = [value & M32 for value in values]
        self._regs[0] = 0

    @property
    def cr(self) -> list[int]:
        """Control registers by isa.CR_* number (a live list).  Direct writes
        to status or ptb take effect at the next `run` or after vm_exit."""
        return self._cr

    @cr.setter
    def cr(self, values: list[int]) -> None:
        self._cr[:] = [value & M32 for value in values]

    def reset(self, pc: int, a0: int) -> None:
        """Boot state: kernel mode, IE 0, paging off, every register and
        control register 0 except pc and a0; empty TLB."""
        self._regs[:] = [0] * NUM_REGS
        self._regs[REG_A0] = a0 & M32
        self._cr[:] = [0] * NUM_CRS
        self._cr[CR_STATUS] = STATUS_KM
        self.pc = pc & M32
        self.ticks = 0
        self.state = CpuState.RUNNING
        self.stop_reason: str | None = None
        self._guest = None
        self.mmu.leave_guest()
        self._ptb_loaded = 0
        self.mmu.set_ptb(0)
        self._flush_blocks()
        self._sync()

    def checkpoint(self) -> dict:
        """The architectural state and the counters as JSON values
        (vmm/machine/snapshot.py).  The TLB and the translated blocks are
        caches: not part of it.  Refused (KiteError) in guest mode."""
        if self._guest is not None:
            raise KiteError("cannot checkpoint the CPU in guest mode (docs/isa.md, "
                            "\"Virtualization extension (optional)\")")
        counters = {field.name: getattr(self.counters, field.name) for field in fields(Counters)}
        for name in ("exceptions", "interrupts"):
            counters[name] = {str(key): count for key, count in counters[name].items()}
        return {"regs": list(self._regs), "cr": list(self._cr), "pc": self.pc, "ticks": self.ticks,
                "state": str(self.state), "entering_trap": self._entering_trap, "counters": counters}

    def restore(self, state: dict) -> None:
        """Take `state` (checkpoint()'s, checked by the caller): registers,
        pc, ticks, mode, paging and counters, with an empty TLB and no
        translated block; in host mode (a guest being run is dropped)."""
        self._guest = None
        self.mmu.leave_guest()
        self._regs[:] = state["regs"]
        self._cr[:] = state["cr"]
        self.pc, self.ticks = state["pc"], state["ticks"]
        self.state, self.stop_reason = CpuState(state["state"]), None
        self._entering_trap = state["entering_trap"]
        for name, value in state["counters"].items():
            if name in ("exceptions", "interrupts"):
                value = {int(key): count for key, count in value.items()}
            setattr(self.counters, name, value)
        self._write_ptb(self._cr[CR_PTB])
        self._sync()

    def request_stop(self, reason: str | None = None) -> None:
        """Stop after the current instruction (state STOPPED)."""
        self.state = CpuState.STOPPED
        self.stop_reason = reason

    def write_cr(self, number: int, value: int) -> None:
        """`mtcr` semantics for the VMM: status keeps defined bits, ptb flushes the TLB."""
        if number == CR_STATUS:
            self._write_status(value)
        elif number == CR_PTB:
            self._write_ptb(value)
        else:
            self._cr[number] = value & M32

    def _sync(self) -> None:
        """Pick up status and ptb (after a direct change) and choose the block context."""
        if self._cr[CR_PTB] != self._ptb_loaded:
            self._write_ptb(self._cr[CR_PTB])
        self._select_context()

    def _select_context(self) -> None:
        """The block context and lookup table for the current mode and paging."""
        self._context = CONTEXTS[not self._cr[CR_STATUS] & STATUS_KM, self.mmu.enabled, self.mmu.guest]
        self._current = self._vblocks[self._context]

    # --- the run loop -------------------------------------------------------------

    def run(self, until_tick: int) -> None:
        """Execute while running and ticks < until_tick (see module doc)."""
        start = self.ticks
        self._sync()
        try:
            while self.state is RUNNING and self.ticks < until_tick:
                if self._guest is None:
                    irq = interrupt_to_take(self.irq.pending, self._cr[CR_STATUS] & STATUS_IE)
                    if irq is not None:
                        self.counters.count_interrupt(irq)
                        self._enter_trap(CAUSE_INTERRUPT | irq, self.pc, None)
                        self._sync()
                        continue
                elif self._guest_interrupt():
                    self._sync()
                    continue
                self._run_blocks(until_tick)
        finally:
            self.counters.instructions += self.ticks - start

    def _run_blocks(self, until: int) -> None:
        """Run blocks until one may change the context, a trap, an early
        exit or until_tick; leaves pc and ticks exact.

        The loop follows the successors the blocks return (module doc of
        translate.py): a block entry runs if it fits the ticks left; a
        marker (length BIG) stops here: LOOKUP (fn None) finds or translates
        the block at its pc and, for a chain cell, points the cell at it;
        STOP (fn False) ends the loop at its pc; a block too long for the
        ticks left runs as a single instruction."""
        if self.trace is not None:
            self._run_traced(until)
            return
        blocks, ticks = self._current, self.ticks
        translations, start, pc = 0, ticks, self.pc
        entering, self._entering_trap, self._code_changed = self._entering_trap, False, False
        entry = info = blocks.get(pc) or (None, BIG, 0, pc)
        try:
            while True:
                fn, n, lookups, info = entry
                if n > until - ticks:
                    if type(info) is tuple:       # a looping block's extra rounds, then its successor
                        ticks, translations, entry = ticks + info[0], translations + info[1], info[2]
                        continue
                    pc = info if type(info) is int else info.pc
                    if fn is False or ticks >= until:
                        break
                    entry = blocks.get(pc)
                    if entry is None or entry[1] > until - ticks:
                        entry = self._entry(pc, ticks, until - ticks)
                    if type(info) is Link and blocks.get(pc) is entry:
                        info.cell.cell_contents = entry
                    continue
                entry = fn(ticks, until)
                ticks += n
                translations += lookups
        except BlockExit as done:
            pc = done.pc
            translations += info.block.retired_lookups(done.tick - ticks)
            ticks = done.tick
        except Trap as trap:
            if trap.tick > ticks:
                translations += info.block.retired_lookups(trap.tick - ticks)
            ticks = trap.tick
            self.pc, self.ticks = trap.pc, ticks
            self.counters.translations += translations + trap.lookups
            translations = 0
            self.exit_word = None if trap.fetch else info.block.words[(trap.pc - info.pc) >> 2]
            self._raise(trap, triple=entering and trap.tick == start)
            self.exit_word = None
            pc, ticks = self.pc, self.ticks       # vm_exit may move both
        except Exited as exited:                  # the exit is taken: as after _raise above
            translations += info.block.retired_lookups(exited.tick - ticks) + exited.lookups
            pc, ticks = self.pc, self.ticks
        finally:
            self.pc, self.ticks = pc, ticks
            self.counters.translations += translations
        self._sync()

    def _run_traced(self, until: int) -> None:
        """_run_blocks with the trace on: every instruction is a block of its
        own, translated for the trace (never cached), reported before it runs."""
        pc, ticks, translations, start = self.pc, self.ticks, 0, self.ticks
        entering, self._entering_trap, self._code_changed = self._entering_trap, False, False
        block = None
        try:
            while ticks < until:
                fn, n, lookups, info = self._entry(pc, ticks, until - ticks)
                block = info.block
                nxt = fn(ticks, until)
                ticks += n
                translations += lookups
                pc = nxt[3] if type(nxt[3]) is int else nxt[3].pc
                if block.ends:
                    break
        except BlockExit as done:
            pc = done.pc
            translations += block.prefix[done.tick - ticks]
            ticks = done.tick
        except Trap as trap:
            if trap.tick > ticks:
                translations += block.prefix[trap.tick - ticks]
            ticks = trap.tick
            self.pc, self.ticks = trap.pc, ticks
            self.counters.translations += translations + trap.lookups
            translations = 0
            self.exit_word = None if trap.fetch else block.words[0]
            self._raise(trap, triple=entering and trap.tick == start)
            self.exit_word = None
            pc, ticks = self.pc, self.ticks       # vm_exit may move both
        except Exited as exited:                  # (a trace hook turned the trace off: _exit_in_place)
            translations += block.prefix[exited.tick - ticks] + exited.lookups
            pc, ticks = self.pc, self.ticks
        finally:
            self.pc, self.ticks = pc, ticks
            self.counters.translations += translations
        self._sync()

    def _entry(self, pc: int, ticks: int, budget: int) -> tuple:
        """The block entry (fn, n, lookups, Meta) for `pc`, after its fetch
        translation (raises Trap if that fails).  Full length and in the
        lookup if it fits `budget` and no trace is on, else one instruction
        (traced, never kept).

        Entries are kept per page, (context, virtual page, physical page),
        until that physical page is written.  A flush only empties the
        lookup; the first fetch from a page afterwards (the walk and the
        counts it makes, as ever) puts back every entry of the page at
        once: the same translation of the same code gives the same blocks,
        and every other fetch from that page would hit the TLB."""
        pa = self.fetch_address(pc, ticks, self._context.user)
        context, vpn, ppn = self._context, pc >> PAGE_SHIFT, pa >> PAGE_SHIFT
        if self.trace is not None:
            return self._new_entry(pc, self._translator.block(pc, pa, context, True))
        page = self._pages.get((context, vpn, ppn))
        if page is None:
            page = self._pages[context, vpn, ppn] = {}
            self._pages_of.setdefault(ppn, set()).add((context, vpn))
        live = self._live[context]
        if live.get(vpn) is not page:
            self._forget_page(context, vpn)
            live[vpn] = page
            self._current.update(page)
        entry = page.get(pc)
        if entry is None:
            entry = page[pc] = self._current[pc] = self._new_entry(
                pc, self._translator.block(pc, pa, context, False))
        if entry[1] > budget:
            entry = self._new_entry(pc, self._translator.block(pc, pa, context, True))
        return entry

    def _new_entry(self, pc: int, block: Block) -> tuple:
        """A fresh entry for `block` at `pc`: its function, with every chain
        cell holding the LOOKUP marker of its successor (traced if single)."""
        fn = block.make(self._current, *[None] * len(block.cell_targets))
        for cell, target in zip(fn.__closure__ or (), block.cell_targets):
            cell.cell_contents = (None, BIG, 0, Link(target, cell))
        if self.trace is not None:
            self.trace("insn", pc, block.words[0])
        return (fn, block.n, block.lookups, Meta(pc, block))

    def fetch_address(self, pc: int, ticks: int, user: bool) -> int:
        """The physical address the fetch of the instruction at `pc` reads in
        user or kernel mode; raises Trap (fetch) at tick `ticks` as the CPU
        does (a binary translator fetching guest code asks the same)."""
        lookups = 1 if self.mmu.enabled else 0
        if pc & 3:
            raise Trap(EXC_MISALIGNED, pc, pc, ticks, 0, fetch=True)
        try:
            pa = self.mmu.translate(pc, FETCH, user)
        except Fault as fault:
            raise Trap(fault.cause, fault.badaddr, pc, ticks, lookups, fetch=True) from None
        if not self.memory.contains(pa, 4):
            raise Trap(EXC_BUS_ERROR, pc, pc, ticks, lookups, fetch=True)
        return pa

    # --- traps ------------------------------------------------------------------------

    def _raise(self, trap: Trap, triple: bool) -> None:
        """Deliver the exception `trap` (hypercall: to the VMM, or illegal on
        bare hardware).  `triple`: the first instruction of the trap handler
        raised it (its fetch or its execution), so taking it would only raise
        it again, forever."""
        if self._guest is not None:
            self._guest_trap(trap, triple)
            return
        cause = trap.cause
        if cause == EXIT_HYPERCALL and self.vm_exit is None:
            cause = EXC_ILLEGAL
        if cause != EXIT_HYPERCALL:
            self.counters.count_exception(cause & CAUSE_CODE_MASK)
        if triple and self.vm_exit is None:
            self._enter_trap(cause, trap.pc, trap.badaddr)   # records it for the dump
            self.request_stop(triple_fault_message(cause, trap.pc, trap.badaddr, trap.fetch))
            return
        self._enter_trap(cause, trap.pc, trap.badaddr)

    def _enter_trap(self, cause: int, epc: int, badaddr: int | None) -> None:
        """Trap entry (or the VMM's exit, or a stop when tvec is 0; in guest
        mode the guest's trap entry, or the no-vector exit).  The caller
        re-selects the block context (_sync): run() after an interrupt,
        _run_blocks after the trap, once per exit."""
        if self._guest is not None:
            tvec = enter_trap(self._cr, cause, epc, badaddr)
            if self.trace is not None:
                self.trace("trap", cause, epc, badaddr)
            if tvec == 0:
                self.pc = epc
                self._vm_exit(VMEXIT_NO_VECTOR, cause, gva=badaddr)
                return
            self.pc = tvec
            self._entering_trap = True
            return
        if self.vm_exit is not None:
            self.pc = epc
            if self.trace is not None:
                self.trace("trap", cause, epc, badaddr)
            self.vm_exit(cause, epc, badaddr)
            return
        tvec = enter_trap(self._cr, cause, epc, badaddr)
        if self.trace is not None:
            self.trace("trap", cause, epc, badaddr)
        if tvec == 0:
            self.request_stop(unhandled_trap_message(cause, epc, badaddr))
            return
        self.pc = tvec
        self._entering_trap = True

    # --- slow paths called by translated code -------------------------------------------

    def _load(self, va: int, width: int, signed: bool, rd: int, pc: int, tick: int) -> None:
        """A load the fast table could not serve: translate, read RAM or a
        device, extend, write rd.  Raises Trap, or BlockExit after a device read."""
        pa = self._translate_data(va, READ, pc, tick)
        device = not self.memory.contains(pa, width)
        if device:
            value = self._device_access(pa, width, None, va, pc, tick)
        else:
            value = self.memory.read(pa, width)
        if rd:
            self._regs[rd] = extend(value, width, signed)
        self._leave_if(device, pc, tick)

    def _store(self, va: int, width: int, value: int, pc: int, tick: int, word: int) -> None:
        """A store (instruction `word`) the fast table could not serve.  Raises
        Trap, or BlockExit after a device write or a write to a page holding
        code; under a VMM its page fault is the exit taken in place."""
        try:
            pa = self.mmu.translate(va, WRITE, self._context.user)
        except Fault as fault:
            self._exit_in_place(fault, pc, tick, word)
            return
        value &= (1 << 8 * width) - 1
        device = not self.memory.contains(pa, width)
        if device:
            self._device_access(pa, width, value, va, pc, tick)
        else:
            self.memory.write(pa, width, value)
        self._leave_if(device, pc, tick)

    def _exit_in_place(self, fault: Fault, pc: int, tick: int, word: int) -> None:
        """The page fault `fault` of the store `word` at `pc`, tick `tick`.  In
        host mode with `vm_exit` set and no trace, the VMM's exit taken here,
        inside the block (module doc: exits in place): returns when the VMM
        completed the store quietly and the block goes on, else raises Exited.
        Otherwise raises the Trap."""
        lookups = 2 if self.mmu.enabled else 0
        if self.vm_exit is None or self._guest is not None or self.trace is not None:
            raise Trap(fault.cause, fault.badaddr, pc, tick, lookups)
        status, self.pc, self.ticks, self.exit_word = self._cr[CR_STATUS], pc, tick, word
        self.counters.count_exception(fault.cause & CAUSE_CODE_MASK)
        quiet = self.vm_exit(fault.cause, pc, fault.badaddr)
        self.exit_word = None
        if not (quiet and self.pc == (pc + 4) & M32 and self.ticks == tick + 1 and self.state is RUNNING
                and self._cr[CR_STATUS] == status and self._cr[CR_PTB] == self._ptb_loaded
                and self._guest is None and self.trace is None
                and pc >> PAGE_SHIFT in self._live[self._context] and not self._code_changed
                and interrupt_to_take(self.irq.pending, status & STATUS_IE) is None):
            raise Exited(tick, lookups)

    def _translate_data(self, va: int, access: str, pc: int, tick: int) -> int:
        """The physical address of a data access; a Fault becomes the Trap."""
        try:
            return self.mmu.translate(va, access, self._context.user)
        except Fault as fault:
            raise Trap(fault.cause, fault.badaddr, pc, tick, 2 if self.mmu.enabled else 0) from None

    def _device_access(self, pa: int, width: int, value: int | None, va: int, pc: int,
                       tick: int) -> int:
        """Read (value None) or write a device at the exact tick; bus errors become traps."""
        self.ticks = tick
        try:
            if value is None:
                return self.bus.read(pa, width)
            self.bus.write(pa, width, value)
            return 0
        except BusError:
            raise Trap(EXC_BUS_ERROR, va, pc, tick, 2 if self.mmu.enabled else 0) from None

    def _leave_if(self, device: bool, pc: int, tick: int) -> None:
        """Raise BlockExit after the instruction if it touched a device or code."""
        if device or self._code_changed:
            self._code_changed = False
            raise BlockExit((pc + 4) & M32, tick + 1)

    def _code_written(self, ppn: int) -> None:
        """Physical page `ppn`, holding translated code, was written: drop
        the block entries translated from it."""
        self._code_changed = True
        for context, vpn in self._pages_of.pop(ppn, ()):
            page = self._pages.pop((context, vpn, ppn))
            if self._live[context].get(vpn) is page:
                self._forget_page(context, vpn)

    def _forget_page(self, context: Context, vpn: int) -> None:
        """Take virtual page `vpn`'s entries out of `context`'s lookup (its
        translation is no longer known to hold); chains never leave a page,
        so no entry that stays leads to them."""
        page = self._live[context].pop(vpn, None)
        if page:
            blocks = self._vblocks[context]
            for pc in page:
                del blocks[pc]

    def _flush_blocks(self) -> None:
        """Empty every context's lookup (the entries stay, per page)."""
        for blocks in self._vblocks.values():
            blocks.clear()
        for live in self._live.values():
            live.clear()

    def _write_status(self, value: int) -> None:
        """mtcr status / kernel wrsr (asm.arch.written_status); may change the mode."""
        self._cr[CR_STATUS] = written_status(self._cr[CR_STATUS], value, kernel=True)
        self._sync()

    def _write_ptb(self, value: int) -> None:
        """ptb write: load the MMU and flush the TLB."""
        self._cr[CR_PTB] = self._ptb_loaded = value & M32
        self.mmu.set_ptb(value)
        self._flush_blocks()
        self._select_context()

    def _rfe(self) -> int:
        """rfe (asm.arch.rfe); returns epc."""
        return rfe(self._cr)

    def _halt(self) -> None:
        """halt: the machine stops (the instruction retires)."""
        self.state = CpuState.HALTED

    def _wfi(self) -> None:
        """wfi: wait unless a line is already asserted (IE does not matter;
        in guest mode a virtual line counts too)."""
        if not self.irq.pending and (self._guest is None or not self._guest.virq):
            self.state = CpuState.WAITING

    def flush_tlb(self) -> None:
        """tlbflush: every TLB entry and every virtual-pc lookup."""
        self.mmu.flush()
        self._flush_blocks()

    def invalidate_tlb(self, va: int) -> None:
        """tlbinv: the TLB entry and the block lookups of va's page (in every
        context), in time proportional to them."""
        self.mmu.invalidate(va)
        vpn = (va & M32) >> PAGE_SHIFT
        for context in self._vblocks:
            self._forget_page(context, vpn)

    # --- guest mode (the virtualization extension; module doc) ------------------------------

    def enter_guest(self, vmcs: int) -> None:
        """Enter guest mode with the VMCS at machine address `vmcs`, the
        host state being the CPU's now (pc included): vmenter's operation
        for a VMM in Python, which sets `guest_exit` to hear of each exit.
        Raises ValueError for a VMCS vmenter would refuse."""
        problem = self._vmcs_problem(vmcs)
        if problem is not None:
            raise ValueError(f"vmenter {vmcs:#010x}: " + ("the VMCS is not a page of RAM" if problem == EXC_BUS_ERROR
                                                          else "the VMCS's nptb is not enabled or not in RAM"))
        self._enter(vmcs, self.pc)

    def leave_guest(self) -> None:
        """Leave guest mode now, between two guest instructions, at the host's
        own request (docs/isa.md, VMEXIT_HOST): the guest state and the exit
        information go to the VMCS as at any VM exit and the host state is
        loaded; guest_exit is not called (the host asked).  Nothing in host mode."""
        if self._guest is None:
            return
        hook, self.guest_exit = self.guest_exit, None
        try:
            self.exit_word = None
            self._vm_exit(VMEXIT_HOST, 0)
        finally:
            self.guest_exit = hook

    @property
    def in_guest(self) -> bool:
        """Whether the CPU is in guest mode."""
        return self._guest is not None

    def _vmenter(self, vmcs: int, pc: int, tick: int, lookups: int) -> int:
        """The vmenter instruction at `pc` (translated code): enter, or raise
        the Trap of a refused VMCS; returns the guest pc."""
        problem = self._vmcs_problem(vmcs)
        if problem is not None:
            raise Trap(problem, vmcs if problem == EXC_BUS_ERROR else None, pc, tick, lookups)
        self._enter(vmcs, (pc + 4) & M32)
        return self.pc

    def _vmcs_problem(self, vmcs: int) -> int | None:
        """The exception vmenter raises for `vmcs`, or None (module doc)."""
        if vmcs & PAGE_MASK or not self.memory.contains(vmcs, VMCS_SIZE):
            return EXC_BUS_ERROR
        nptb = self.memory.read(vmcs + VMCS_NPTB, 4)
        if not nptb & NPTB_ENABLE or not self.memory.contains(nptb & PTB_FRAME_MASK, PAGE_SIZE):
            return EXC_ILLEGAL
        return None

    def _enter(self, vmcs: int, host_pc: int) -> None:
        """The one entry (checked VMCS): save the host area, load the guest
        area and the controls, put the MMU on the guest side."""
        read = self.memory.read
        self._store_area(vmcs + VMCS_HOST, host_pc)
        host_ptb = self._cr[CR_PTB]
        self._guest = Guest(vmcs, read(vmcs + VMCS_EXIT_CONTROLS, 4), read(vmcs + VMCS_MTCR_EXITS, 4),
                            read(vmcs + VMCS_VIRQ, 4), host_ptb)
        self._load_area(vmcs + VMCS_GUEST)
        self.mmu.enter_guest(read(vmcs + VMCS_NPTB, 4), self._cr[CR_PTB])
        self._ptb_loaded = self._cr[CR_PTB]
        self.counters.vm.vm_entries += 1
        self._switched()

    def _vm_exit(self, reason: int, qualification: int, access: int = 0, gva: int | None = None) -> None:
        """The one VM exit (the guest pc is self.pc): store the guest area
        and the exit information, load the host area (module doc)."""
        guest, write = self._guest, self.memory.write
        vmcs = guest.vmcs
        self._store_area(vmcs + VMCS_GUEST, self.pc)
        word = self.exit_word
        for offset, value in ((VMCS_EXIT_REASON, reason), (VMCS_EXIT_QUALIFICATION, qualification),
                              (VMCS_EXIT_ACCESS, access), (VMCS_EXIT_WORD, word or 0), (VMCS_EXIT_GVA, gva or 0),
                              (VMCS_EXIT_INFO, (EXIT_INFO_WORD if word is not None else 0)
                               | (EXIT_INFO_GVA if gva is not None else 0))):
            write(vmcs + offset, 4, value & M32)
        self.counters.vm.count_exit(reason)
        self.mmu.exit_guest(self._cr[CR_PTB])
        self._guest = None
        self._load_area(vmcs + VMCS_HOST)
        self._ptb_loaded = guest.host_ptb
        self._switched()
        if self.guest_exit is not None:
            self.guest_exit(reason, qualification & M32)

    def _switched(self) -> None:
        """After an entry or exit: no block lookup survives (they were made
        for the other side's TLB), no trap is being entered."""
        self._flush_blocks()
        self._entering_trap = False
        self._sync()

    def _store_area(self, area: int, pc: int) -> None:
        """Write the registers, `pc` and the control registers to a VMCS area."""
        write = self.memory.write
        for number, value in enumerate(self._regs):
            write(area + VMCS_AREA_REGS + 4 * number, 4, value)
        write(area + VMCS_AREA_PC, 4, pc & M32)
        for number, value in enumerate(self._cr):
            write(area + VMCS_AREA_CR + 4 * number, 4, value)

    def _load_area(self, area: int) -> None:
        """Load the registers, pc and control registers from a VMCS area
        (r0 stays 0, status keeps its defined bits)."""
        read = self.memory.read
        self._regs[:] = [read(area + VMCS_AREA_REGS + 4 * number, 4) for number in range(NUM_REGS)]
        self._regs[0] = 0
        self.pc = read(area + VMCS_AREA_PC, 4)
        self._cr[:] = [read(area + VMCS_AREA_CR + 4 * number, 4) for number in range(NUM_CRS)]
        self._cr[CR_STATUS] &= STATUS_DEFINED

    def _guest_interrupt(self) -> bool:
        """Before a guest instruction: a machine line exits, else a virtual
        line the guest's IE allows is taken by the guest.  Whether either happened."""
        pending = self.irq.pending
        if pending:
            self.exit_word = None
            self._vm_exit(VMEXIT_EXTERNAL, interrupt_to_take(pending, True))
            return True
        irq = interrupt_to_take(self._guest.virq, self._cr[CR_STATUS] & STATUS_IE)
        if irq is None:
            return False
        self.counters.count_interrupt(irq)
        self._enter_trap(CAUSE_INTERRUPT | irq, self.pc, None)
        return True

    def _guest_exits(self, mnemonic: str, cr: int | None) -> int:
        """GX in guest-mode blocks: the Trap cause of the exit the guest's
        instruction makes under the VMCS controls (GUEST_EXIT | reason |
        qualification << 8), or 0 when it runs in the guest."""
        guest = self._guest
        reason = guest_exit_reason(mnemonic, cr, guest.exit_controls, guest.mtcr_exits)
        if reason is None:
            return 0
        qualification = cr if cr is not None else BY_MNEMONIC[mnemonic].opcode if reason == VMEXIT_SENSITIVE else 0
        return GUEST_EXIT | reason | qualification << 8

    def _guest_trap(self, trap: Trap, triple: bool) -> None:
        """An exception in guest mode (self.pc = trap.pc): the exits (hypercall,
        the controlled instructions, nested faults, triple fault), else the
        guest's own trap entry."""
        cause = trap.cause
        if cause == EXIT_HYPERCALL:
            self._vm_exit(VMEXIT_HYPERCALL, 0)
        elif cause & GUEST_EXIT:
            reason = cause & 0xFF
            if reason == VMEXIT_NESTED_FAULT:
                gpa, access = self.mmu.nested_fault
                self._vm_exit(reason, gpa, access, gva=trap.badaddr)
            else:
                self._vm_exit(reason, (cause >> 8) & 0xFF)
        else:
            self.counters.count_exception(cause & CAUSE_CODE_MASK)
            if triple:
                self._vm_exit(VMEXIT_TRIPLE_FAULT, cause, gva=trap.badaddr)
            else:
                self._enter_trap(cause, trap.pc, trap.badaddr)

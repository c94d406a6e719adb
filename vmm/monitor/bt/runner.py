"""The VMM side of binary translation: one BinaryTranslator per --cpu bt VM.

While the guest is in virtual kernel mode the machine runs only translated
code; in virtual user mode it runs the guest's own code, as under
trap-and-emulate.  Between an exit and the next entry the guest is in the
state every monitor handler expects (guest pc in cpu.pc, the guest's
registers, vm.vcpu current), exactly as for a trap-and-emulate VM:

    enter   (Monitor._run_current, virtual kernel mode)   the machine fetch
            of the guest pc (the shadow's hidden faults and A bits, a fetch
            fault delivered as on bare) -> the block read from that frame,
            translated now if the cache has none; vm.vcpu -> the virtual CPU
            page; cpu.pc -> the block's word for the guest pc
    leave   (first thing in Monitor.exit, while translated code runs)   the
            exit's TC address -> its Point: the borrowed register back, the
            virtual CPU page -> vm.vcpu, cpu.pc -> the guest pc, the exact
            overhead (vm.tick_offset); then the monitor dispatches the exit
            as any other (epc the guest pc), or, for a callout word, this
            module's handler of that callout (`exit_as`)

Exact virtual time: vm.tick_offset is the overhead instructions the VM's
translated code has run, so that its guest instruction count and every virtual
device see only the guest's own instructions (translator.py module doc; the
monitor subtracts it).  A callout, like an emulated instruction, retires the
guest's instruction with Monitor.complete (one tick) or not at all.

Adaptive translation (Adams and Agesen, ASPLOS 2006, section 3.3): a store that
traps ADAPT_AFTER times as a traced page-table write is retranslated as a
ptwrite callout, which hands the write to the shadow pager without the trap;
one that then makes UNADAPT_AFTER ordinary stores in a row (a memset that
zeroed a page table and now zeroes a data page) goes back to a checked store.
"""

from __future__ import annotations

import struct
from collections import Counter
from functools import partial

from asm.arch import Access, written_status
from asm.isa import (CAUSE_CODE_MASK, CAUSE_ERRCODE_SHIFT, CR_PTB, CR_STATUS, EXC_MISALIGNED,
                     EXC_PAGE_FAULT, LOAD_WIDTHS, PAGE_SHIFT, PAGE_SIZE, PF_FETCH, PF_PRESENT,
                     PF_USER, PF_WRITE, PTE_A, PTE_D, PTE_P, PTE_U, PTE_W, STATUS_IE, STATUS_PRIVILEGED, STATUS_UF,
                     STORE_WIDTHS, decode)
from vmm.machine.cpu import EXIT_HYPERCALL
from vmm.machine.mmu import Fault
from vmm.machine.translate import Trap
from vmm.monitor import emulate
from vmm.monitor.bt.cache import TranslationCache
from vmm.monitor.bt.layout import (TC_PAGES, VCPU_COUNT, VCPU_CR, VCPU_PENDING,
                                   WINDOW_PDX, in_window)
from vmm.monitor.bt.translator import translate
from vmm.monitor.guestwalk import GuestTables, Translation
from vmm.monitor.physmap import OWNER_VMM
from vmm.monitor.shadow import FaultKind

ADAPT_AFTER = 4                  # traced page-table writes from one store before it is retranslated
UNADAPT_AFTER = 16               # ordinary stores in a row from an adapted one before it goes back
WORD = 0xFFFFFFFF
NUM_CRS = 8
COUNTER_KEYS = (
    "bt_blocks_translated",        # blocks placed in the translation cache
    "bt_instructions_translated",  # guest instructions in them
    "bt_tc_bytes",                 # bytes of the cache in use now
    "bt_tc_hits",                  # entries that found their translation in the cache
    "bt_tc_flushes",               # times the full cache was emptied
    "bt_chains",                   # links patched to jump straight to another block
    "bt_invalidations",            # source frames written, their blocks killed
    "bt_adaptive_retranslations",  # stores retranslated as ptwrite callouts
    "bt_callouts",                 # every callout; by kind in bt_callout_<kind>
    "bt_overhead_instructions",    # instructions the translated code ran beyond the guest's own
)


class BinaryTranslator:
    """Binary translation for `vm` (module doc), on frames from `frames`; its
    figures go into `counters` (the VM's paging counters)."""

    def __init__(self, vm, machine, frames, counters: dict):
        self.vm, self.machine, self.frames = vm, machine, frames
        self.memory = machine.memory
        self.counters = counters
        counters.update(dict.fromkeys(COUNTER_KEYS, 0))
        mfns = frames.allocate(OWNER_VMM, TC_PAGES + 2)
        self._mfns = mfns
        self.vcpu_ma = mfns[TC_PAGES] << PAGE_SHIFT
        for mfn in mfns:
            self.memory.write_bytes(mfn << PAGE_SHIFT, bytes(PAGE_SIZE))
        table = mfns[TC_PAGES + 1] << PAGE_SHIFT
        for index, mfn in enumerate(mfns[:TC_PAGES + 1]):
            writable = PTE_W | PTE_D if index == TC_PAGES else 0
            self.memory.write(table + 4 * (1024 - TC_PAGES - 1 + index), 4,
                              (mfn << PAGE_SHIFT) | PTE_P | PTE_U | PTE_A | writable)
        self.window_entry = (WINDOW_PDX, table | PTE_P | PTE_W | PTE_U | PTE_A)
        self.cache = TranslationCache(self.memory, mfns[:TC_PAGES], self._watch_code, counters)
        self.memory.code_write_listeners.append(self.cache.frame_written)
        self.running = False           # the machine is executing translated code
        self._base = 0                 # vm.tick_offset - the adjust of the entry word
        self.traced: Counter = Counter()     # guest pc -> its traced page-table writes that trapped
        self.plain: Counter = Counter()      # adapted guest pc -> its ordinary stores in a row
        self.adaptive: set[int] = set()
        self.precise: set[int] = set()       # guest pcs whose loads and stores share no check (_window)
        self.exit_as: tuple = ()
        self._exit_address = 0         # the TC address of the exit being handled
        self._left = None              # (TC address, its Point, the machine's registers) at the last exit

    # --- entering --------------------------------------------------------------------

    def enter(self, vm, monitor) -> None:
        """Run the guest's kernel code at cpu.pc from its translation (module
        doc); a fetch that faults is delivered instead (Monitor.exit)."""
        cpu = monitor.cpu
        address = self._where_left(cpu)
        if address is None:
            address = self._translation(monitor, cpu.pc)
            if address is None:
                return
            self._base = vm.tick_offset - self.cache.points[address].adjust
            self.memory.write(self.vcpu_ma + VCPU_COUNT, 4, 0)
        self._sync_out(vm, cpu)
        cpu.pc = address
        self.running = True

    def _where_left(self, cpu) -> int | None:
        """The TC address the last exit left, if the guest goes on where it
        stopped (the VMM changed nothing of its course: a machine interrupt
        that delivered nothing, a hidden fault): translated code resumes
        there, its borrowed register and the count as they were.  An exit
        put back at the guest pc would have to redo the words before it, and
        an interrupt due in fewer instructions than they are would never let
        it past."""
        left, self._left = self._left, None
        if (left is None or cpu.pc != left[1].guest_pc or self.cache.points.get(left[0]) is not left[1]
                or self.cache.owner(left[0]).kernel != self.vm.vcpu.kernel):
            return None
        cpu.regs = left[2]
        return left[0]

    def _translation(self, monitor, pc: int) -> int | None:
        """The TC address of a segment starting at guest pc `pc` as the CPU
        would fetch it now (a new block if the cache has none: translated
        code is entered only at a segment's start, translator._access), or
        None if that fetch faults: the fault is delivered (Monitor.exit)."""
        fetched = self._fetch(monitor.cpu, pc)
        if type(fetched) is tuple:
            monitor.cpu.exit_word = None
            monitor.exit(*fetched)
            return None
        kernel = self.vm.vcpu.kernel
        address = self.cache.entry(pc, fetched, kernel)
        if address is None:
            return self._install(pc, fetched, kernel).address
        self.counters["bt_tc_hits"] += 1
        return address

    def _install(self, pc: int, mfn: int, kernel: bool):
        """Translate the block at guest pc `pc` (frame `mfn`, virtual mode
        `kernel`) into the cache; the cache's Block."""
        translation = translate(pc, partial(self._read, mfn), frozenset(self.adaptive), kernel, frozenset(self.precise))
        return self.cache.install(translation, mfn, kernel)

    def _fetch(self, cpu, pc: int):
        """The machine frame the CPU would fetch `pc` from in the guest's
        virtual kernel mode (machine user mode), or the exit (cause, epc,
        badaddr) its fetch raises (CPU.fetch_address); an aligned pc in the
        VMM window is the guest's not-present fault."""
        if not pc & 3 and in_window(pc):
            return EXC_PAGE_FAULT | (PF_USER | PF_FETCH) << CAUSE_ERRCODE_SHIFT, pc, pc
        try:
            return cpu.fetch_address(pc, cpu.ticks, True) >> PAGE_SHIFT
        except Trap as trap:
            return trap.cause, pc, trap.badaddr

    def _read(self, mfn: int, gva: int) -> int:
        """The guest's instruction word at `gva`, on machine frame `mfn`."""
        return self.memory.read((mfn << PAGE_SHIFT) | (gva & (PAGE_SIZE - 1)), 4)

    def _watch_code(self, mfn: int) -> None:
        """Make every write to source frame `mfn` reach the cache (memory.py code pages)."""
        if mfn not in self.memory.code_pages:
            self.memory.code_pages.add(mfn)
            self.machine.cpu.mmu.forget_fast_write(mfn)

    def _sync_out(self, vm, cpu) -> None:
        """vm.vcpu (status whole) and the VM's pending lines -> the virtual CPU page."""
        crs = list(vm.vcpu.cr)
        crs[CR_STATUS] = vm.vcpu.status(cpu.cr[CR_STATUS])
        self.memory.write_bytes(self.vcpu_ma + VCPU_CR, struct.pack(f"<{len(crs)}I", *crs))
        self.memory.write(self.vcpu_ma + VCPU_PENDING, 4, STATUS_IE if vm.irq.pending else 0)

    # --- leaving ---------------------------------------------------------------------

    def leave(self, monitor, vm, cause: int, epc: int, badaddr: int | None) -> None:
        """An exit while translated code ran: the guest's state back (module
        doc); `exit_as` the exit in the guest's terms (cause, epc, badaddr,
        dispatch or None)."""
        cpu = monitor.cpu
        self.exit_as = (cause, epc, badaddr, _nothing)
        self.running, self._exit_address = False, epc
        point = self.cache.points[epc]
        self._settle_at(point)
        is_callout = cause == EXIT_HYPERCALL and point.callout is not None
        self._left = None if is_callout else (epc, point, list(cpu.regs))
        for register, offset in point.restore:
            cpu.regs[register] = self.memory.read(self.vcpu_ma + offset, 4)
        if point.link is not None:
            cpu.regs[point.link[0]] = point.link[1]
        self._sync_in(vm, cpu)
        cpu.pc = point.guest_pc
        if is_callout:
            self.exit_as = (cause, point.guest_pc, badaddr, partial(self._callout, monitor, point.callout))
        elif cause & CAUSE_CODE_MASK == EXC_PAGE_FAULT and not cause >> 31:
            self.exit_as = (cause, point.guest_pc, badaddr, partial(self._page_fault, monitor))
        else:
            self.exit_as = (cause, point.guest_pc, badaddr, None)

    def settle(self, cpu) -> None:
        """vm.tick_offset exact now, while translated code runs (between two
        stretches of the machine: the monitor accounting)."""
        point = self.cache.points.get(cpu.pc) if self.running else None
        if point is not None:
            self._settle_at(point)

    def _settle_at(self, point) -> None:
        """vm.tick_offset for an exit at `point` (translator.py: count + adjust)."""
        count = self.memory.read(self.vcpu_ma + VCPU_COUNT, 4)
        self.vm.tick_offset = self._base + count + point.adjust
        self.counters["bt_overhead_instructions"] = self.vm.tick_offset

    def _sync_in(self, vm, cpu) -> None:
        """The virtual CPU page -> vm.vcpu; its user flags -> the machine status."""
        crs = struct.unpack(f"<{NUM_CRS}I", self.memory.read_bytes(self.vcpu_ma + VCPU_CR, 4 * NUM_CRS))
        status = crs[CR_STATUS]
        for number in range(1, NUM_CRS):
            if number != CR_PTB:
                vm.vcpu.cr[number] = crs[number]
        vm.vcpu.cr[CR_STATUS] = status & STATUS_PRIVILEGED
        machine = cpu.cr[CR_STATUS]
        if (machine ^ status) & STATUS_UF:
            cpu.write_cr(CR_STATUS, (machine & ~STATUS_UF) | (status & STATUS_UF))

    # --- callouts --------------------------------------------------------------------

    def _callout(self, monitor, callout, vm, cause, epc, badaddr) -> None:
        """A callout word was reached: its handler (CALLOUTS)."""
        self.counters["bt_callouts"] += 1
        key = f"bt_callout_{callout.kind}"
        self.counters[key] = self.counters.get(key, 0) + 1
        monitor.cpu.exit_word = callout.word or None
        exits = Counter(vm.exits)
        CALLOUTS[callout.kind](self, monitor, vm, callout)
        vm.exits.clear()                # a callout is no VM exit, whatever the emulator it used counted
        vm.exits.update(exits)

    def _privileged(self, monitor, vm, callout) -> None:
        """rfe, mtcr ptb, tlbinv, tlbflush, halt, wfi, vmenter: emulated as
        under trap-and-emulate (emulate.privileged, the guest's own word);
        after a TLB flush, the links out of their page are checked (cache.unchain_far)."""
        decoded = decode(callout.word)
        page = monitor.cpu.regs[decoded.operands["rs1"]] >> PAGE_SHIFT if decoded.insn.mnemonic == "tlbinv" else None
        emulate.privileged(monitor, vm, callout.guest_pc)
        if decoded.insn.mnemonic in ("tlbflush", "tlbinv") or decoded.operands.get("cr") == CR_PTB:
            self.cache.unchain_far(page, self._fetch_finds)

    def _fetch_finds(self, block) -> bool:
        """Whether the guest's tables (now) map `block`'s guest page to the
        frame it was read from, for a fetch in its virtual mode, with the A
        bits set: what a fetch there after a TLB flush would find, changing
        nothing (cache.unchain_far)."""
        page = block.translation.guest_pc & ~(PAGE_SIZE - 1)
        if in_window(page):
            return False
        walk = GuestTables(self.memory, self.vm.physmap, self.vm.vcpu.cr[CR_PTB]).walk(
            page, Access.FETCH, user=not block.kernel, set_bits=False)
        if not isinstance(walk, Translation):
            return False
        ma = self.vm.physmap.gpa_to_ma(walk.gpa)
        return ma is not None and ma >> PAGE_SHIFT == block.mfn and (walk.pte is None or walk.pde & walk.pte & PTE_A)

    def _wrsr(self, monitor, vm, callout) -> None:
        """wrsr / mtcr status that clears KM: the virtual status write, then
        the guest goes on in virtual user mode; wrsr in virtual user mode:
        only the user flags (asm.arch.written_status)."""
        ops = decode(callout.word).operands
        value = monitor.cpu.regs[ops["rs1"]]
        if vm.vcpu.kernel:
            monitor.load_mode(vm, user_flags=vm.vcpu.write_status(value))
        else:
            machine = monitor.cpu.cr[CR_STATUS]
            monitor.cpu.write_cr(CR_STATUS, written_status(machine, value, kernel=False))
        monitor.complete(vm, (callout.guest_pc + 4) & WORD)

    def translates(self, vcpu) -> bool:
        """Whether the guest's code runs translated now: always in virtual
        kernel mode; in virtual user mode while its virtual IE is 0, where
        running it directly would show the VMM's IE to its rdsr (accounts of
        VMware's monitor give the same rule)."""
        return vcpu.kernel or not vcpu.interrupts_enabled

    def _go_on(self, monitor, vm, callout) -> None:
        """deliver: nothing to emulate; the guest goes on at the Point's pc
        (an interrupt the guest unmasked is injected at resume)."""

    def _chain(self, monitor, vm, callout) -> None:
        """A link not patched yet: the guest goes on at its target; the link
        is patched to the target's segment (translated now if need be)."""
        block = self.cache.owner(self._exit_address)
        mfn = self._entry_for(monitor, block, callout.target)
        if mfn is not None:
            self.cache.link(block, callout.site, mfn)

    def _entry_for(self, monitor, block, target: int) -> int | None:
        """The frame of guest pc `target` for a link or cache of live `block`
        to go to, its segment translated if need be; None if none should (the
        block died, or the fetch of the target faults: the guest's next entry
        delivers that)."""
        if block is None or not block.alive:
            return None
        fetched = self._fetch(monitor.cpu, target)
        if type(fetched) is tuple:
            return None
        if self.cache.entry(target, fetched, block.kernel) is None:
            self._install(target, fetched, block.kernel)
        return fetched if block.alive else None

    def _jalr(self, monitor, vm, callout) -> None:
        """A jalr's target cache missed: to the guest target (the bare
        machine's misaligned-target exception, rd unchanged), the link the
        guest's return address; the cache now predicts this target."""
        ops = decode(callout.word).operands
        target = (monitor.cpu.regs[ops["rs1"]] + ops["imm"]) & WORD
        if target & 3:
            monitor.dispatch(vm, EXC_MISALIGNED, callout.guest_pc, target)     # reflected, as any exception
            return
        emulate.set_register(monitor, ops["rd"], callout.guest_pc + 4)
        monitor.complete(vm, target)
        block = self.cache.owner(self._exit_address)
        mfn = self._entry_for(monitor, block, target)
        if mfn is not None:
            self.cache.predict(block, target, mfn)

    def _window(self, monitor, vm, callout) -> None:
        """A load or store whose check failed: if its address is in the VMM
        window, what the bare machine gives an access where nothing is mapped
        (misaligned first, then the shadow's rule for the window: shadow.py);
        if not, the check was one shared with a later access of lower offset
        (translator._access): the instruction is translated again with a
        check of its own (`precise`) and the guest goes on at it."""
        decoded = decode(callout.word)
        address = emulate.effective_address(monitor.cpu.regs, decoded)
        if self._misaligned(monitor, vm, callout, decoded, address):
            return
        if not in_window(address):
            self.precise.add(callout.guest_pc)
            self.cache.retire(callout.guest_pc)
            return
        store = decoded.insn.mnemonic in STORE_WIDTHS
        monitor.page_fault(vm, EXC_PAGE_FAULT | (PF_USER | (PF_WRITE if store else 0)) << CAUSE_ERRCODE_SHIFT,
                           callout.guest_pc, address)

    def _misaligned(self, monitor, vm, callout, decoded, address: int) -> bool:
        """Reflect the misaligned-access exception if `address` does not suit the access."""
        mnemonic = decoded.insn.mnemonic
        width = STORE_WIDTHS.get(mnemonic) or LOAD_WIDTHS[mnemonic][0]
        if address % width:
            monitor.dispatch(vm, EXC_MISALIGNED, callout.guest_pc, address)    # reflected, as any exception
            return True
        return False

    def _ptwrite(self, monitor, vm, callout) -> None:
        """An adaptively retranslated store: done here through the machine's
        MMU if the shadow lets it through (an ordinary store: after
        UNADAPT_AFTER of them in a row it goes back to a checked store), else
        classified by the shadow pager as the trap would have been, without
        the trap: a traced page-table write is emulated."""
        decoded = decode(callout.word)
        address = emulate.effective_address(monitor.cpu.regs, decoded)
        if self._misaligned(monitor, vm, callout, decoded, address):
            return
        if in_window(address):               # the store's own window check, which the callout replaced
            self._window(monitor, vm, callout)
            return
        if self._plain_store(monitor, vm, callout, decoded, address):
            self.plain[callout.guest_pc] += 1
            if self.plain[callout.guest_pc] >= UNADAPT_AFTER:
                self._unadapt(callout.guest_pc)
            return
        self.plain[callout.guest_pc] = 0
        outcome = vm.mode.page_fault(vm.vcpu, address, True, False, PF_PRESENT | PF_WRITE | PF_USER)
        if outcome.kind is FaultKind.TRACED_WRITE:
            emulate.traced_write(monitor, vm, callout.guest_pc, outcome.gpa)
        elif outcome.kind is not FaultKind.HIDDEN:
            monitor.fault_outcome(vm, outcome, callout.guest_pc, address)
        elif not self._plain_store(monitor, vm, callout, decoded, address):
            self._unadapt(callout.guest_pc)         # the shadow mapped it, yet the MMU refuses: let the trap say

    def _plain_store(self, monitor, vm, callout, decoded, address: int) -> bool:
        """Do the store through the machine's MMU, as the store instruction
        would, and complete it; False if the MMU refuses it (a fault).
        `address` is outside the VMM window (the caller checked)."""
        assert not in_window(address)
        try:
            pa = monitor.cpu.mmu.translate(address, Access.WRITE, True)
        except Fault:
            return False
        width = STORE_WIDTHS[decoded.insn.mnemonic]
        self.memory.write(pa, width, monitor.cpu.regs[decoded.operands["rs2"]] & ((1 << 8 * width) - 1))
        monitor.complete(vm, callout.guest_pc + 4)
        return True

    def _page_fault(self, monitor, vm, cause, epc, badaddr) -> None:
        """A page fault of a translated load or store, dispatched as any; a
        store that keeps trapping as a traced page-table write is adapted."""
        before = vm.exits["page-table write"]
        monitor.dispatch(vm, cause, epc, badaddr)
        if vm.exits["page-table write"] > before:
            self.traced[epc] += 1
            if self.traced[epc] == ADAPT_AFTER:
                self.adaptive.add(epc)
                self._retranslate(epc)
                self.counters["bt_adaptive_retranslations"] += 1

    def _unadapt(self, pc: int) -> None:
        """The ptwrite callout at `pc` could not do its store: back to a checked store."""
        self.adaptive.discard(pc)
        self.traced[pc] = self.plain[pc] = 0
        self._retranslate(pc)

    def _retranslate(self, pc: int) -> None:
        """Kill every block holding guest pc `pc`: its next entry translates it anew."""
        self.cache.retire(pc)

    # --- the end ------------------------------------------------------------------------

    def teardown(self) -> None:
        """Give the window's frames back."""
        self.memory.code_write_listeners.remove(self.cache.frame_written)
        self.frames.release(OWNER_VMM, self._mfns)


def _nothing(vm, cause, epc, badaddr) -> None:
    """The dispatch of an exit that could not be mapped (the VM was stopped)."""


CALLOUTS = {"privileged": BinaryTranslator._privileged, "wrsr": BinaryTranslator._wrsr,
            "deliver": BinaryTranslator._go_on, "chain": BinaryTranslator._chain, "jalr": BinaryTranslator._jalr,
            "window": BinaryTranslator._window, "ptwrite": BinaryTranslator._ptwrite}

"""The three ways the VMM virtualizes a guest's memory, behind one interface.

    ShadowMode  (--paging shadow)  unmodified guest: its V→P tables are walked
                in software; the MMU runs on V→M shadow tables (shadow.py)
    DirectMode  (--paging direct)  paravirtual guest: its tables hold machine
                frames and the MMU walks them; every update is validated (direct.py)
    NestedMode  (--paging nested)  unmodified guest in the machine's guest mode:
                the MMU walks its V→P tables and the VMM's P→M nested tables
                (nested.py; the run in guest mode: guestmode.py)

The monitor asks each mode the same questions (the PagingMode protocol):
which machine ptb to load for the guest's current base and virtual mode, what
a machine page fault means, and where a guest-virtual address lives in machine
memory (for fetching the instruction to emulate and for hypercall buffers).
Both answers to the last question come from the guest's own view, never from
the machine TLB.  A new way to virtualize memory is a new class beside these
two, registered in MODES.
"""

from __future__ import annotations

from typing import Protocol

from asm.arch import Access
from asm.isa import CR_PTB, MMIO_BASE, PAGE_MASK, PAGE_SHIFT, PF_USER
from vmm.monitor.direct import TYPE_L1, TYPE_L2, DirectPaging, ptb_value
from vmm.monitor.guestwalk import GuestTables, Translation
from vmm.monitor.nested import NestedMode
from vmm.monitor.physmap import GPA, GVA, MA, GuestPhysMap, MachineFrames
from vmm.monitor.shadow import FaultKind, FaultOutcome, ShadowPaging
from vmm.monitor.vcpu import VirtualCPU


class PagingMode(Protocol):
    """What the monitor asks of a way of virtualizing one VM's memory."""

    name: str
    memory: object                   # the machine's PhysicalMemory
    counters: dict[str, int]         # the mode's own figures (docs/vmm.md "Figures")

    def machine_ptb(self, vcpu: VirtualCPU) -> int:
        """The machine ptb for the guest's current base and virtual mode."""

    def write_ptb(self, vcpu: VirtualCPU, value: int) -> bool:
        """The guest's mtcr ptb; False if this mode refuses it (reflected)."""

    def flush(self) -> None:
        """The guest's tlbflush."""

    def invlpg(self, gva: GVA) -> None:
        """The guest's tlbinv of one page."""

    def page_fault(self, vcpu: VirtualCPU, gva: GVA, write: bool, fetch: bool, error_code: int) -> FaultOutcome:
        """What a machine page fault of the guest means."""

    def guest_address(self, vcpu: VirtualCPU, gva: GVA, access: Access) -> MA | None:
        """Where `gva` is in machine memory as the guest itself may access it."""

    def guest_written(self, ma: MA, length: int) -> None:
        """The VMM wrote guest memory for the guest: keep the mode consistent."""

    def dma_allowed(self, ma: MA) -> bool:
        """Whether a device of the VM may read or write the frame of `ma`,
        one of the VM's RAM frames (vmm/monitor/vdisk.py)."""

    def teardown(self) -> None:
        """Give back every table; check the mode's accounting."""


class ShadowMode:
    """Indirection: shadow page tables kept consistent by memory tracing."""

    name = "shadow"

    def __init__(self, memory, frames: MachineFrames, physmap: GuestPhysMap, vm_id: int, cpu, config):
        self.memory, self.physmap = memory, physmap
        self.shadow = ShadowPaging(memory, frames, physmap, cpu.flush_tlb, cpu.invalidate_tlb,
                                   options=config.shadow)
        self.counters = self.shadow.counters
        self.translated = None       # --cpu bt: whether the guest's code runs translated (bt/runner.py)

    def machine_ptb(self, vcpu: VirtualCPU) -> int:
        """The shadow root for the guest's base and virtual mode (cached per
        both), with the VMM window while the guest's code runs translated."""
        window = self.translated is not None and self.translated(vcpu)
        return self.shadow.activate(vcpu.cr[CR_PTB], vcpu.kernel, window)

    def write_ptb(self, vcpu: VirtualCPU, value: int) -> bool:
        """mtcr ptb: the guest may switch its own tables (which, as on the bare
        machine, ends every stale translation: out-of-sync tables resync); the
        caller reloads the root."""
        self.shadow.resync_all()
        vcpu.cr[CR_PTB] = value
        return True

    def flush(self) -> None:
        self.shadow.flush()

    def invlpg(self, gva: GVA) -> None:
        self.shadow.invlpg(gva)

    def page_fault(self, vcpu: VirtualCPU, gva: GVA, write: bool, fetch: bool, error_code: int) -> FaultOutcome:
        """Classify the fault by the guest's own tables (hidden, true, traced, MMIO)."""
        return self.shadow.page_fault(gva, write, fetch, vcpu.kernel)

    def emulate_pt_write(self, gpa: GPA, width: int, value: int) -> None:
        """A traced guest store (FaultKind.TRACED_WRITE), done through the shadow."""
        self.shadow.emulate_pt_write(gpa, width, value)

    def guest_address(self, vcpu: VirtualCPU, gva: GVA, access: Access) -> MA | None:
        """The machine address of `gva` as the guest's own tables (and the p2m)
        map it for `access` in the current virtual mode, or None.  Sets no A/D bits."""
        walk = GuestTables(self.memory, self.physmap, vcpu.cr[CR_PTB]).walk(
            gva, access, user=not vcpu.kernel, set_bits=False)
        if not isinstance(walk, Translation):
            return None
        return self.physmap.gpa_to_ma(walk.gpa)

    def guest_written(self, ma: MA, length: int) -> None:
        """The VMM wrote guest memory at machine address `ma` for the guest
        (not through the guest's instructions): keep the shadow consistent."""
        gpa = (self.physmap.gfn(ma >> PAGE_SHIFT) << PAGE_SHIFT) | (ma & PAGE_MASK)
        self.shadow.guest_memory_written(gpa, length)

    def dma_allowed(self, ma: MA) -> bool:
        """Any frame of the VM: a DMA write into a guest page table is
        reported by guest_written, as an emulated store would be."""
        return True

    def teardown(self) -> None:
        self.shadow.teardown()


TABLE_TYPES = (TYPE_L1, TYPE_L2)


class OwnedFrames:
    """GuestPhysMap's lookup interface over machine addresses, for walking a
    direct-mode guest's tables (which hold machine frames): a frame is
    reachable only if `vm_id` owns it."""

    def __init__(self, frames: MachineFrames, vm_id: int):
        self.frames, self.vm_id = frames, vm_id

    def mfn(self, frame: int) -> int | None:
        return frame if self.frames.owner(frame) == self.vm_id else None

    def gpa_to_ma(self, ma: int) -> int | None:
        return ma if self.mfn(ma >> PAGE_SHIFT) is not None else None


class DirectMode:
    """Direct mapping: the guest's validated tables are the MMU's tables."""

    name = "direct"

    def __init__(self, memory, frames: MachineFrames, physmap: GuestPhysMap, vm_id: int, cpu, config):
        self.memory = memory
        self.owned = OwnedFrames(frames, vm_id)
        self.direct = DirectPaging(memory, frames, physmap, vm_id, cpu.flush_tlb, cpu.invalidate_tlb)
        self.counters = self.direct.counters

    def machine_ptb(self, vcpu: VirtualCPU) -> int:
        """The guest's kernel root in virtual kernel mode, its user root in
        virtual user mode (0, paging off, never happens after boot: the VMM
        sets the bootstrap base before the guest runs)."""
        base = self.direct.kernel_base if vcpu.kernel else self.direct.user_base
        return 0 if base is None else ptb_value(base)

    def write_ptb(self, vcpu: VirtualCPU, value: int) -> bool:
        """mtcr ptb is refused in direct mode: set_base is the only way."""
        return False

    def flush(self) -> None:
        self.direct.tlb_flush()

    def invlpg(self, gva: GVA) -> None:
        self.direct.invlpg(gva)

    def page_fault(self, vcpu: VirtualCPU, gva: GVA, write: bool, fetch: bool, error_code: int) -> FaultOutcome:
        """The guest's own fault (its tables are the MMU's), with the U bit
        rewritten since the machine saw every access as a user access; except
        a load or store at a device address its tables leave unmapped, which
        is the device (a PV guest reaches devices at their physical addresses
        and can never map them)."""
        if gva >= MMIO_BASE and not fetch and self.guest_address(vcpu, gva, Access.READ) is None:
            return FaultOutcome(FaultKind.MMIO, gpa=gva)
        code = (error_code & ~PF_USER) | (0 if vcpu.kernel else PF_USER)
        return FaultOutcome(FaultKind.TRUE, code)

    def guest_address(self, vcpu: VirtualCPU, gva: GVA, access: Access) -> MA | None:
        """The machine address of `gva` through the current root's tables, or
        None (the tables may only lead to this VM's frames).  Never a page
        table for a write: the VMM must not write one for the guest, whatever
        a guest's mapping says."""
        return self._address(self.machine_ptb(vcpu), gva, access)

    def kernel_address(self, gva: GVA, access: Access) -> MA | None:
        """guest_address through the guest's kernel root, whatever the
        current virtual mode (a device's view of a kernel buffer)."""
        base = self.direct.kernel_base
        return None if base is None else self._address(ptb_value(base), gva, access)

    def _address(self, ptb: int, gva: GVA, access: Access) -> MA | None:
        """guest_address through the root `ptb`."""
        walk = GuestTables(self.memory, self.owned, ptb).walk(gva, access, user=False, set_bits=False)
        if not isinstance(walk, Translation):
            return None
        ma = self.owned.gpa_to_ma(walk.gpa)
        if ma is not None and access is Access.WRITE and self.direct.frame_info(ma >> PAGE_SHIFT).type in TABLE_TYPES:
            return None
        return ma

    def guest_written(self, ma: MA, length: int) -> None:
        """The VMM wrote guest memory for the guest through a writable guest
        mapping, which validation guarantees is never a page table: nothing to do."""

    def dma_allowed(self, ma: MA) -> bool:
        """Never a frame validated as a page table (pinned, or typed by a
        reference): a device writing one would bypass validation, and
        reading one is not a device's business either."""
        info = self.direct.frame_info(ma >> PAGE_SHIFT)
        return info is not None and info.type not in TABLE_TYPES

    def teardown(self) -> None:
        self.direct.teardown()


MODES: dict[str, type] = {"shadow": ShadowMode, "direct": DirectMode,   # --paging NAME -> its class
                          "nested": NestedMode}

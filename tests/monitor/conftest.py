"""Shared fixtures for the monitor's tests (other engineers: only ADD fixtures here).

- `physical_memory(size)`: a PhysicalMemory (vmm/machine/memory.py).
- `guest_vm(...)`: a VM's memory world: machine memory, MachineFrames with a
  neighbour VM, and guest RAM behind a scrambled p2m, plus guest table builders.
- `shadow_driver(...)`: ShadowPaging driven the way the VMM drives it, over a
  model of the machine's MMU and TLB that walks the SHADOW tables in machine
  memory (MachineModel), or over the machine's real MMU (MachineMMU).
"""

from __future__ import annotations

import pytest

from asm.arch import Access
from asm.isa import PAGE_SHIFT, PAGE_SIZE, PDX_SHIFT, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, PTX_SHIFT
from vmm.machine.memory import PhysicalMemory
from vmm.monitor.physmap import GuestPhysMap, MachineFrames
from vmm.monitor.shadow import BASIC, FaultKind, ShadowPaging

VM_ID = 1
NEIGHBOUR_VM = 2
KERNBASE = 0xC0000000          # the test guests map all their RAM here, kernel only, writable


@pytest.fixture
def physical_memory():
    """Factory: physical_memory(size) -> PhysicalMemory."""
    return PhysicalMemory


class GuestVM:
    """Machine memory and frames with one VM (VM_ID) of `guest_frames` frames
    whose p2m is reversed (gpa never equals ma), next to a neighbour VM whose
    frames must never be reachable.  Table helpers write guest memory
    directly, behind the shadow's back: use them only for entries no shadow
    entry derives from yet."""

    def __init__(self, guest_frames: int = 16, machine_frames: int = 64):
        self.memory = PhysicalMemory(machine_frames * PAGE_SIZE)
        self.frames = MachineFrames(machine_frames)
        self.neighbour = self.frames.allocate(NEIGHBOUR_VM, 4)
        self.physmap = GuestPhysMap(VM_ID, list(reversed(self.frames.allocate(VM_ID, guest_frames))))

    def read(self, gpa: int) -> int:
        return self.memory.read(self.physmap.gpa_to_ma(gpa), 4)

    def write(self, gpa: int, value: int) -> None:
        self.memory.write(self.physmap.gpa_to_ma(gpa), 4, value)

    def pde_gpa(self, pd_gfn: int, gva: int) -> int:
        return (pd_gfn << PAGE_SHIFT) + (gva >> PDX_SHIFT) * 4

    def pte_gpa(self, pt_gfn: int, gva: int) -> int:
        return (pt_gfn << PAGE_SHIFT) + ((gva >> PTX_SHIFT) & 0x3FF) * 4

    def map(self, pd_gfn: int, gva: int, pt_gfn: int, gfn: int, pte_flags: int,
            pde_flags: int = PTE_P | PTE_W | PTE_U) -> None:
        """PD[gva] = pt_gfn | pde_flags, PT[gva] = gfn | pte_flags."""
        self.write(self.pde_gpa(pd_gfn, gva), pt_gfn << PAGE_SHIFT | pde_flags)
        self.write(self.pte_gpa(pt_gfn, gva), gfn << PAGE_SHIFT | pte_flags)

    def map_kernel_window(self, pd_gfn: int, pt_gfn: int) -> None:
        """Map all guest RAM at KERNBASE + gpa, kernel only, writable."""
        for gfn in range(self.physmap.frames):
            self.map(pd_gfn, KERNBASE + (gfn << PAGE_SHIFT), pt_gfn, gfn, PTE_P | PTE_W, PTE_P | PTE_W)


class MachineModel:
    """The machine's MMU as the shadow sees it: walks the loaded shadow root in
    machine memory in machine USER mode (U needed at both levels, W at both
    for a write) and caches translations in a TLB that only flush_tlb,
    invlpg_machine and a ptb load clear, as the hardware does."""

    def __init__(self, memory):
        self.memory = memory
        self.ptb = 0
        self.tlb: dict[int, tuple[int, bool]] = {}     # vpn -> (mfn, writable)
        self.invalidated: list[int] = []

    def load_ptb(self, ptb: int) -> None:
        self.ptb = ptb
        self.tlb.clear()

    def flush_tlb(self) -> None:
        self.tlb.clear()

    def invlpg_machine(self, gva: int) -> None:
        self.invalidated.append(gva)
        self.tlb.pop(gva >> PAGE_SHIFT, None)

    def walk(self, gva: int) -> tuple[int, bool] | None:
        """(mfn, writable) from the shadow tables, or None if not user-accessible."""
        pde = self.memory.read((self.ptb & PTE_FRAME_MASK) + (gva >> PDX_SHIFT) * 4, 4)
        if pde & (PTE_P | PTE_U) != PTE_P | PTE_U:
            return None
        pte = self.memory.read((pde & PTE_FRAME_MASK) + ((gva >> PTX_SHIFT) & 0x3FF) * 4, 4)
        if pte & (PTE_P | PTE_U) != PTE_P | PTE_U:
            return None
        return pte >> PAGE_SHIFT, bool(pde & pte & PTE_W)

    def translate(self, gva: int, write: bool) -> int | None:
        """Machine address for a user access, or None (a machine page fault)."""
        vpn = gva >> PAGE_SHIFT
        if vpn not in self.tlb:
            found = self.walk(gva)
            if found is None:
                return None
            self.tlb[vpn] = found
        mfn, writable = self.tlb[vpn]
        if write and not writable:
            return None
        return (mfn << PAGE_SHIFT) | (gva & (PAGE_SIZE - 1))


class MachineMMU:
    """The machine's real MMU (vmm/machine/mmu.py) behind MachineModel's
    interface (translate, load_ptb, flush_tlb, invlpg_machine), in user mode."""

    def __init__(self, memory):
        from vmm.machine.counters import Counters
        from vmm.machine.mmu import MMU
        self.mmu = MMU(memory, Counters())
        self.flush_tlb = self.mmu.flush
        self.invlpg_machine = self.mmu.invalidate
        self.load_ptb = self.mmu.set_ptb

    def translate(self, gva: int, write: bool) -> int | None:
        from vmm.machine.mmu import Fault
        try:
            return self.mmu.translate(gva, Access.WRITE if write else Access.READ, True)
        except Fault:
            return None


class ShadowDriver:
    """ShadowPaging driven the way the VMM's exit handler drives it.  Every
    operation audits the shadow and fails the test on any violation.  By
    default the basic shadow (options BASIC: every guest table write traced
    and emulated), whose mechanism most tests check; test_shadow_opts.py
    passes the production techniques.

    Access results: ("ok", ma), ("traced", gpa), ("fault", error_code),
    ("mmio", gpa), ("bus", gpa)."""

    def __init__(self, vm: GuestVM, max_cached_roots: int = 4, machine=MachineModel, options=BASIC):
        self.vm = vm
        self.machine = machine(vm.memory)
        self.shadow = ShadowPaging(vm.memory, vm.frames, vm.physmap, self.machine.flush_tlb,
                                   self.machine.invlpg_machine, max_cached_roots, options=options)
        self.virtual_kernel = True

    def check(self) -> None:
        assert self.shadow.audit() == []

    def switch(self, guest_ptb: int, virtual_kernel: bool) -> None:
        self.virtual_kernel = virtual_kernel
        self.machine.load_ptb(self.shadow.activate(guest_ptb, virtual_kernel))
        self.check()

    def write_ptb(self, guest_ptb: int) -> None:
        """The guest's mtcr ptb (as paging.ShadowMode.write_ptb, then the load)."""
        self.shadow.resync_all()
        self.switch(guest_ptb, self.virtual_kernel)

    def invlpg(self, gva: int) -> None:
        """The guest's tlbinv."""
        self.shadow.invlpg(gva)
        self.check()

    def flush(self) -> None:
        """The guest's tlbflush."""
        self.shadow.flush()
        self.check()

    def access(self, gva: int, kind: str = "read") -> tuple[str, int]:
        write, fetch = kind == "write", kind == "fetch"
        for _ in range(3):
            ma = self.machine.translate(gva, write)
            if ma is not None:
                return "ok", ma
            outcome = self.shadow.page_fault(gva, write, fetch, self.virtual_kernel)
            self.check()
            if outcome.kind is FaultKind.TRUE:
                return "fault", outcome.error_code
            if outcome.kind is not FaultKind.HIDDEN:
                return {FaultKind.TRACED_WRITE: "traced", FaultKind.MMIO: "mmio",
                        FaultKind.BUS_ERROR: "bus"}[outcome.kind], outcome.gpa
        raise AssertionError(f"{gva:#010x}: hidden faults do not make progress")

    def load(self, gva: int) -> int | tuple[str, int]:
        """The word at `gva`, or the access result that stopped it."""
        result = self.access(gva)
        return self.vm.memory.read(result[1], 4) if result[0] == "ok" else result

    def store(self, gva: int, value: int, width: int = 4) -> tuple[str, int]:
        """Store as a guest instruction would; traced writes go through the emulator."""
        result = self.access(gva, "write")
        if result[0] == "ok":
            self.vm.memory.write(result[1], width, value)
        elif result[0] == "traced":
            self.shadow.emulate_pt_write(result[1], width, value)
            self.check()
        return result


@pytest.fixture
def guest_vm():
    """Factory: guest_vm(guest_frames=16, machine_frames=64) -> GuestVM."""
    return GuestVM


@pytest.fixture
def shadow_driver():
    """Factory: shadow_driver(vm, max_cached_roots=4, machine=MachineModel or MachineMMU,
    options=BASIC) -> ShadowDriver."""
    return ShadowDriver


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory):
    """Factory: guest_image(name) -> the ELF image of tests/monitor/guests/NAME.s,
    built once per session (tests/monitor/guestrun.py)."""
    from tests.monitor.guestrun import build_guest
    out_dir = tmp_path_factory.mktemp("guests")
    built = {}

    def image(name: str):
        if name not in built:
            built[name] = build_guest(name, out_dir)
        return built[name]
    return image


@pytest.fixture(scope="session")
def guest_run(guest_image):
    """Factory: guest_run(name, machine) -> the GuestRun of guest NAME on
    `machine` ("bare" or "shadow"), booted once per session."""
    from tests.monitor.guestrun import run_guest
    runs = {}

    def run(name: str, machine: str):
        if (name, machine) not in runs:
            runs[name, machine] = run_guest(guest_image(name), machine)
        return runs[name, machine]
    return run


@pytest.fixture(scope="session")
def guest(tmp_path_factory):
    """Factory: guest(name, *defines) -> the image of tests/monitor/pvguests/NAME.s, built once
    per session (guestrun.build_pv_guest)."""
    directory, built = tmp_path_factory.mktemp("pvguests"), {}

    def get(name: str, *defines: str) -> str:
        if (name, defines) not in built:
            from tests.monitor.guestrun import build_pv_guest
            built[name, defines] = build_pv_guest(directory, name, *defines)
        return built[name, defines]
    return get

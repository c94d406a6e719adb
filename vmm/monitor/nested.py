"""Nested paging: an unmodified guest in the machine's guest mode (`--paging nested`).

The VMM uses the Kite32 virtualization extension (docs/isa.md,
"Virtualization extension (optional)") as KVM uses VT-x with EPT.  The guest
kernel runs in real kernel mode on its own control registers; its own page
tables are walked by the hardware, and every guest-physical address the walk
touches goes through the VMM's nested tables:

    guest tables:   gva ──(the guest's PD, PT in guest RAM, walked by the MMU)──► gpa
    nested tables:  gpa ──(nested PD, PT in VMM frames, walked by the MMU)───────► ma

The VMM builds the nested tables EAGERLY, once, when the VM is created: gfn i
-> p2m[i], present and writable, for every frame of guest RAM, and nothing
else.  Why eager: guest RAM is fixed for the VM's life (no ballooning, no
sharing), so a lazy map would only add one nested-fault exit per guest page
touched and a VMM path to get wrong, and the tables never change, so the
VMM never has to flush a kept guest translation (the INVEPT analogue).  Every
nested fault is then about a gpa that is not RAM:

    gpa >= MMIO_BASE, a load or store      the VM's device (emulate.mmio)
    gpa >= MMIO_BASE, a fetch or a guest   the bus error the bare machine raises
      table entry                          for a physical access there
    gpa beyond guest RAM, below MMIO       the same bus error (delivered into the
                                           guest's own tvec through the guest area)
    gpa inside guest RAM                   cannot happen: an internal VMM error

Invariants (audit() checks them all):
- the VMCS, the nested directory and the nested tables are VMM-owned frames
  (OWNER_VMM), none of them in any guest's p2m, so never mapped into a guest;
- nested PDE i is present (P | W) exactly for the 4 MiB regions holding guest
  RAM and names nested table i; nested PTE of gfn is p2m[gfn] | P | W for
  every gfn of guest RAM and 0 for every other gpa: a guest reaches only its
  own frames, whatever its own tables say;
- the VMCS nptb word is the nested root with NPTB_ENABLE (and NPTB_PWC when
  the page-walk cache is on).

What the VMM never does in this mode: it keeps no shadow table, traps no
page-table write and takes no hidden fault, and it never translates for the
MMU.  It reads the guest's tables only in guest_address, to find a hypercall
buffer or re-fetch an instruction whose word the hardware did not record
(KVM's gva_to_gpa for emulation), and never writes them: the hardware sets
A and D, before the final frame's nested translation, as the bare machine
sets them before an access that finds a device or no RAM.  The exit handling itself (VMCS <-> registers, the exit reasons
mapped onto the monitor's handlers) is in vmm/monitor/guestmode.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from asm.arch import Access
from asm.isa import (CR_PTB, MMIO_BASE, NF_MISCONFIG, NF_TABLE, NPTB_ENABLE, NPTB_PWC, PAGE_SHIFT, PAGE_SIZE,
                     PF_FETCH, PTE_P, PTE_W, VMCS_EXIT_CONTROLS, VMCS_MTCR_EXITS, VMCS_NPTB,
                     VMX_EXIT_WFI)
from vmm.machine.errors import KiteError
from vmm.monitor.guestwalk import GuestTables, Translation
from vmm.monitor.physmap import GPA, GVA, MA, OWNER_VMM, GuestPhysMap, MachineFrames, OutOfFrames
from vmm.monitor.shadow import FaultKind, FaultOutcome
from vmm.monitor.vcpu import VirtualCPU

ENTRIES = PAGE_SIZE // 4
REGION_SHIFT = 22                       # one nested table maps 4 MiB of guest-physical space
PW = PTE_P | PTE_W
EXIT_CONTROLS = VMX_EXIT_WFI            # wfi exits (the VM waits, another VM runs); rdsr/wrsr do not
COUNTER_KEYS = ("vm_entries", "nested_faults", "nested_walk_refs", "pwc_hits", "guest_traps", "nested_frames")


@dataclass(frozen=True)
class NestedOptions:
    """Nested paging's switches (--nested-opt, nested= in --vm): the page-walk
    cache, on by default as on real hardware."""
    pwc: bool = True

    @classmethod
    def parse(cls, text: str) -> "NestedOptions":
        """`pwc` or `nopwc`.  Raises ValueError."""
        if text not in ("pwc", "nopwc"):
            raise ValueError(f"'{text}': expected pwc or nopwc")
        return cls(pwc=text == "pwc")

    def __str__(self) -> str:
        return "pwc" if self.pwc else "nopwc"


class NestedTables:
    """One VM's VMCS and nested tables, in VMM-owned machine frames (module doc)."""

    def __init__(self, memory, frames: MachineFrames, physmap: GuestPhysMap, pwc: bool):
        self.memory, self.frames, self.physmap = memory, frames, physmap
        self.tables = -(-physmap.frames // ENTRIES)
        try:
            self.vmcs_mfn, self.root_mfn, *self.table_mfns = frames.allocate(OWNER_VMM, 2 + self.tables)
        except OutOfFrames as error:
            raise KiteError(f"not enough machine memory for the VMCS and nested tables: {error}") from None
        self.nptb = (self.root_mfn << PAGE_SHIFT) | NPTB_ENABLE | (NPTB_PWC if pwc else 0)
        self._build()

    @property
    def vmcs(self) -> MA:
        return MA(self.vmcs_mfn << PAGE_SHIFT)

    @property
    def owned(self) -> list[int]:
        """Every frame this VM's nested paging holds."""
        return [self.vmcs_mfn, self.root_mfn, *self.table_mfns]

    def _build(self) -> None:
        """The VMCS's fixed fields and the whole nested map (eager: module doc)."""
        memory = self.memory
        for mfn in self.owned:
            memory.write_bytes(mfn << PAGE_SHIFT, bytes(PAGE_SIZE))
        for region, mfn in enumerate(self.table_mfns):
            memory.write(self._root_entry(region), 4, (mfn << PAGE_SHIFT) | PW)
            entries = [self.expected_pte((region << 10) | index) for index in range(ENTRIES)]
            memory.write_bytes(mfn << PAGE_SHIFT, struct.pack(f"<{ENTRIES}I", *entries))
        memory.write(self.vmcs + VMCS_NPTB, 4, self.nptb)
        memory.write(self.vmcs + VMCS_EXIT_CONTROLS, 4, EXIT_CONTROLS)
        memory.write(self.vmcs + VMCS_MTCR_EXITS, 4, 0)

    def _root_entry(self, region: int) -> MA:
        return MA((self.root_mfn << PAGE_SHIFT) + 4 * region)

    def expected_pte(self, gfn: int) -> int:
        """The nested PTE of guest frame `gfn`: its machine frame, present and writable; 0 outside guest RAM."""
        mfn = self.physmap.mfn(gfn)
        return 0 if mfn is None else (mfn << PAGE_SHIFT) | PW

    def audit(self) -> list[str]:
        """Every broken invariant (module doc), one message each; [] when all hold."""
        problems = []
        guest_frames = set(self.physmap.p2m)
        for mfn in self.owned:
            if self.frames.owner(mfn) != OWNER_VMM or mfn in guest_frames:
                problems.append(f"frame {mfn:#x} of the nested paging is not the VMM's alone")
        for region in range(ENTRIES):
            entry = self.memory.read(self._root_entry(region), 4)
            want = (self.table_mfns[region] << PAGE_SHIFT) | PW if region < self.tables else 0
            if entry != want:
                problems.append(f"nested PDE {region}: {entry:#010x}, expected {want:#010x}")
        for region, mfn in enumerate(self.table_mfns):
            words = struct.unpack(f"<{ENTRIES}I", self.memory.read_bytes(mfn << PAGE_SHIFT, PAGE_SIZE))
            for index, entry in enumerate(words):
                gfn = (region << 10) | index
                if entry != self.expected_pte(gfn):
                    problems.append(f"nested PTE of gfn {gfn:#x}: {entry:#010x}, expected "
                                    f"{self.expected_pte(gfn):#010x}")
                elif entry and self.frames.owner(entry >> PAGE_SHIFT) != self.physmap.vm_id:
                    problems.append(f"nested PTE of gfn {gfn:#x} names frame {entry >> PAGE_SHIFT:#x}, "
                                    f"not the VM's")
        if self.memory.read(self.vmcs + VMCS_NPTB, 4) != self.nptb:
            problems.append("the VMCS nptb is not the nested root")
        return problems

    def teardown(self) -> None:
        """Zero and give back every frame (the VM never runs again)."""
        for mfn in self.owned:
            self.memory.write_bytes(mfn << PAGE_SHIFT, bytes(PAGE_SIZE))
        self.frames.release(OWNER_VMM, self.owned)


class NestedMode:
    """Hardware-assisted: the guest's own tables and the VMM's nested tables,
    both walked by the MMU in guest mode (module doc).  The monitor runs a
    VM of this mode through guestmode.GuestMode (Monitor._run_current)."""

    name = "nested"

    def __init__(self, memory, frames: MachineFrames, physmap: GuestPhysMap, vm_id: int, cpu, config):
        from vmm.monitor.guestmode import GuestMode
        self.memory, self.physmap, self.cpu = memory, physmap, cpu
        self.options = getattr(config, "nested", None) or NestedOptions()
        self.tables = NestedTables(memory, frames, physmap, self.options.pwc)
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
        self.counters["nested_frames"] = len(self.tables.owned)
        self.fault: tuple[int, int] = (0, 0)        # (gpa, access kind) of the last nested-fault exit
        self.guest = GuestMode(self)

    def machine_ptb(self, vcpu: VirtualCPU) -> int:
        """Never loaded: the guest's ptb is in the VMCS guest area (see Monitor.load_mode)."""
        return vcpu.cr[CR_PTB]

    def write_ptb(self, vcpu: VirtualCPU, value: int) -> bool:
        """The guest's mtcr ptb runs in guest mode without an exit; for completeness."""
        vcpu.cr[CR_PTB] = value
        return True

    def flush(self) -> None:
        """The guest's tlbflush runs in guest mode (the hardware flushes the guest's side)."""

    def invlpg(self, gva: GVA) -> None:
        """The guest's tlbinv runs in guest mode."""

    def page_fault(self, vcpu: VirtualCPU, gva: GVA, write: bool, fetch: bool, error_code: int) -> FaultOutcome:
        """What the last nested-fault exit (self.fault) means (module doc's
        table).  Raises RuntimeError for a fault the eager map rules out."""
        gpa, access = self.fault
        if access & NF_MISCONFIG or self.physmap.mfn(gpa >> PAGE_SHIFT) is not None:
            raise RuntimeError(f"nested: fault at mapped or misconfigured gpa {gpa:#010x} "
                               f"(access {access:#x}): the nested tables are broken")
        if gpa >= MMIO_BASE and not access & (PF_FETCH | NF_TABLE):
            return FaultOutcome(FaultKind.MMIO, gpa=GPA(gpa))
        return FaultOutcome(FaultKind.BUS_ERROR, gpa=GPA(gpa))

    def guest_address(self, vcpu: VirtualCPU, gva: GVA, access: Access) -> MA | None:
        """The machine address of `gva` as the guest's own tables and guest RAM
        map it for `access` in its current mode, or None; sets no A/D bits
        (module doc: for emulation only)."""
        walk = GuestTables(self.memory, self.physmap, vcpu.cr[CR_PTB]).walk(
            gva, access, user=not vcpu.kernel, set_bits=False)
        return self.physmap.gpa_to_ma(walk.gpa) if isinstance(walk, Translation) else None

    def guest_written(self, ma: MA, length: int) -> None:
        """The VMM wrote guest RAM for the guest: nothing to keep consistent
        (the MMU walks the guest's tables itself)."""

    def dma_allowed(self, ma: MA) -> bool:
        """Any frame of the VM, as on the bare machine."""
        return True

    def audit(self) -> list[str]:
        return self.tables.audit()

    def teardown(self) -> None:
        problems = self.audit()
        self.tables.teardown()
        if problems:
            raise RuntimeError("nested: teardown audit: " + "; ".join(problems[:3]))

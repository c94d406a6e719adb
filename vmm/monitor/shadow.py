"""Shadow page tables for unmodified guests, in the style of KVM's shadow MMU.

The guest's own V→P tables are never loaded into the MMU.  The VMM keeps V→M
shadow tables in VMM-owned machine frames and hands the CPU a shadow root:

    guest tables:   gva ──(guest PD, PT in guest memory)──► gpa ──(p2m)──► ma
    shadow tables:  gva ──(shadow PD, PT in VMM frames)──────────────────► ma

Every present shadow entry is DERIVED from the current guest tables and the
p2m, never copied: machine frame = p2m[gfn], U always set (the guest runs in
machine user mode), W only where the guest allows the write at both levels,
the guest PTE is already dirty, and the guest frame is not a traced page-table
page.  docs/shadow.md has the whole design; the words used here:

- shadow page: one VMM frame shadowing one guest table frame in one role.
  Identified by (key, Role): key is the guest frame (or, for the identity
  shadow of guest paging off, the 4 MiB region index, 0 for its directory).
- role: (level, virtual_kernel, direct).  Virtual-user shadows never map a
  guest page whose U bit is clear at either level, so the guest kernel's pages
  are unreachable while the guest runs in virtual user mode.
- root cache: the current root plus the most recent previous roots
  (KVM's prev_roots); `activate` on a cached root rebuilds nothing.
- tracing: every guest frame some shadow page shadows is write-protected in
  every shadow leaf that maps it (rmap: gfn → leaf entries).  A guest write to
  it faults as TRACED_WRITE; the VMM's emulator performs it through
  `emulate_pt_write`, which zaps the shadow entries derived from the old value.

The techniques of production shadow MMUs (KVM's, VMware's), each switchable
with ShadowOptions (docs/shadow.md "Optimizations"):

- write-flood detection: a shadow page written FLOOD_WRITES times by
  emulation with no use through it in between (a kernel zeroing a freed page
  table or directory) is unshadowed: freed (a cached root dropped from the
  cache; never the current root), so its guest frame stops being traced;
- out-of-sync leaf tables: the first traced write to a guest PT (one shadowed
  only as a leaf table) makes its shadow pages unsync instead of emulating:
  the frame is no longer write-protected and the guest writes it at full
  speed; the shadow is brought back in sync at the guest's tlbinv (that
  entry), tlbflush and ptb write (every page), which is exactly when the
  bare machine's TLB stops being allowed to use stale entries;
- prefetch: a hidden fault also fills up to PREFETCH neighbouring entries
  whose guest PTEs are present and already accessed (so filling them sets no
  A bit the bare machine would not have set).

Invariants, with the options on: a shadow page that is not unsync is derived
from the current guest tables (the audit checks it); an unsync page's every
entry is derived from the guest entry recorded when it was filled (`gptes`),
and an unsync frame is shadowed only as leaf tables.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from asm.arch import FETCH, READ, WRITE, Access, page_fault_error, permission_error
from asm.isa import (MMIO_BASE, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PTB_ENABLE, PTE_A, PTE_D,
                     PTE_P, PTE_U, PTE_W)
from vmm.monitor.guestwalk import (ENTRIES, ENTRY_SIZE, GuestFault, GuestTables,
                                   TableBusError, Translation, pdx, ptx)
from vmm.monitor.physmap import GPA, GVA, OWNER_VMM, GuestPhysMap, MachineFrames, OutOfFrames

REGION_SHIFT = 10          # guest frames per 4 MiB region: gfn = region << REGION_SHIFT | ptx

COUNTER_KEYS = (
    "hidden_faults",               # faults the guest's tables allow: shadow filled, instruction retried
    "true_faults",                 # faults reflected to the guest with its own error code
    "pt_write_traps",              # writes to traced guest page-table pages, handed to the emulator
    "mmio_faults",                 # accesses to guest device pages, handed to device emulation
    "bus_errors",                  # table or data gpa outside guest RAM: guest bus error
    "shadow_entries_created",      # shadow PTEs and PDEs written present
    "shadow_entries_invalidated",  # present shadow PTEs zapped and PDEs unlinked
    "roots_built",                 # activate built a new shadow root
    "roots_reused",                # activate found the root in the cache
    "shadow_pages",                # shadow pages alive now
    "reclaims",                    # times the VM's own shadow pages were freed to make room (_reclaim)
    "flood_unshadows",             # shadow PTs freed by write-flood detection
    "unsyncs",                     # guest PT frames let out of sync instead of emulating their writes
    "resyncs",                     # out-of-sync frames brought back in sync (tlbflush, ptb write)
    "prefetched",                  # shadow PTEs filled ahead of an access, beside a hidden fault
)
FLOOD_WRITES = 3           # KVM's detect_write_flooding threshold
PREFETCH = 8               # KVM's PTE_PREFETCH_NUM: the aligned group of entries around the faulting one


@dataclass(frozen=True)
class ShadowOptions:
    """Which production shadow-MMU techniques are on (module doc)."""
    flood: bool = True
    unsync: bool = True
    prefetch: bool = True

    NAMES = ("flood", "unsync", "prefetch")

    @classmethod
    def parse(cls, text: str) -> "ShadowOptions":
        """`all`, `none`, or a subset of NAMES separated by `,` or `+`.  Raises ValueError."""
        if text == "all":
            return cls()
        names = [] if text == "none" else [name.strip() for name in text.replace("+", ",").split(",")]
        unknown = [name for name in names if name not in cls.NAMES]
        if unknown or (text != "none" and not names):
            raise ValueError(f"'{text}': expected all, none or some of {', '.join(cls.NAMES)}")
        return cls(*(name in names for name in cls.NAMES))

    def __str__(self) -> str:
        names = [name for name in self.NAMES if getattr(self, name)]
        return "all" if len(names) == len(self.NAMES) else ",".join(names) or "none"


BASIC = ShadowOptions(False, False, False)   # the 2005 shadow MMU: trace and emulate every table write


class Role(NamedTuple):
    level: int                 # 2: page directory, 1: page table
    virtual_kernel: bool
    direct: bool               # identity gva = gpa shadow for guest paging off


@dataclass(eq=False)
class ShadowPage:
    key: int                   # guest table frame; direct pages: region index (0 for the directory)
    role: Role
    mfn: int                   # the VMM frame holding the machine entries
    children: dict[int, ShadowPage] = field(default_factory=dict)          # level 2: index → shadow PT
    parents: set[tuple[ShadowPage, int]] = field(default_factory=set)      # level 1: (shadow PD, index)
    leaves: dict[int, int] = field(default_factory=dict)                   # level 1: index → gfn mapped
    gptes: dict[int, int] = field(default_factory=dict)                    # level 1: index → guest PTE it came from
    writes: int = 0            # emulated writes to its guest frame since the last use through it
    unsync: bool = False       # its guest frame is not write-protected: resync before trusting it


class FaultKind(enum.Enum):
    HIDDEN = "hidden"              # shadow filled; retry the instruction, the guest sees nothing
    TRUE = "true"                  # reflect a page fault with `error_code` and the gva to the guest
    TRACED_WRITE = "traced_write"  # emulate the write to guest page-table memory at `gpa`
    MMIO = "mmio"                  # emulate the device access at guest-physical `gpa`
    BUS_ERROR = "bus_error"        # reflect a bus error (badaddr = the gva): no guest RAM at `gpa`


class FaultOutcome(NamedTuple):
    """A page fault's classification: made on every shadow page fault, so a
    plain tuple (a frozen dataclass costs a microsecond to build)."""
    kind: FaultKind
    error_code: int = 0
    gpa: GPA | None = None


HIDDEN = FaultOutcome(FaultKind.HIDDEN)


class ShadowPaging:
    """Shadow paging for one VM.  `counters` keys: COUNTER_KEYS (commented above).

    `flush_tlb()` flushes the whole machine TLB, `invlpg_machine(gva)` one page
    of it.  The VMM calls `activate` on every guest ptb write and every change
    of virtual mode and loads the ptb it returns (that ptb write flushes the
    machine TLB); it calls `guest_memory_written` after any write to guest RAM
    that bypasses the shadow (device DMA, hypercall copies).

    `max_pages` is the VM's share of the VMM's frames (None: no limit): at the
    limit, or when the machine has no free frame, the VM's own shadow pages
    are reclaimed (`_reclaim`) before a new one is made, so one VM cannot
    starve the others."""

    def __init__(self, memory, frames: MachineFrames, physmap: GuestPhysMap,
                 flush_tlb: Callable[[], None], invlpg_machine: Callable[[int], None],
                 max_cached_roots: int = 4, max_pages: int | None = None,
                 options: ShadowOptions = ShadowOptions()):
        if max_cached_roots < 1:
            raise ValueError("max_cached_roots must be at least 1")
        self.memory = memory
        self.frames = frames
        self.physmap = physmap
        self.flush_tlb = flush_tlb
        self.invlpg_machine = invlpg_machine
        self.max_cached_roots = max_cached_roots
        self.max_pages = max_pages
        self.options = options
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
        self._unsync: set[int] = set()                             # guest frames out of sync
        self._pages: dict[tuple[int, Role], ShadowPage] = {}
        self._by_gfn: dict[int, set[ShadowPage]] = {}              # traced gfn → its shadow pages
        self._rmap: dict[int, set[tuple[ShadowPage, int]]] = {}    # gfn → shadow leaves mapping it
        self._roots: list[ShadowPage] = []                         # most recent first; [0] is current
        self._guest: GuestTables | None = None
        # (directory index, entry): the VMM window of a binary-translated VM, linked while its code runs translated
        self.window: tuple[int, int] | None = None

    # --- roots -------------------------------------------------------------------------

    def activate(self, guest_ptb: int, virtual_kernel: bool, window: bool = False) -> int:
        """The machine ptb value (root frame | PTB_ENABLE) to load for guest base
        `guest_ptb` in this virtual mode, with the VMM window (`self.window`)
        linked if `window`, else not.  Reuses a cached root if there is one;
        otherwise builds an empty one, evicting the least recently used root
        beyond `max_cached_roots`."""
        self._guest = GuestTables(self.memory, self.physmap, guest_ptb)
        direct = not guest_ptb & PTB_ENABLE
        key = 0 if direct else guest_ptb >> PAGE_SHIFT
        root = self._pages.get((key, Role(2, virtual_kernel, direct)))
        if root is not None:
            self.counters["roots_reused"] += 1
            self._roots.remove(root)
        else:
            self.counters["roots_built"] += 1
            root = self._new_page(key, Role(2, virtual_kernel, direct))
        self._roots.insert(0, root)
        while len(self._roots) > self.max_cached_roots:
            self._free(self._roots.pop())
        if self.window is not None:
            self.memory.write(self._entry_ma(root, self.window[0]), ENTRY_SIZE, self.window[1] if window else 0)
        return (root.mfn << PAGE_SHIFT) | PTB_ENABLE

    def teardown(self) -> None:
        """Free every shadow page and give its frame back to MachineFrames.
        The caller must not leave the old shadow root loaded in the CPU."""
        while self._roots:
            self._free(self._roots.pop())
        if self._pages:
            raise RuntimeError(f"shadow teardown: {len(self._pages)} pages left")
        self._guest = None
        self.flush_tlb()

    # --- faults ------------------------------------------------------------------------

    def page_fault(self, gva: GVA, write: bool, fetch: bool, virtual_kernel: bool) -> FaultOutcome:
        """Classify a machine page fault of the guest at `gva` (see FaultKind).
        Walks the guest tables exactly as the bare machine would (setting guest
        A/D on success), but for a write the shadow already holds as a traced
        one (_held_traced_write: what that walk would give, known without
        it); on HIDDEN and TRACED_WRITE the shadow now maps `gva` (read-only
        for a traced page)."""
        root = self._current_root()
        if root.role.virtual_kernel != virtual_kernel:
            raise ValueError("page_fault: virtual mode differs from the active shadow root's")
        in_window = self.window is not None and pdx(gva) == self.window[0]
        if write and not in_window:
            gpa = self._held_traced_write(root, gva, virtual_kernel)
            if gpa is not None:
                self.counters["pt_write_traps"] += 1
                return FaultOutcome(FaultKind.TRACED_WRITE, 0, gpa)
        access = WRITE if write else FETCH if fetch else READ
        if in_window:
            return self._window_fault(gva, access, virtual_kernel)
        result = self._guest.walk(gva, access, user=not virtual_kernel)
        if isinstance(result, GuestFault):
            return self._count("true_faults", FaultOutcome(FaultKind.TRUE, result.error_code))
        if isinstance(result, TableBusError):
            return self._count("bus_errors", FaultOutcome(FaultKind.BUS_ERROR, gpa=result.gpa))
        if result.gpa >= MMIO_BASE and fetch:       # no instruction fetch from a device: bus error
            return self._count("bus_errors", FaultOutcome(FaultKind.BUS_ERROR, gpa=result.gpa))
        if result.gpa >= MMIO_BASE:
            return self._count("mmio_faults", FaultOutcome(FaultKind.MMIO, gpa=result.gpa))
        gfn = result.gpa >> PAGE_SHIFT
        if self.physmap.mfn(gfn) is None:
            return self._count("bus_errors", FaultOutcome(FaultKind.BUS_ERROR, gpa=result.gpa))
        self._install(root, gva, result)
        if write and gfn in self._by_gfn and gfn not in self._unsync:
            if not self._may_unsync(gfn):
                return self._count("pt_write_traps", FaultOutcome(FaultKind.TRACED_WRITE, gpa=result.gpa))
            self._set_unsync(gfn)
            self._install(root, gva, result)            # now writable: the store is retried and goes through
        return self._count("hidden_faults", HIDDEN)

    def _held_traced_write(self, root: ShadowPage, gva: GVA, virtual_kernel: bool) -> GPA | None:
        """The gpa of a write at `gva` into a traced guest page table that the
        shadow already maps, read-only, in sync, known without walking the
        guest tables; None when the full walk must decide.  The leaf's
        recorded guest PTE is the guest's current one (its table is in sync:
        every write to it is traced) and so is the guest PDE (a directory is
        never out of sync), whose W the shadow PDE carries; the walk would
        allow the write (asm.arch.permission_error) and, A and D being set
        already, change no bit.  Nothing is installed (the leaf holds) and
        no machine TLB entry is dropped: one the machine may hold for `gva`
        is the read-only entry this leaf derives."""
        directory_index = pdx(gva)
        table = root.children.get(directory_index)
        if table is None or table.unsync or table.role.direct:
            return None
        index = ptx(gva)
        gpte, gfn = table.gptes.get(index), table.leaves.get(index)
        if gpte is None or gpte & (PTE_A | PTE_D) != PTE_A | PTE_D:
            return None
        if gfn not in self._by_gfn or gfn in self._unsync or self._may_unsync(gfn):
            return None
        pde = self.memory.read(self._entry_ma(root, directory_index), ENTRY_SIZE)
        if permission_error(pde & gpte, WRITE, not virtual_kernel) is not None:
            return None
        self._used(table, index)
        return gfn << PAGE_SHIFT | gva & PAGE_MASK

    def _window_fault(self, gva: GVA, access: Access, virtual_kernel: bool) -> FaultOutcome:
        """A guest access in the VMM window (bt/layout.py): the guest's own
        mappings there do not count, so it is what the bare machine gives
        where nothing is mapped: a not-present fault, or with the guest's
        paging off a bus error (no RAM or device that high)."""
        if not self._guest.paging:
            return self._count("bus_errors", FaultOutcome(FaultKind.BUS_ERROR, gpa=gva))
        error = page_fault_error(access, user=not virtual_kernel, present=False)
        return self._count("true_faults", FaultOutcome(FaultKind.TRUE, error))

    def _count(self, key: str, outcome: FaultOutcome) -> FaultOutcome:
        self.counters[key] += 1
        return outcome

    def _current_root(self) -> ShadowPage:
        if not self._roots:
            raise RuntimeError("shadow paging used before activate")
        return self._roots[0]

    def _install(self, root: ShadowPage, gva: int, walk: Translation) -> None:
        """Map `gva` in `root` from a successful guest walk whose gpa is in guest
        RAM: link the shadow PT (creating it, which traces its guest frame),
        write the derived leaf unless it is that already (_holds), and
        invalidate `gva` in the machine TLB if the leaf was there before."""
        table = root.children.get(pdx(gva))
        if table is None:
            if root.role.direct:
                key, pde_writable = pdx(gva), True
            else:
                key, pde_writable = walk.pde >> PAGE_SHIFT, bool(walk.pde & PTE_W)
            role = Role(1, root.role.virtual_kernel, root.role.direct)
            table = self._pages.get((key, role)) or self._new_page(key, role)
            self._link(root, pdx(gva), table, pde_writable)
        gfn, index = walk.gpa >> PAGE_SHIFT, ptx(gva)
        writable = self._leaf_writable(table, walk.pte, gfn)
        present = index in table.leaves
        if not self._holds(table, index, gfn, writable, walk.pte):
            self._set_leaf(table, index, gfn, writable, walk.pte)
        # a leaf that was there, replaced or held already: the machine's TLB entry for gva may be stale (when
        # held: the leaf of a shadow PT that two guest PDEs share changed through the other gva, and the fault
        # would repeat).  An empty one had none, nor block lookups: a faulting walk caches nothing, and whatever
        # clears a leaf invalidates it (_zap_leaf, flush, the unlink's or reclaim's flush)
        if present:
            self.invlpg_machine(gva)
        self._used(table, index)

    def _used(self, table: ShadowPage, index: int) -> None:
        """A fault went through entry `index` of shadow PT `table`: the
        writes counted for write-flood detection start again, and prefetch
        fills the entry's neighbours."""
        table.writes = 0
        if self.options.prefetch and not table.role.direct:
            self._prefetch(table, index)

    def _prefetch(self, table: ShadowPage, index: int) -> None:
        """Fill the empty entries of non-direct `table` in the aligned PREFETCH
        group of `index` whose guest PTE (in the guest PT the table shadows) is
        present, accessed, in guest RAM below MMIO and, for the virtual-user
        role, user (the faulting walk vouched for the PDE)."""
        first = index - index % PREFETCH
        for neighbour in range(first, first + PREFETCH):
            if neighbour == index or neighbour in table.leaves:
                continue
            pte = self._guest_entry(table.key, neighbour)
            if pte is None or pte & (PTE_P | PTE_A) != PTE_P | PTE_A:
                continue
            if not table.role.virtual_kernel and not pte & PTE_U:
                continue
            gfn = pte >> PAGE_SHIFT
            if gfn << PAGE_SHIFT >= MMIO_BASE or self.physmap.mfn(gfn) is None:
                continue
            self._set_leaf(table, neighbour, gfn, self._leaf_writable(table, pte, gfn), pte)
            self.counters["prefetched"] += 1

    def _leaf_writable(self, table: ShadowPage, pte: int | None, gfn: int) -> bool:
        """May the shadow leaf for guest PTE `pte` (None: identity) be writable?
        The guest PDE's W is carried by the shadow PDE; the machine combines both."""
        if gfn in self._by_gfn and gfn not in self._unsync:
            return False
        return table.role.direct or pte & (PTE_W | PTE_D) == PTE_W | PTE_D

    # --- guest table writes and TLB operations ------------------------------------------

    def emulate_pt_write(self, gpa: GPA, width: int, value: int) -> None:
        """Perform the guest's store of `width` bytes (1, 2 or 4; any alignment)
        at `gpa` in guest RAM, then invalidate the shadow entries derived from
        every guest entry it touched."""
        if width not in (1, 2, 4):
            raise ValueError(f"emulate_pt_write: width {width} is not 1, 2 or 4")
        if (gpa & PAGE_MASK) + width <= PAGE_SIZE:          # one page: one machine frame
            ma = self.physmap.gpa_to_ma(gpa)
            if ma is None:
                raise _outside_ram(gpa, width)
            self.memory.write(ma, width, value)
        else:
            addresses = [self.physmap.gpa_to_ma(gpa + offset) for offset in range(width)]
            if None in addresses:
                raise _outside_ram(gpa, width)
            for offset, ma in enumerate(addresses):     # nothing written unless every byte is RAM
                self.memory.write(ma, 1, value >> 8 * offset)
        self.guest_memory_written(gpa, width)

    def guest_memory_written(self, gpa: GPA, length: int) -> None:
        """Guest memory [gpa, gpa + length) changed behind the shadow's back (the
        emulator, or a device's DMA): zap the shadow PTEs and unlink the shadow
        PDEs derived from every guest entry in that range, flushing the TLB."""
        unlinked = False
        for entry_gpa in range(gpa & ~(ENTRY_SIZE - 1), gpa + length, ENTRY_SIZE):
            pages = self._by_gfn.get(entry_gpa >> PAGE_SHIFT)
            if not pages:
                continue
            index = (entry_gpa & PAGE_MASK) // ENTRY_SIZE
            # A shadow PT freed by an unlink here has no leaves left: zapping it does nothing.
            for page in list(pages):
                if page.role.level == 2:
                    unlinked |= self._unlink(page, index)
                elif index in page.leaves:
                    self._zap_leaf(page, index)
        pages = self._by_gfn.get(gpa >> PAGE_SHIFT)
        for page in list(pages) if pages else ():
            page.writes += 1
            if self.options.flood and page.writes >= FLOOD_WRITES and page is not self._current_root_or_none():
                unlinked |= self._unshadow(page)
        if unlinked:
            self.flush_tlb()

    def invlpg(self, gva: GVA) -> None:
        """The guest's tlbinv: zap the current root's shadow PTE for `gva` (the
        next access walks the guest tables again) and the machine TLB entry."""
        if self._roots:
            table = self._roots[0].children.get(pdx(gva))
            if table is not None:
                self._zap_leaf(table, ptx(gva))
            for page in self._unsync_pages_of(gva):
                self._zap_leaf(page, ptx(gva))
        self.invlpg_machine(gva)

    def flush(self) -> None:
        """The guest's tlbflush: zap every shadow PTE reachable from the current
        root (its shadow tables stay built and cached) and flush the machine TLB."""
        self.resync_all()
        if self._roots:
            for table in self._roots[0].children.values():
                for index in list(table.leaves):
                    self._clear_leaf(table, index)
        self.flush_tlb()

    # --- out of sync ----------------------------------------------------------------------

    def _may_unsync(self, gfn: int) -> bool:
        """Whether the writes to guest frame `gfn` may go untrapped: the option
        is on and every shadow page of the frame is a leaf table."""
        return self.options.unsync and all(page.role.level == 1 for page in self._by_gfn[gfn])

    def _set_unsync(self, gfn: int) -> None:
        """Let guest frame `gfn` out of sync: its shadow pages keep what they
        derived, and the leaves mapping the frame may become writable (the
        read-only ones are zapped; the next access re-derives them)."""
        self._unsync.add(gfn)
        for page in self._by_gfn[gfn]:
            page.unsync = True
        for table, index in list(self._rmap.get(gfn, ())):
            self._zap_leaf(table, index)
        self.counters["unsyncs"] += 1

    def _unsync_pages_of(self, gva: GVA) -> list[ShadowPage]:
        """The out-of-sync shadow pages of the guest PT that maps `gva` in the
        current guest tables (every role)."""
        if not self._unsync or self._guest is None or not self._guest.paging:
            return []
        pde = self._guest.read_entry((self._guest.ptb & ~PAGE_MASK) + pdx(gva) * ENTRY_SIZE)
        if pde is None or not pde & PTE_P or (pde >> PAGE_SHIFT) not in self._unsync:
            return []
        return list(self._by_gfn.get(pde >> PAGE_SHIFT, ()))

    def resync_all(self) -> None:
        """Bring every out-of-sync frame back in sync (the guest's tlbflush or
        ptb write): zap each entry whose guest PTE changed since it was
        derived, and write-protect the frame again."""
        for gfn in list(self._unsync):
            for page in self._by_gfn.get(gfn, ()):
                for index, gpte in list(page.gptes.items()):
                    if self._guest_entry(gfn, index) != gpte:
                        self._zap_leaf(page, index)
                page.unsync = False
            self._unsync.discard(gfn)
            self._write_protect(gfn)
            self.counters["resyncs"] += 1

    def _unshadow(self, page: ShadowPage) -> bool:
        """Free a flooded shadow page (its frame stops being traced if nothing
        else shadows it): a shadow PT by unlinking every PDE that points at
        it, a cached root (never the current one) by dropping it from the
        cache.  True if a present PDE was unlinked (the caller flushes the
        machine TLB)."""
        self.counters["flood_unshadows"] += 1
        if page.role.level == 2:
            self._roots.remove(page)
            self._free(page)
            return True
        unlinked = False
        for pd, index in list(page.parents):
            unlinked |= self._unlink(pd, index)
        return unlinked

    def _current_root_or_none(self) -> ShadowPage | None:
        return self._roots[0] if self._roots else None

    # --- shadow pages --------------------------------------------------------------------

    def _new_page(self, key: int, role: Role) -> ShadowPage:
        """A zeroed shadow page in a fresh VMM frame.  Shadowing a guest frame
        traces it: its existing shadow mappings become read-only.  Reclaims
        this VM's pages first at its limit or when the machine has no free
        frame; raises OutOfFrames only if even that leaves none."""
        if self.max_pages is not None and len(self._pages) >= self.max_pages:
            self._reclaim()
        try:
            mfn = self.frames.allocate(OWNER_VMM, 1)[0]
        except OutOfFrames:
            self._reclaim()
            mfn = self.frames.allocate(OWNER_VMM, 1)[0]
        self.memory.write_bytes(mfn << PAGE_SHIFT, bytes(PAGE_SIZE))
        if not role.direct and key in self._unsync and role.level == 2:
            self.resync_all()                   # a frame shadowed as a directory must be traced
        page = ShadowPage(key, role, mfn, unsync=not role.direct and key in self._unsync)
        self._pages[(key, role)] = page
        self.counters["shadow_pages"] = len(self._pages)
        if not role.direct:
            if key not in self._by_gfn:
                self._write_protect(key)
            self._by_gfn.setdefault(key, set()).add(page)
        return page

    def _free(self, page: ShadowPage) -> None:
        """Unlink and free `page` (and any shadow PT left without a parent) and
        release its frame.  Does not flush the machine TLB."""
        for index in list(page.children):
            self._unlink(page, index)
        for index in list(page.leaves):
            self._clear_leaf(page, index)
        del self._pages[(page.key, page.role)]
        self.counters["shadow_pages"] = len(self._pages)
        if not page.role.direct:
            traced = self._by_gfn[page.key]
            traced.discard(page)
            if not traced:
                del self._by_gfn[page.key]
                self._unsync.discard(page.key)
        self.frames.release(OWNER_VMM, [page.mfn])

    def _reclaim(self) -> None:
        """Make room, as KVM's make_mmu_pages_available does: free every cached
        root but the current one, then unlink every shadow PT of the current
        root; flush the machine TLB.  Everything freed is rebuilt by hidden
        faults on demand."""
        self.counters["reclaims"] += 1
        while len(self._roots) > 1:
            self._free(self._roots.pop())
        if self._roots:
            root = self._roots[0]
            for index in list(root.children):
                self._unlink(root, index)
        self.flush_tlb()

    def _write_protect(self, gfn: int) -> None:
        """Clear W in every shadow leaf that maps `gfn`, invalidating those pages."""
        for table, index in self._rmap.get(gfn, ()):
            address = self._entry_ma(table, index)
            entry = self.memory.read(address, ENTRY_SIZE)
            if entry & PTE_W:
                self.memory.write(address, ENTRY_SIZE, entry & ~(PTE_W | PTE_D))
                self._invalidate_gvas(table, index)

    def _link(self, pd: ShadowPage, index: int, table: ShadowPage, writable: bool) -> None:
        """Point shadow PDE `index` of `pd` at `table` (U always; W as the guest PDE)."""
        entry = (table.mfn << PAGE_SHIFT) | PTE_P | PTE_U | PTE_A | (PTE_W if writable else 0)
        self.memory.write(self._entry_ma(pd, index), ENTRY_SIZE, entry)
        pd.children[index] = table
        table.parents.add((pd, index))
        self.counters["shadow_entries_created"] += 1

    def _unlink(self, pd: ShadowPage, index: int) -> bool:
        """Clear shadow PDE `index` of `pd` if present, freeing the shadow PT if
        no PDE links it any more.  Returns whether it was present; the caller
        flushes the machine TLB."""
        table = pd.children.pop(index, None)
        if table is None:
            return False
        self.memory.write(self._entry_ma(pd, index), ENTRY_SIZE, 0)
        table.parents.discard((pd, index))
        self.counters["shadow_entries_invalidated"] += 1
        if not table.parents:
            self._free(table)
        return True

    def _leaf_entry(self, gfn: int, writable: bool) -> int:
        """The shadow PTE for guest frame `gfn`: frame p2m[gfn], P U A, W D if `writable`."""
        entry = (self.physmap.mfn(gfn) << PAGE_SHIFT) | PTE_P | PTE_U | PTE_A
        return entry | PTE_W | PTE_D if writable else entry

    def _holds(self, table: ShadowPage, index: int, gfn: int, writable: bool, gpte: int | None) -> bool:
        """Whether shadow PTE `index` of `table` is already the one _set_leaf
        would write for these arguments (a store into a traced page table
        faults on such a read-only leaf: there is nothing to install, and no
        machine TLB entry to drop)."""
        return (table.leaves.get(index) == gfn and table.gptes.get(index) == gpte
                and self.memory.read(self._entry_ma(table, index), ENTRY_SIZE) == self._leaf_entry(gfn, writable))

    def _set_leaf(self, table: ShadowPage, index: int, gfn: int, writable: bool, gpte: int | None) -> None:
        """Write shadow PTE `index` of `table` (_leaf_entry), derived from guest
        PTE `gpte` (None: identity)."""
        self._clear_leaf(table, index)
        if gpte is not None:
            table.gptes[index] = gpte
        self.memory.write(self._entry_ma(table, index), ENTRY_SIZE, self._leaf_entry(gfn, writable))
        table.leaves[index] = gfn
        self._rmap.setdefault(gfn, set()).add((table, index))
        self.counters["shadow_entries_created"] += 1

    def _clear_leaf(self, table: ShadowPage, index: int) -> bool:
        """Clear shadow PTE `index` of `table` if present (no TLB work); returns
        whether it was present."""
        gfn = table.leaves.pop(index, None)
        table.gptes.pop(index, None)
        if gfn is None:
            return False
        self.memory.write(self._entry_ma(table, index), ENTRY_SIZE, 0)
        mappers = self._rmap[gfn]
        mappers.discard((table, index))
        if not mappers:
            del self._rmap[gfn]
        self.counters["shadow_entries_invalidated"] += 1
        return True

    def _zap_leaf(self, table: ShadowPage, index: int) -> None:
        """Clear shadow PTE `index` of `table` and invalidate the pages it mapped."""
        if self._clear_leaf(table, index):
            self._invalidate_gvas(table, index)

    def _invalidate_gvas(self, table: ShadowPage, index: int) -> None:
        """invlpg_machine every gva that shadow PTE `index` of `table` translates."""
        regions = [table.key] if table.role.direct else [pd_index for _, pd_index in table.parents]
        for region in regions:
            self.invlpg_machine((region << REGION_SHIFT | index) << PAGE_SHIFT)

    @staticmethod
    def _entry_ma(page: ShadowPage, index: int) -> int:
        return (page.mfn << PAGE_SHIFT) + index * ENTRY_SIZE

    # --- audit -----------------------------------------------------------------------------

    def bookkeeping(self) -> tuple[set[int], set[int], list[ShadowPage], dict]:
        """Copies of what a debugger shows (vmm/debug/walk.py): the traced guest
        frames, the out-of-sync ones, the cached roots (the current one first)
        and the shadow pages by (key, role)."""
        return set(self._by_gfn), set(self._unsync), list(self._roots), dict(self._pages)

    def audit(self) -> list[str]:
        """Every present shadow entry, read from machine memory, checked against
        the CURRENT guest tables and p2m.  Returns the violations (empty when
        consistent); changes nothing."""
        problems = [f"gfn {gfn:#x}: out of sync but shadowed as a directory or in sync"
                    for gfn in self._unsync
                    if any(page.role.level != 1 or not page.unsync for page in self._by_gfn.get(gfn, ()))]
        for page in self._pages.values():
            if self.frames.owner(page.mfn) != OWNER_VMM:
                problems.append(f"{self._name(page)}: frame {page.mfn:#x} is not the VMM's")
            words = struct.unpack(f"<{ENTRIES}I", self.memory.read_bytes(page.mfn << PAGE_SHIFT, PAGE_SIZE))
            recorded = page.children if page.role.level == 2 else page.leaves
            check = self._audit_pde if page.role.level == 2 else self._audit_pte
            for index in sorted({i for i, entry in enumerate(words) if entry & PTE_P} | set(recorded)):
                problems += check(page, index, words[index], f"{self._name(page)}[{index}]")
        return problems

    def _audit_pde(self, pd: ShadowPage, index: int, entry: int, where: str) -> list[str]:
        """Violations of shadow PDE `index` of `pd` (value `entry`)."""
        if self.window is not None and index == self.window[0]:
            return [] if entry in (0, self.window[1]) else [f"{where}: is not the VMM window"]
        table = pd.children.get(index)
        if not entry & PTE_P:
            return [f"{where}: not present but linked"] if table is not None else []
        if table is None or entry >> PAGE_SHIFT != table.mfn or (pd, index) not in table.parents:
            return [f"{where}: present but not linked to the shadow PT it names"]
        if pd.role.direct:
            return [] if table.key == index else [f"{where}: identity region {table.key} linked"]
        guest = self._guest_entry(pd.key, index)
        if guest is None or not guest & PTE_P:
            return [f"{where}: guest PDE is not present"]
        problems = []
        if table.key != guest >> PAGE_SHIFT or table.role != Role(1, pd.role.virtual_kernel, False):
            problems.append(f"{where}: links {self._name(table)}, guest PDE is {guest:#010x}")
        if entry & PTE_W and not guest & PTE_W:
            problems.append(f"{where}: writable, guest PDE is not")
        if not pd.role.virtual_kernel and not guest & PTE_U:
            problems.append(f"{where}: virtual-user shadow links a supervisor guest PDE")
        return problems

    def _audit_pte(self, table: ShadowPage, index: int, entry: int, where: str) -> list[str]:
        """Violations of shadow PTE `index` of `table` (value `entry`)."""
        gfn = table.leaves.get(index)
        if not entry & PTE_P:
            return [f"{where}: not present but recorded"] if gfn is not None else []
        if gfn is None or (table, index) not in self._rmap.get(gfn, ()):
            return [f"{where}: present but missing from the rmap"]
        guest = None
        if table.role.direct:
            expected_gfn = table.key << REGION_SHIFT | index
        else:
            guest = table.gptes.get(index) if table.unsync else self._guest_entry(table.key, index)
            if guest is None or not guest & PTE_P:
                return [f"{where}: guest PTE is not present"]
            expected_gfn = guest >> PAGE_SHIFT
        mfn = entry >> PAGE_SHIFT
        problems = []
        if gfn != expected_gfn or mfn != self.physmap.mfn(expected_gfn):
            problems.append(f"{where}: maps frame {mfn:#x}, guest gfn {expected_gfn:#x} is machine "
                            f"frame {self.physmap.mfn(expected_gfn)}")
        if self.frames.owner(mfn) != self.physmap.vm_id:
            problems.append(f"{where}: maps frame {mfn:#x}, which is not this VM's RAM")
        traced = gfn in self._by_gfn and gfn not in self._unsync
        if entry & PTE_W and (traced or guest is not None and guest & (PTE_W | PTE_D) != PTE_W | PTE_D):
            problems.append(f"{where}: writable, but the guest page is traced, read-only or clean")
        if guest is not None and not table.role.virtual_kernel and not guest & PTE_U:
            problems.append(f"{where}: virtual-user shadow maps a supervisor guest page")
        return problems

    def _guest_entry(self, gfn: int, index: int) -> int | None:
        """Guest table entry `index` of guest frame `gfn`, or None outside guest RAM."""
        ma = self.physmap.gpa_to_ma((gfn << PAGE_SHIFT) + index * ENTRY_SIZE)
        return None if ma is None else self.memory.read(ma, ENTRY_SIZE)

    @staticmethod
    def _name(page: ShadowPage) -> str:
        kind = "identity" if page.role.direct else f"gfn {page.key:#x}"
        mode = "kernel" if page.role.virtual_kernel else "user"
        return f"shadow L{page.role.level} {kind} {mode}"


def _outside_ram(gpa: GPA, width: int) -> ValueError:
    """emulate_pt_write's error for a store that is not all in guest RAM."""
    return ValueError(f"emulate_pt_write: {gpa:#010x}+{width} is outside guest RAM")

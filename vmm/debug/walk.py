"""One address's whole translation, and the tables behind it, as text.

    walk VA       the guest's PDE and PTE, the guest-physical and machine frame;
                  under shadow paging the shadow PDE/PTE and why they differ from
                  the guest's; under direct paging each frame's validation type
                  and counts; the TLB entry
    info tlb      the machine TLB's valid entries, decoded
    info pt       the guest's mappings as ranges
    info shadow   the shadow roots cached, entries filled, the counters
    info p2m      guest-physical to machine, as ranges

Everything is read from memory and the VMM's bookkeeping without changing
either; `_shadow_state` is the one place that asks shadow paging for its
(ShadowPaging.bookkeeping).
"""

from __future__ import annotations

from asm.isa import (CR_PTB, PAGE_MASK, PAGE_SHIFT, PTB_ENABLE, PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P,
                     PTE_U, PTE_W)
from asm.arch import Access, pde_address, pte_address
from vmm.debug.target import View
from vmm.monitor.guestwalk import ENTRIES, ENTRY_SIZE, Translation, pdx, ptx
from vmm.monitor.shadow import Role

BITS = ((PTE_P, "P"), (PTE_W, "W"), (PTE_U, "U"), (PTE_A, "A"), (PTE_D, "D"))


def bits(entry: int) -> str:
    """`P W U A D`, a `-` for each bit clear."""
    return " ".join(name if entry & bit else "-" for bit, name in BITS)


def frame(entry: int) -> int:
    return entry & PTE_FRAME_MASK


# --- walk ---------------------------------------------------------------------------------

def walk(view: View, va: int) -> list[str]:
    """The `walk VA` report (module doc)."""
    space, vm = view.space, view.vm
    mode = "kernel" if view.kernel else "user"
    lines = [f"walk {va:#010x}: {view.label}, {'virtual ' if vm else ''}{mode} mode, ptb {space.ptb:#010x}"]
    if not space.ptb & PTB_ENABLE:
        lines.append(f"  paging off: {space.physical} = virtual")
        leaf = va
    else:
        leaf = _guest_entries(space, va, lines)
    if leaf is not None:
        lines += _frames(view, va, leaf)
        lines.append(f"  allows     {_permissions(space, va)}")
    if vm is not None and vm.config.paging == "shadow":
        lines += _shadow(view, va)
    lines.append(_tlb_line(view, va))
    return lines


def _guest_entries(space, va: int, lines: list[str]) -> int | None:
    """Append the guest PDE and PTE lines; returns the physical address `va`
    maps to (None if a level is not present or outside RAM)."""
    side, who = space.physical, "" if space.physical == "physical" else "guest "
    entry_at, entry = pde_address(space.ptb, va), None
    for name, index, target in (("PDE", pdx(va), "page table"), ("PTE", ptx(va), "frame")):
        if entry is not None:
            entry_at = pte_address(entry, va)
        entry = space.tables.read_entry(entry_at)
        label = f"{who}{name}"
        if entry is None:
            lines.append(f"  {label:<10} #{index} at {side} {entry_at:#010x}: outside RAM (bus error)")
            return None
        lines.append(f"  {label:<10} #{index} at {side} {entry_at:#010x} = {entry:#010x}  {bits(entry)}"
                     + (f"  -> {target} {frame(entry):#010x}" if entry & PTE_P else "  not present: a page fault"))
        if not entry & PTE_P:
            return None
    return frame(entry) | (va & PAGE_MASK)


def _frames(view: View, va: int, physical: int) -> list[str]:
    """Where the data is: physical, and machine under the VMM (with the direct-mode accounting)."""
    vm = view.vm
    if vm is None:
        return [f"  physical   {physical:#010x}"]
    if vm.config.paging == "direct":
        mfn = physical >> PAGE_SHIFT
        gfn = vm.physmap.gfn(mfn)
        where = f"guest frame {gfn:#x}" if gfn is not None else "not this VM's RAM"
        return [f"  machine    {physical:#010x}  (mfn {mfn:#x}, {where})"] + _direct_types(view, va, mfn)
    ma = vm.physmap.gpa_to_ma(physical)
    if ma is None:
        return [f"  guest-physical {physical:#010x}: no guest RAM (a device page or a bus error)"]
    return [f"  guest-physical {physical:#010x} -> machine {ma:#010x}  "
            f"(p2m: gfn {physical >> PAGE_SHIFT:#x} -> mfn {ma >> PAGE_SHIFT:#x})"]


def _direct_types(view: View, va: int, data_mfn: int) -> list[str]:
    """The validation type and counts of the directory, the table and the data frame."""
    direct, space = view.vm.mode.direct, view.space
    pde = space.tables.read_entry(pde_address(space.ptb, va))
    frames = (("directory", space.ptb >> PAGE_SHIFT), ("table", pde >> PAGE_SHIFT), ("data", data_mfn))
    lines = []
    for role, mfn in frames:
        info = direct.frame_info(mfn)
        text = "not this VM's frame" if info is None else (
            f"type {info.type}, type_count {info.type_count}, ref_count {info.ref_count}"
            + (", pinned" if info.pinned else ""))
        lines.append(f"  validated  {role:<9} mfn {mfn:#07x}: {text}")
    return lines


def _permissions(space, va: int) -> str:
    """Which accesses the tables allow at `va`, in each mode (looking only)."""
    def allowed(user: bool) -> str:
        names = [name for access, name in ((Access.READ, "read"), (Access.WRITE, "write"))
                 if isinstance(space.tables.walk(va, access, user, set_bits=False), Translation)]
        return ", ".join(names) or "nothing"
    return f"kernel: {allowed(False)}; user: {allowed(True)}"


def _tlb_line(view: View, va: int) -> str:
    if view.tlb is None:
        return "  TLB        none here (" + ("the VM is switched out)" if view.vm else "the simulator has no TLB)")
    entry = view.tlb.get(va >> PAGE_SHIFT)
    if entry is None:
        return "  TLB        no entry: the next access walks"
    return f"  TLB        {va & ~PAGE_MASK:#010x} -> {frame(entry):#010x}  {tlb_bits(entry)}"


def tlb_bits(entry: int) -> str:
    """A TLB entry's permissions: W and U of both levels, D of the PTE."""
    return " ".join(name if entry & bit else "-" for bit, name in BITS if bit in (PTE_W, PTE_U, PTE_D))


# --- the shadow side -------------------------------------------------------------------------

def _shadow_state(vm) -> tuple[set[int], set[int], list, dict]:
    """ShadowPaging's traced frames, out-of-sync frames, cached roots and pages (ShadowPaging.bookkeeping)."""
    return vm.mode.shadow.bookkeeping()


def _shadow_root(view: View) -> int | None:
    """The machine frame of the shadow root for the VM's base and virtual mode, or None."""
    if view.tlb is not None:
        return view.machine_cr[CR_PTB] >> PAGE_SHIFT
    guest_ptb = view.space.ptb
    direct = not guest_ptb & PTB_ENABLE
    key = 0 if direct else guest_ptb >> PAGE_SHIFT
    page = _shadow_state(view.vm)[3].get((key, Role(2, view.kernel, direct)))
    return None if page is None else page.mfn


def _shadow(view: View, va: int) -> list[str]:
    """The shadow PDE and PTE for `va`, and why they differ from the guest's."""
    root = _shadow_root(view)
    if root is None:
        return ["  shadow     no root for this base and mode (built at the next switch to it)"]
    memory, mode = view.space.memory, "kernel" if view.kernel else "user"
    spde_at = pde_address(root << PAGE_SHIFT, va)
    spde = memory.read(spde_at, ENTRY_SIZE)
    lines = [f"  shadow root mfn {root:#x} ({mode} role)",
             f"  shadow PDE #{pdx(va)} at machine {spde_at:#010x} = {spde:#010x}  {bits(spde)}"]
    if not spde & PTE_P:
        return lines + ["    why: not yet filled; the next access takes a hidden page fault that links it"
                        if _guest_maps(view, va) else "    why: the guest maps nothing here (a true fault)"]
    spte_at = pte_address(spde, va)
    spte = memory.read(spte_at, ENTRY_SIZE)
    lines.append(f"  shadow PTE #{ptx(va)} at machine {spte_at:#010x} = {spte:#010x}  {bits(spte)}")
    return lines + [f"    why: {reason}" for reason in _differences(view, va, spte)]


def _guest_maps(view: View, va: int) -> Translation | None:
    """The guest's own translation of `va` for the current mode, or None."""
    found = view.space.tables.walk(va, Access.READ, not view.kernel, set_bits=False)
    return found if isinstance(found, Translation) else None


def _differences(view: View, va: int, spte: int) -> list[str]:
    """Why the shadow PTE `spte` differs from the guest's entries (docs/shadow.md)."""
    guest = _guest_maps(view, va)
    if not spte & PTE_P:
        return ["not yet filled; the next access takes a hidden page fault that fills it" if guest
                else "the guest's tables refuse this access in this mode (a true fault)"]
    if guest is None:
        return ["the guest entry changed since it was filled (the guest PT is out of sync until a flush)"]
    traced, unsync, _, _ = _shadow_state(view.vm)
    gfn = guest.gpa >> PAGE_SHIFT
    reasons = [f"frame: guest frame {gfn:#x} is machine frame {view.vm.physmap.mfn(gfn):#x} (p2m)"]
    if guest.pde is None:
        return reasons + ["identity shadow: guest paging is off, so gva = gpa over guest RAM"]
    pt_gfn = guest.pde >> PAGE_SHIFT
    if guest.writable and not spte & PTE_W:
        reasons.append(f"read-only: guest frame {gfn:#x} is a page table the shadow traces "
                       "(a store is a page-table write exit)" if gfn in traced and gfn not in unsync else
                       "read-only: A/D tracking, the guest PTE is clean; the first write takes a hidden "
                       "fault that sets guest D")
    if not guest.user:
        reasons.append("U set: the guest kernel runs in machine user mode; only the kernel role's shadow "
                       "maps this supervisor page")
    if pt_gfn in unsync:
        reasons.append(f"out of sync: guest PT frame {pt_gfn:#x} is writable to the guest until its next "
                       "tlbinv, tlbflush or ptb write")
    return reasons


# --- tables as ranges -----------------------------------------------------------------------------

def tlb(view: View) -> list[str]:
    """`info tlb`: every valid entry, decoded."""
    if view.tlb is None:
        return [_tlb_line(view, 0).strip()]
    rows = [f"{vpn << PAGE_SHIFT:#010x} -> {frame(entry):#010x}  {tlb_bits(entry)}"
            for vpn, entry in sorted(view.tlb.items())]
    return [f"{len(rows)} valid TLB entries (virtual -> {'machine' if view.vm else 'physical'}, W U D)"] + rows


def page_table_ranges(space, ptb: int) -> list[str]:
    """`info pt`: the mappings of the directory `ptb` names, contiguous runs merged."""
    runs: list[list[int]] = []              # [va, pa, length, flags]
    for index in range(ENTRIES):
        pde = space.tables.read_entry(frame(ptb) + index * ENTRY_SIZE)
        if pde is None or not pde & PTE_P:
            continue
        for slot in range(ENTRIES):
            pte = space.tables.read_entry(frame(pde) + slot * ENTRY_SIZE)
            if pte is None or not pte & PTE_P:
                continue
            va, flags = (index << 22) | (slot << PAGE_SHIFT), pde & pte & (PTE_W | PTE_U)
            last = runs[-1] if runs else None
            if last and last[0] + last[2] == va and last[1] + last[2] == frame(pte) and last[3] == flags:
                last[2] += 1 << PAGE_SHIFT
            else:
                runs.append([va, frame(pte), 1 << PAGE_SHIFT, flags])
    return [f"{va:#010x}-{va + length - 1:#010x} -> {pa:#010x}  {'W' if flags & PTE_W else '-'} "
            f"{'U' if flags & PTE_U else '-'}  {length >> PAGE_SHIFT} pages"
            for va, pa, length, flags in runs] or ["no mappings"]


def p2m(vm) -> list[str]:
    """`info p2m`: guest frames to machine frames, as ranges."""
    runs: list[list[int]] = []               # [gfn, mfn, count]
    for gfn, mfn in enumerate(vm.physmap.p2m):
        if runs and runs[-1][0] + runs[-1][2] == gfn and runs[-1][1] + runs[-1][2] == mfn:
            runs[-1][2] += 1
        else:
            runs.append([gfn, mfn, 1])
    return [f"{vm.name}: guest-physical -> machine"] + [
        f"{gfn << PAGE_SHIFT:#010x}-{((gfn + count) << PAGE_SHIFT) - 1:#010x} -> {mfn << PAGE_SHIFT:#010x}  "
        f"({count} frames)" for gfn, mfn, count in runs]


def shadow(vm) -> list[str]:
    """`info shadow`: the cached roots (current first), what each has filled, the counters."""
    traced, unsync, roots, pages = _shadow_state(vm)
    lines = [f"{vm.name}: {len(roots)} cached roots, {len(pages)} shadow pages, {len(traced)} guest frames "
             f"traced, {len(unsync)} out of sync"]
    for position, root in enumerate(roots):
        kind = "paging off (identity)" if root.role.direct else f"guest PD frame {root.key:#x}"
        filled = sum(len(table.leaves) for table in root.children.values())
        lines.append(f"  {'current' if position == 0 else 'cached '} root mfn {root.mfn:#x}: {kind}, "
                     f"{'kernel' if root.role.virtual_kernel else 'user'} role, {len(root.children)} PDEs "
                     f"linked, {filled} PTEs filled")
    lines += [f"  {key}: {value}" for key, value in vm.mode.counters.items()]
    return lines

"""The CPU's event counters: exact counts, never samples.

Definitions (every count is deterministic: it does not depend on block
translation, tracing or where the run loop slices time):

    instructions   retired instructions.  An instruction that traps (syscall,
                   break, hypercall, any fault) does not retire.
    ticks_idle     ticks spent waiting in wfi (added by the machine loop).
    tlb_hits       translations with paging on that found a TLB entry for
                   their page.  A translation is made for every instruction
                   fetch and for every load and store that reaches the MMU
                   (a misaligned access faults before translating); the
                   count covers retired instructions and the instruction
                   that traps.  A write through an entry whose D bit is
                   clear is a hit that also walks (see page_walks).
    tlb_misses     translations with paging on that found no TLB entry.
    page_walks     two-level walks: one per miss plus one per write through
                   an entry with D clear.
    walk_refs      page-table memory references made by the walker: each
                   PDE or PTE read, and each A/D write-back.
    exceptions     {cause code (cause & 0xFF): count} of raised exceptions,
                   whether delivered to tvec, to the VMM or unhandled.
    interrupts     {irq: count} of interrupts taken.

Paging off: no translations, so no hits or misses.

The virtualization extension's counts (docs/isa.md "Virtualization
extension (optional)") are in `vm`, a VmCounters; in guest mode the counts
above go on counting too (guest instructions, the guest's exceptions and
virtual interrupts, the composed TLB's hits and misses, every reference of
the two-dimensional walk in walk_refs):

    vm_entries       successful VM entries (vmenter, CPU.enter_guest).
    vm_exits         {VMEXIT_* reason: count} of VM exits.
    nested_walk_refs the references to nested tables among walk_refs.
    pwc_hits         nested translations of guest table-entry addresses
                     served by the page-walk cache (each saves a nested walk).
    nested_faults    exits for a nested fault (vm_exits[VMEXIT_NESTED_FAULT]).

They are not dataclass fields of Counters (a checkpoint's counters are
exactly those fields, docs/snapshot.md); as_dict() has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asm.isa import VMEXIT_NAMES, VMEXIT_NESTED_FAULT


@dataclass
class VmCounters:
    """The virtualization extension's counts (module doc)."""

    vm_entries: int = 0
    vm_exits: dict[int, int] = field(default_factory=dict)
    nested_walk_refs: int = 0
    pwc_hits: int = 0

    @property
    def nested_faults(self) -> int:
        return self.vm_exits.get(VMEXIT_NESTED_FAULT, 0)

    @property
    def exits(self) -> int:
        """Every VM exit, whatever its reason."""
        return sum(self.vm_exits.values())

    def count_exit(self, reason: int) -> None:
        self.vm_exits[reason] = self.vm_exits.get(reason, 0) + 1

    def as_dict(self) -> dict:
        """The counts by name; exits by reason name."""
        return {"vm_entries": self.vm_entries, "vm_exits": self.exits,
                "vm_exit_reasons": {VMEXIT_NAMES.get(reason, f"reason {reason}"): count
                                    for reason, count in sorted(self.vm_exits.items())},
                "nested_walk_refs": self.nested_walk_refs, "pwc_hits": self.pwc_hits,
                "nested_faults": self.nested_faults}


@dataclass
class Counters:
    """Counts of one CPU since it was created (reset keeps them).  `translations` is the running total
    that tlb_hits is derived from (tlb_hits = translations - tlb_misses)."""

    instructions: int = 0
    ticks_idle: int = 0
    translations: int = 0
    tlb_misses: int = 0
    page_walks: int = 0
    walk_refs: int = 0
    exceptions: dict[int, int] = field(default_factory=dict)
    interrupts: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vm = VmCounters()

    @property
    def tlb_hits(self) -> int:
        """Translations that found their page in the TLB."""
        return self.translations - self.tlb_misses

    def count_exception(self, code: int) -> None:
        self.exceptions[code] = self.exceptions.get(code, 0) + 1

    def count_interrupt(self, irq: int) -> None:
        self.interrupts[irq] = self.interrupts.get(irq, 0) + 1

    def as_dict(self) -> dict:
        """The counts by name, JSON-ready (dict keys stay ints)."""
        return {"instructions": self.instructions, "ticks_idle": self.ticks_idle,
                "tlb_hits": self.tlb_hits, "tlb_misses": self.tlb_misses,
                "page_walks": self.page_walks, "walk_refs": self.walk_refs,
                "exceptions": dict(self.exceptions), "interrupts": dict(self.interrupts),
                **self.vm.as_dict()}

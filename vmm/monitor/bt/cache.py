"""The translation cache of one VM: where translated blocks live in the
window's TC pages, how the VMM finds them, how they chain, and how they die.

    blocks are found by (guest pc, the machine frame the code was read from,
    the virtual mode it was translated for) among their segments' starts
    (entries), the only places translated code is entered
    points       every TC address -> its translator.Point (what an exit there means)

Placement is a bump pointer over the TC pages; when a block does not fit,
the whole cache is flushed and starts again empty (VMware's monitor did the
same).  A link (a branch or j) is patched to its target's translation when both
exist, and a jalr's inline target cache to the target it last saw; a block
that dies first sends every link into it back to its stub, so no live link
leads into a dead block.  Links that leave their guest page go back to their
stubs at every guest TLB flush (unchain_far): the VMM's next transfer there
fetches the page again, as the bare machine's would after the flush.

Each source frame is registered with the machine as a code page (memory.py):
any write to it, by anyone, calls `frame_written`, which kills the frame's
blocks: their lookups go, and every one of their words becomes a `deliver`
callout standing where its Point stood, so translated code running in such a
block (the guest just wrote its own next instruction) leaves at its next word
and the VMM translates the new code.  The Points of dead blocks are kept until
the next flush, so that an exit from a dead word is still understood.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from asm.isa import PAGE_SHIFT, PAGE_SIZE
from vmm.monitor.bt.layout import TC_BASE, TC_PAGES
from vmm.monitor.bt.translator import HYPERCALL, Callout, Point, Translation, op, retarget

TC_END = TC_BASE + TC_PAGES * PAGE_SIZE


@dataclass(eq=False)
class Block:
    """A translation placed at TC address `address`, read from machine
    frame `mfn`, for virtual kernel mode (`kernel`) or virtual user mode."""
    translation: Translation
    address: int
    mfn: int
    kernel: bool
    alive: bool = True
    chained: dict[int, "Block"] = field(default_factory=dict)   # link word index -> the block it goes to
    predicted: "Block | None" = None                            # the block its jalr's cache goes to
    incoming: set = field(default_factory=set)                  # (block, link index or None for its jalr)

    def word_address(self, index: int) -> int:
        return self.address + 4 * index


class TranslationCache:
    """The cache in TC frames `tc_mfns` (machine memory `memory`).
    `watch_code(mfn)` registers a source frame with the machine."""

    def __init__(self, memory, tc_mfns: list[int], watch_code, counters: dict):
        self.memory, self.tc_mfns, self.watch_code, self.counters = memory, tc_mfns, watch_code, counters
        self.points: dict[int, Point] = {}
        self._owners: dict[int, Block] = {}
        self._entries: dict[tuple[int, int], int] = {}
        self._by_frame: dict[int, list[Block]] = {}
        self._next = TC_BASE

    def entry(self, guest_pc: int, mfn: int, kernel: bool) -> int | None:
        """The TC address of the segment starting at guest pc `guest_pc`, read
        from frame `mfn` for virtual kernel (or user) mode, or None."""
        return self._entries.get((guest_pc, mfn, kernel))

    def owner(self, address: int) -> Block | None:
        """The block (live or dead) whose words include TC address `address`."""
        return self._owners.get(address)

    def blocks_of(self, mfn: int) -> list[Block]:
        """The live blocks read from frame `mfn`."""
        return list(self._by_frame.get(mfn, ()))

    def install(self, translation: Translation, mfn: int, kernel: bool) -> Block:
        """Place `translation` (read from frame `mfn`, for virtual kernel or
        user mode), link it both ways to the live blocks of its page and
        mode, and return it."""
        size = 4 * len(translation.words)
        if self._next + size > TC_END:
            self.flush()
        block = Block(translation, self._next, mfn, kernel)
        self._next += size
        for index, word in enumerate(translation.words):
            self._write(block.address + 4 * index, word)
            self.points[block.address + 4 * index] = translation.points[index]
            self._owners[block.address + 4 * index] = block
        for pc, index in translation.entries.items():
            self._entries[(pc, mfn, kernel)] = block.address + 4 * index
        self._by_frame.setdefault(mfn, []).append(block)
        self.watch_code(mfn)
        for other in self._by_frame[mfn]:
            if other.kernel == kernel:
                self._link_out(other)
        self.counters["bt_blocks_translated"] += 1
        self.counters["bt_instructions_translated"] += translation.guest_count
        self.counters["bt_tc_bytes"] = self._next - TC_BASE
        return block

    def link(self, block: Block, index: int, target_mfn: int) -> bool:
        """Patch link word `index` of `block` to its target's segment read
        from frame `target_mfn`, if one is translated; whether it now is chained."""
        target = next(link.target for link in block.translation.links if link.index == index)
        entry = self.entry(target, target_mfn, block.kernel)
        if entry is None or not block.alive:
            return False
        site = block.word_address(index)
        self._write(site, retarget(block.translation.words[index], (entry - site) >> 2))
        self._chain(block, index, self._owners[entry])
        return True

    def predict(self, block: Block, target: int, target_mfn: int) -> bool:
        """Point `block`'s jalr target cache at guest pc `target` (read from
        frame `target_mfn`), if its segment is translated; whether it now is."""
        site, entry = block.translation.jalr, self.entry(target, target_mfn, block.kernel)
        if site is None or entry is None or not block.alive:
            return False
        words = block.translation.words
        self._write(block.word_address(site.hi), words[site.hi] | target >> 12)
        self._write(block.word_address(site.lo), words[site.lo] | target & 0xFFF)
        compare = block.word_address(site.compare)
        self._write(compare, op("bne", rs1=site.s1, rs2=site.s2, target=(block.word_address(site.miss) - compare) >> 2))
        jump = block.word_address(site.jump)
        self._write(jump, retarget(words[site.jump], (entry - jump) >> 2))
        for index in site.after:
            address = block.word_address(index)
            self.points[address] = replace(self.points[address], guest_pc=target)
        self._chain(block, None, self._owners[entry])
        return True

    def _chain(self, block: Block, index: int | None, target: Block) -> None:
        """Record that `block`'s link `index` (None: its jalr cache) now goes to `target`."""
        old = block.predicted if index is None else block.chained.get(index)
        if old is not None:
            old.incoming.discard((block, index))
        if index is None:
            block.predicted = target
        else:
            block.chained[index] = target
        target.incoming.add((block, index))
        self.counters["bt_chains"] += 1

    def _unchain(self, block: Block, index: int | None) -> None:
        """Point `block`'s link `index` (None: its jalr cache) back at its stub."""
        target = block.predicted if index is None else block.chained.pop(index, None)
        if target is None:
            return
        target.incoming.discard((block, index))
        if index is None:
            block.predicted = None
            site = block.translation.jalr
            compare = block.word_address(site.compare)
            self._write(compare, op("jal", rd=0, target=(block.word_address(site.miss) - compare) >> 2))
        else:
            stub = next(link.stub for link in block.translation.links if link.index == index)
            self._write(block.word_address(index),
                        retarget(block.translation.words[index], stub - index))

    def unchain_far(self, page: int | None, holds) -> None:
        """The guest flushed its TLB (`page` None) or one page of it: every
        jalr cache, and every link that leaves its own guest page, going
        there goes back to its stub, unless `holds(target block)`: the
        guest's tables still map the target's page to its frame as a fetch
        finds it (so the bare machine's next fetch there would find the same
        code and change nothing).  Else the next transfer there is the VMM's,
        which fetches again.  (A link within a page is entered only after
        the page was fetched or reached by a link that held.)"""
        verdicts: dict[tuple[int, int, bool], bool] = {}
        for blocks in self._by_frame.values():
            for block in blocks:
                targets = list(block.chained.items()) + [(None, block.predicted)] * (block.predicted is not None)
                for index, target in targets:
                    target_page = target.translation.guest_pc >> PAGE_SHIFT
                    far = target_page != block.translation.guest_pc >> PAGE_SHIFT
                    if not (index is None or far) or page not in (None, target_page):
                        continue
                    key = (target_page, target.mfn, target.kernel)
                    if key not in verdicts:
                        verdicts[key] = holds(target)
                    if not verdicts[key]:
                        self._unchain(block, index)

    def _link_out(self, block: Block) -> None:
        """Chain every link of `block` to its own page whose target is translated now."""
        for link in block.translation.links:
            if link.index not in block.chained and not (link.target ^ block.translation.guest_pc) >> PAGE_SHIFT:
                self.link(block, link.index, block.mfn)

    def frame_written(self, mfn: int) -> None:
        """Machine frame `mfn` was written: its blocks die (module doc)."""
        blocks = self._by_frame.pop(mfn, ())
        for block in blocks:
            self._kill(block)
        if blocks:
            self.counters["bt_invalidations"] += 1

    def retire(self, guest_pc: int) -> None:
        """Every live block holding guest instruction `guest_pc` dies (to be
        translated again differently: adaptive translation)."""
        for mfn, blocks in list(self._by_frame.items()):
            dying = [block for block in blocks if guest_pc in block.translation.starts]
            for block in dying:
                blocks.remove(block)
                self._kill(block)

    def _kill(self, block: Block) -> None:
        """`block` dies: the links into it and out of it go back to their
        stubs, its lookups go, its words become deliver callouts."""
        block.alive = False
        for source, index in list(block.incoming):
            self._unchain(source, index)
        for index in list(block.chained):
            self._unchain(block, index)
        if block.predicted is not None:
            self._unchain(block, None)
        for pc in block.translation.entries:
            key = (pc, block.mfn, block.kernel)
            if self._owners.get(self._entries.get(key)) is block:
                del self._entries[key]
        for index, point in enumerate(block.translation.points):
            address = block.word_address(index)
            self.points[address] = replace(point, callout=Callout("deliver", point.guest_pc))
            self._write(address, HYPERCALL)

    def flush(self) -> None:
        """Empty the cache (every block, point and lookup).  Nothing runs from
        it until the VMM enters a new translation, so the old words may stay."""
        for blocks in self._by_frame.values():
            for block in blocks:
                block.alive = False
        self.points.clear()
        self._owners.clear()
        self._entries.clear()
        self._by_frame.clear()
        self._next = TC_BASE
        self.counters["bt_tc_flushes"] += 1

    def frames(self) -> set[int]:
        """The source frames with live blocks."""
        return set(self._by_frame)

    def _write(self, address: int, word: int) -> None:
        """Write one word of the TC at window address `address`."""
        page = (address - TC_BASE) >> PAGE_SHIFT
        self.memory.write((self.tc_mfns[page] << PAGE_SHIFT) | (address & (PAGE_SIZE - 1)), 4, word)

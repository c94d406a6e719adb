"""One guest kernel basic block translated into Kite32 code for the translation
cache (docs/vmm.md "Binary translation").  A pure function of the guest's
instruction words: no VMM state, so a test can read what comes out.

A block starts at a guest pc and ends at the first unconditional transfer, a
trapping instruction, the end of the guest page or MAX_GUEST instructions.
Each guest instruction becomes:

    IDENT        copied as it is: arithmetic, lui, syscall, break, hypercall,
                 words that do not decode (the machine raises what bare would)
    checked      a load or store: a software-fault-isolation check that its
                 address is below MAPPED_BASE (else the "window" callout, which
                 delivers the bare machine's fault), then the access itself;
                 one check serves the accesses through one base register
                 while it keeps its value (_access)
    inline       rdsr, mfcr, mtcr (but ptb), wrsr, di, ei: loads and stores of
                 the virtual CPU page; wrsr / mtcr status and ei leave through a
                 callout when the write drops to user mode or unmasks a
                 pending interrupt (in virtual user mode only rdsr is inline)
    callout      `hypercall` at a known TC address: the VMM does the rest
                 (privileged: rfe mtcr-ptb tlbinv tlbflush halt wfi vmenter;
                 ptwrite: an adaptively retranslated store into a traced
                 page table)
    call         jal with a link register: lui/ori of the guest's return
                 address, then a jump; jalr: an inline target cache (JalrSite)
                 whose misses are the jalr callout
    branch       bcc / j: to the target's translation once the cache has one
                 (a Link, patched in), else to a "chain" stub

Registers are the guest's at every guest-instruction boundary.  A sequence that
needs a register borrows one it does not otherwise use, keeping the guest's
value in VCPU_SPILL; each word's Point says which (the VMM puts it back when an
exit lands there).

Exact virtual time: the guest must see exactly its own instruction count, but
translated code runs extra instructions.  Code is cut into segments, each
ending at a conditional branch; a segment opens with a prologue that adds the
number of its extra (overhead) words to VCPU_COUNT.  A Point's `adjust` turns
the count into the exact overhead executed when an exit lands at that word:
overhead = count + adjust (the prologue not yet committed: + the overhead words
before it; committed: - the overhead words from it to the segment's end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asm.isa import (BRANCH, BY_MNEMONIC, CR_PTB, CR_STATUS, LOAD_WIDTHS, PAGE_MASK, PDX_SHIFT, PRIVILEGED, REG_AT,
                     STATUS_DEFINED, STATUS_IE, STATUS_KM, STORE_WIDTHS, TRAP, decode, encode)
from vmm.monitor.bt.layout import (MAPPED_BASE, VCPU_COUNT, VCPU_CR, VCPU_PAGE, VCPU_PENDING, VCPU_SPILL,
                                   VCPU_SPILL2, WINDOW_PDX, zero_based)

MAX_GUEST = 64                     # guest instructions in one block at most
assert WINDOW_PDX == (1 << (32 - PDX_SHIFT)) - 1   # the window is the last PDE: srai by PDX_SHIFT gives -1 there
WORD = 0xFFFFFFFF
HYPERCALL = encode(BY_MNEMONIC["hypercall"], {})
SCRATCH_ORDER = (REG_AT, 8, 9, 10)  # at, t0, t1, t2: the first one an instruction does not use


@dataclass(frozen=True)
class Callout:
    """What the VMM does when translated code reaches a callout word.  `kind`:
    privileged, wrsr, jalr, window, ptwrite (the guest instruction at
    `guest_pc`, word `word`); deliver (go on at guest_pc: an interrupt may be
    due, or the word's block died); chain (go on at `target`, and patch the
    link at word `site` to its translation)."""
    kind: str
    guest_pc: int
    word: int = 0
    target: int | None = None
    site: int | None = None          # word index of the link a chain stub stands for


@dataclass(frozen=True)
class Point:
    """One TC word seen from the guest: an exit there is an exit before the
    guest instruction at `guest_pc`, with the guest values of the registers
    in `restore` ((register, virtual-CPU-page offset) pairs) kept in the
    virtual CPU page, and, if `link` is (register, value), that register
    still to be given its value (the guest instruction before wrote it);
    `adjust` as in the module doc; `callout` if the word is one."""
    guest_pc: int
    restore: tuple[tuple[int, int], ...]
    adjust: int
    callout: Callout | None = None
    link: tuple[int, int] | None = None


@dataclass(frozen=True)
class Link:
    """A branch or jump at word `index` to guest pc `target` (its stub, a
    chain callout, at word `stub`)."""
    index: int
    target: int
    stub: int


@dataclass(frozen=True)
class JalrSite:
    """A block's jalr as an inline target cache: words `hi` and `lo` load the
    predicted guest target into `s2`, `compare` checks it against the real
    one (a jal to the miss stub `miss` until a target is predicted, then a
    bne to it), `jump` goes to the target's translation; the words `after`
    stand before the target."""
    hi: int
    lo: int
    compare: int
    jump: int
    miss: int
    after: tuple[int, ...]
    s1: int
    s2: int


@dataclass
class Translation:
    """The translated block of the guest code at `guest_pc`: `words` to place
    in the cache, one Point per word, where each guest instruction's sequence
    starts (`starts`: guest pc -> word index), where each segment starts
    (`entries`: guest pc -> its prologue, the only places translated code is
    entered: elsewhere it would skip the segment's count and the checks
    shared in it, _access), the links, and how many guest instructions it
    translated."""
    guest_pc: int
    words: list[int]
    points: list[Point]
    starts: dict[int, int]
    entries: dict[int, int]
    links: list[Link]
    guest_count: int
    overhead_words: int = 0
    jalr: JalrSite | None = None


@dataclass
class _Word:
    word: int
    guest_pc: int
    spilled: int | None = None
    restore: tuple = ()
    link: tuple[int, int] | None = None
    overhead: bool = False
    callout: Callout | None = None
    segment: int | None = None
    to_stub: int | None = None        # a branch to tail stub number n (its offset filled in at the end)


@dataclass
class _Block:
    """The block being built: body words, then the tail of stubs."""
    body: list[_Word] = field(default_factory=list)
    stubs: list[Callout] = field(default_factory=list)
    starts: dict[int, int] = field(default_factory=dict)
    entries: dict[int, int] = field(default_factory=dict)
    links: list[tuple[int, int]] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)     # the counter store's body index, per segment
    jalr: dict = field(default_factory=dict)
    read_word: object = None
    precise: frozenset = frozenset()
    checked: dict[int, int] = field(default_factory=dict)  # base register -> the lowest offset a check covers

    def emit(self, word: int, guest_pc: int, **details) -> int:
        """Append a body word (`spilled=s`: s's guest value is in VCPU_SPILL)."""
        item = _Word(word, guest_pc, segment=len(self.segments) - 1, **details)
        if item.spilled is not None:
            item.restore = ((item.spilled, VCPU_SPILL),)
        self.body.append(item)
        return len(self.body) - 1

    def stub(self, callout: Callout) -> int:
        self.stubs.append(callout)
        return len(self.stubs) - 1


def op(mnemonic: str, **operands: int) -> int:
    """One encoded Kite32 instruction."""
    return encode(BY_MNEMONIC[mnemonic], operands)


def vcpu(offset: int) -> int:
    """The imm18 that reaches a virtual-CPU-page field from zero."""
    return zero_based(VCPU_PAGE + offset)


def translate(pc: int, read_word, adaptive: frozenset[int] = frozenset(), kernel: bool = True,
              precise: frozenset[int] = frozenset()) -> Translation:
    """Translate the guest block at `pc` (word aligned) for virtual kernel
    mode, or (`kernel` False) for virtual user mode, where every privileged
    instruction is a privileged callout (which reflects the exception) and
    wrsr a wrsr callout.  `read_word(gva)` gives the guest's instruction word
    at any address of pc's page; the stores at the guest pcs in `adaptive`
    become ptwrite callouts; a load or store at a guest pc in `precise` gets
    a check of its own address only (no shared check: see _access)."""
    inline = _INLINE if kernel else _INLINE_USER
    block, start = _Block(read_word=read_word, precise=precise), pc
    _open_segment(block, pc)
    for count in range(1, MAX_GUEST + 1):
        word = read_word(pc)
        ends = _instruction(block, pc, word, adaptive, inline)
        decoded = decode(word)
        if decoded is not None:
            block.checked.pop(decoded.operands.get("rd"), None)      # a check says nothing of a new value
        nxt = (pc + 4) & WORD
        if ends:
            break
        if not nxt & PAGE_MASK:                   # the block ran to the end of its page
            _jump(block, nxt, nxt, overhead=True)
            break
        if count == MAX_GUEST:
            _jump(block, nxt, nxt, overhead=True)
            break
        if _is_conditional(word):
            _open_segment(block, nxt)
        pc = nxt
    return _finish(block, start, count)


def _instruction(block: _Block, pc: int, word: int, adaptive: frozenset[int], inline: dict) -> bool:
    """Emit the translation of one guest instruction; True if the block ends with it."""
    block.starts[pc] = len(block.body)
    decoded = decode(word)
    if decoded is None:
        block.emit(word, pc)
        return True
    insn, ops = decoded.insn, decoded.operands
    name = insn.mnemonic
    if name in LOAD_WIDTHS or name in STORE_WIDTHS:
        _access(block, pc, word, ops, store=name in STORE_WIDTHS, adaptive=pc in adaptive)
        return False
    if name in inline:
        return inline[name](block, pc, word, ops)
    if insn.has(PRIVILEGED):
        block.emit(HYPERCALL, pc, callout=Callout("privileged", pc, word))
        return name in ("rfe", "halt", "vmenter")
    if name == "jal":
        target = (pc + 4 * ops["target"]) & WORD
        if ops["rd"]:
            _call(block, pc, ops["rd"], target)
        else:
            _jump(block, pc, target, overhead=False)
        return True
    if name == "jalr":
        _jalr(block, pc, word, ops)
        return True
    if insn.has(BRANCH):
        target = (pc + 4 * ops["target"]) & WORD
        _branch(block, pc, word, target)
        return False
    block.emit(word, pc)
    return insn.has(TRAP)


def _is_conditional(word: int) -> bool:
    decoded = decode(word)
    return decoded is not None and decoded.insn.fmt == "B"


def _open_segment(block: _Block, pc: int) -> None:
    """The counting prologue of a new segment, before the guest instruction
    at `pc` (its increment is filled in by _finish)."""
    block.segments.append(-1)
    block.checked.clear()
    block.entries[pc] = len(block.body)
    at = REG_AT
    block.emit(op("sw", rs2=at, rs1=0, imm=vcpu(VCPU_SPILL)), pc, overhead=True)
    block.emit(op("lw", rd=at, rs1=0, imm=vcpu(VCPU_COUNT)), pc, spilled=at, overhead=True)
    block.emit(op("addi", rd=at, rs1=at, imm=0), pc, spilled=at, overhead=True)
    block.segments[-1] = block.emit(op("sw", rs2=at, rs1=0, imm=vcpu(VCPU_COUNT)), pc, spilled=at,
                                    overhead=True)
    block.emit(op("lw", rd=at, rs1=0, imm=vcpu(VCPU_SPILL)), pc, spilled=at, overhead=True)


def _scratch(*used: int) -> int:
    """A register to borrow that the instruction does not name."""
    return next(reg for reg in SCRATCH_ORDER if reg not in used)


def _access(block: _Block, pc: int, word: int, ops: dict, store: bool, adaptive: bool) -> None:
    """A load or store, checked against the window unless its address is a
    constant (base `zero`), which is decided here.

    One check may serve every access with the same base register up to the
    register's next write in the segment (a segment is entered only at its
    start, or resumed where it stopped with its registers as they were): it
    checks base + the lowest offset among them, X, against WINDOW_BASE, so
    every one of them, at X + d with 0 <= d < 2^18, is below MAPPED_BASE (it
    may land in the reserved, unmapped part of the window, which faults by
    itself).  A lone access checks its own address against MAPPED_BASE."""
    data, base = (ops["rs2"] if store else ops["rd"]), ops["rs1"]
    if base == 0:
        if ops["imm"] & WORD >= MAPPED_BASE:
            block.emit(HYPERCALL, pc, callout=Callout("window", pc, word))
        else:
            block.emit(word, pc)
        return
    if store and adaptive:
        block.emit(HYPERCALL, pc, callout=Callout("ptwrite", pc, word))
        return
    if base in block.checked and ops["imm"] >= block.checked[base]:
        block.emit(word, pc)
        return
    accesses, lowest = _same_base_run(block, pc, base)
    shared = accesses > 1 and pc not in block.precise
    s = _scratch(base, data)
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_SPILL)), pc, overhead=True)
    stub = block.stub(Callout("window", pc, word))
    if shared:
        block.emit(op("addi", rd=s, rs1=base, imm=lowest), pc, spilled=s, overhead=True)
        block.emit(op("srai", rd=s, rs1=s, imm=PDX_SHIFT), pc, spilled=s, overhead=True)   # -1: PDE 1023
        block.emit(op("addi", rd=s, rs1=s, imm=1), pc, spilled=s, overhead=True)
    else:
        block.emit(op("addi", rd=s, rs1=base, imm=ops["imm"]), pc, spilled=s, overhead=True)
        block.emit(op("sltiu", rd=s, rs1=s, imm=zero_based(MAPPED_BASE)), pc, spilled=s, overhead=True)
    block.emit(op("beq", rs1=s, rs2=0, target=0), pc, spilled=s, overhead=True, to_stub=stub)
    block.emit(op("lw", rd=s, rs1=0, imm=vcpu(VCPU_SPILL)), pc, spilled=s, overhead=True)
    block.emit(word, pc)
    if shared:
        block.checked[base] = lowest


def _same_base_run(block: _Block, pc: int, base: int) -> tuple[int, int]:
    """(how many, the lowest offset of) the loads and stores with base
    register `base` from the one at `pc` on, before `base` is written or the
    segment can be left (a branch, a jump, a trap, a callout, an
    instruction that may exit and be completed by the VMM)."""
    accesses, lowest = 0, None
    for address in range(pc, (pc | PAGE_MASK) + 1, 4):
        decoded = decode(block.read_word(address))
        if decoded is None:
            break
        name, ops = decoded.insn.mnemonic, decoded.operands
        if (name in LOAD_WIDTHS or name in STORE_WIDTHS) and ops["rs1"] == base:
            accesses += 1
            lowest = ops["imm"] if lowest is None else min(lowest, ops["imm"])
        elif not _plain(decoded):
            break
        if ops.get("rd") == base:
            break
    return accesses, lowest


def _plain(decoded) -> bool:
    """Whether the instruction neither leaves the segment nor may be completed by the VMM."""
    insn = decoded.insn
    return not (insn.has(BRANCH) or insn.has(TRAP) or insn.has(PRIVILEGED) or insn.mnemonic in _INLINE)


def _rdsr(block: _Block, pc: int, word: int, ops: dict) -> bool:
    block.emit(op("lw", rd=ops["rd"], rs1=0, imm=vcpu(VCPU_CR + 4 * CR_STATUS)), pc)
    return False


def _mfcr(block: _Block, pc: int, word: int, ops: dict) -> bool:
    block.emit(op("lw", rd=ops["rd"], rs1=0, imm=vcpu(VCPU_CR + 4 * ops["cr"])), pc)
    return False


def _mtcr(block: _Block, pc: int, word: int, ops: dict) -> bool:
    if ops["cr"] == CR_PTB:
        block.emit(HYPERCALL, pc, callout=Callout("privileged", pc, word))
        return False
    if ops["cr"] == CR_STATUS:
        return _wrsr(block, pc, word, ops)
    block.emit(op("sw", rs2=ops["rs1"], rs1=0, imm=vcpu(VCPU_CR + 4 * ops["cr"])), pc)
    return False


def _wrsr(block: _Block, pc: int, word: int, ops: dict) -> bool:
    """Kernel-mode status write: inline unless it clears KM (the wrsr callout
    leaves translated code) or unmasks a pending interrupt (deliver)."""
    rs1 = ops["rs1"]
    s = _scratch(rs1)
    nxt = (pc + 4) & WORD
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_SPILL)), pc, overhead=True)
    block.emit(op("andi", rd=s, rs1=rs1, imm=STATUS_KM), pc, spilled=s, overhead=True)
    stub = block.stub(Callout("wrsr", pc, word))
    block.emit(op("beq", rs1=s, rs2=0, target=0), pc, spilled=s, overhead=True, to_stub=stub)
    block.emit(op("andi", rd=s, rs1=rs1, imm=STATUS_DEFINED), pc, spilled=s, overhead=True)
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_CR + 4 * CR_STATUS)), pc, spilled=s)
    _unmask_check(block, nxt, s, lambda: op("and", rd=s, rs1=s, rs2=rs1))
    return False


def _ei(block: _Block, pc: int, word: int, ops: dict) -> bool:
    s = REG_AT
    nxt = (pc + 4) & WORD
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_SPILL)), pc, overhead=True)
    block.emit(op("lw", rd=s, rs1=0, imm=vcpu(VCPU_CR + 4 * CR_STATUS)), pc, spilled=s, overhead=True)
    block.emit(op("ori", rd=s, rs1=s, imm=STATUS_IE), pc, spilled=s, overhead=True)
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_CR + 4 * CR_STATUS)), pc, spilled=s)
    _unmask_check(block, nxt, s, None)
    return False


def _unmask_check(block: _Block, nxt: int, s: int, mask) -> None:
    """After a status write that may set IE (committed: the words stand before
    `nxt`): leave through `deliver` if a virtual line is pending (and, with
    `mask`, the written value has IE), then give the borrowed register back."""
    block.emit(op("lw", rd=s, rs1=0, imm=vcpu(VCPU_PENDING)), nxt, spilled=s, overhead=True)
    if mask is not None:
        block.emit(mask(), nxt, spilled=s, overhead=True)
    stub = block.stub(Callout("deliver", nxt))
    block.emit(op("bne", rs1=s, rs2=0, target=0), nxt, spilled=s, overhead=True, to_stub=stub)
    block.emit(op("lw", rd=s, rs1=0, imm=vcpu(VCPU_SPILL)), nxt, spilled=s, overhead=True)


def _di(block: _Block, pc: int, word: int, ops: dict) -> bool:
    s = REG_AT
    nxt = (pc + 4) & WORD
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_SPILL)), pc, overhead=True)
    block.emit(op("lw", rd=s, rs1=0, imm=vcpu(VCPU_CR + 4 * CR_STATUS)), pc, spilled=s, overhead=True)
    block.emit(op("andi", rd=s, rs1=s, imm=~STATUS_IE), pc, spilled=s, overhead=True)
    block.emit(op("sw", rs2=s, rs1=0, imm=vcpu(VCPU_CR + 4 * CR_STATUS)), pc, spilled=s)
    block.emit(op("lw", rd=s, rs1=0, imm=vcpu(VCPU_SPILL)), nxt, spilled=s, overhead=True)
    return False


def _wrsr_user(block: _Block, pc: int, word: int, ops: dict) -> bool:
    block.emit(HYPERCALL, pc, callout=Callout("wrsr", pc, word))
    return False


_INLINE = {"rdsr": _rdsr, "mfcr": _mfcr, "mtcr": _mtcr, "wrsr": _wrsr, "ei": _ei, "di": _di}
_INLINE_USER = {"rdsr": _rdsr, "wrsr": _wrsr_user}


def _jump(block: _Block, pc: int, target: int, overhead: bool) -> None:
    """`j target`: the guest's own (the commit, standing before `pc`), or
    an extra one (`overhead`: the fall-through at the end of the page or at
    MAX_GUEST, the jump after a call's link), standing before the target."""
    index = block.emit(op("jal", rd=0, target=0), target if overhead else pc, overhead=overhead)
    _link(block, index, target)


def _link(block: _Block, index: int, target: int) -> None:
    """Word `index` (a branch or jal) is a link to guest pc `target`: to a
    chain stub until the cache points it at the target's translation."""
    block.body[index].to_stub = block.stub(Callout("chain", target, target=target, site=index))
    block.links.append((index, target))


def _branch(block: _Block, pc: int, word: int, target: int) -> None:
    """A conditional branch, retargeted to a stub (or, once linked, the target's translation)."""
    decoded = decode(word)
    index = block.emit(encode(decoded.insn, dict(decoded.operands, target=0)), pc)
    _link(block, index, target)


def _call(block: _Block, pc: int, rd: int, target: int) -> None:
    """`jal rd, target`: the link register gets the guest's return address
    (lui, the commit, then ori), then a jump to the target's translation."""
    ret = (pc + 4) & WORD
    block.emit(op("lui", rd=rd, imm=ret >> 12), pc)
    block.emit(op("ori", rd=rd, rs1=rd, imm=ret & 0xFFF), target, overhead=True, link=(rd, ret))
    _jump(block, target, target, overhead=True)


def _jalr(block: _Block, pc: int, word: int, ops: dict) -> None:
    """`jalr rd, rs1, imm` as an inline target cache (JalrSite): the real
    target in s1 against the predicted one in s2; a hit jumps straight to the
    prediction's translation, a miss (and every try before a prediction) is
    the jalr callout, which predicts.  With a link register, `lui rd` is the
    commit; without, the final jump is."""
    rd, rs1 = ops["rd"], ops["rs1"]
    s1 = _scratch(rs1, rd)
    s2 = _scratch(rs1, rd, s1)
    both = ((s1, VCPU_SPILL), (s2, VCPU_SPILL2))
    block.emit(op("sw", rs2=s1, rs1=0, imm=vcpu(VCPU_SPILL)), pc, overhead=True)
    block.emit(op("sw", rs2=s2, rs1=0, imm=vcpu(VCPU_SPILL2)), pc, restore=both[:1], overhead=True)
    block.emit(op("addi", rd=s1, rs1=rs1, imm=ops["imm"]), pc, restore=both, overhead=True)
    hi = block.emit(op("lui", rd=s2, imm=0), pc, restore=both, overhead=True)
    lo = block.emit(op("ori", rd=s2, rs1=s2, imm=0), pc, restore=both, overhead=True)
    miss = block.stub(Callout("jalr", pc, word))
    compare = block.emit(op("jal", rd=0, target=0), pc, restore=both, overhead=True, to_stub=miss)
    after = []
    if rd:
        ret = (pc + 4) & WORD
        block.emit(op("lui", rd=rd, imm=ret >> 12), pc, restore=both)
        after.append(block.emit(op("ori", rd=rd, rs1=rd, imm=ret & 0xFFF), pc, restore=both, overhead=True,
                                link=(rd, ret)))
    reloads = [block.emit(op("lw", rd=s1, rs1=0, imm=vcpu(VCPU_SPILL)), pc, restore=both, overhead=True),
               block.emit(op("lw", rd=s2, rs1=0, imm=vcpu(VCPU_SPILL2)), pc, restore=both[1:], overhead=True)]
    jump = block.emit(op("jal", rd=0, target=0), pc, overhead=bool(rd), to_stub=miss)
    if rd:                  # past the commit, the reloads and the jump stand before the target
        after += reloads + [jump]
    block.jalr = dict(hi=hi, lo=lo, compare=compare, jump=jump, miss=miss, after=tuple(after), s1=s1, s2=s2)


def _finish(block: _Block, pc: int, count: int) -> Translation:
    """Fill in the stubs' offsets and the prologues' increments; the Points
    (module doc: adjust), a stub's those of the point just after its branch."""
    body = block.body
    totals: dict[int, int] = {}
    for item in body:
        totals[item.segment] = totals.get(item.segment, 0) + item.overhead
    for segment, store in enumerate(block.segments):
        body[store - 1].word |= totals.get(segment, 0) & 0x3FFFF
    words, points, seen, stub_points = [], [], {}, {}
    for index, item in enumerate(body):
        segment = item.segment
        before = seen.get(segment, 0)
        adjust = before if index <= block.segments[segment] else before - totals[segment]
        seen[segment] = before + item.overhead
        if item.to_stub is not None:
            item.word = retarget(item.word, len(body) + item.to_stub - index)
            stub_points.setdefault(item.to_stub, (item.restore, seen[segment] - totals[segment]))
        words.append(item.word)
        points.append(Point(item.guest_pc, item.restore, adjust, item.callout, item.link))
    for number, callout in enumerate(block.stubs):
        restore, adjust = stub_points[number]
        words.append(HYPERCALL)
        points.append(Point(callout.target if callout.kind == "chain" else callout.guest_pc, restore, adjust,
                            callout))
    jalr = None
    if block.jalr:
        jalr = JalrSite(**dict(block.jalr, miss=len(body) + block.jalr["miss"]))
    links = [Link(index, target, len(body) + block.body[index].to_stub) for index, target in block.links]
    return Translation(pc, words, points, dict(block.starts), dict(block.entries), links, count,
                       sum(totals.values()), jalr)


def retarget(word: int, offset_words: int) -> int:
    """`word` (a branch or jal) with its target offset set to `offset_words`."""
    decoded = decode(word)
    return encode(decoded.insn, dict(decoded.operands, target=offset_words))

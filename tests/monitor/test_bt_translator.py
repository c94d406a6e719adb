"""vmm/monitor/bt/translator.py: what one guest block becomes, read word by word
(the translation is a pure function of the guest's words, docs/vmm.md
"Binary translation")."""

from __future__ import annotations

from asm.isa import decode
from vmm.monitor.bt.layout import MAPPED_BASE, VCPU_CR, VCPU_PAGE
from vmm.monitor.bt.translator import HYPERCALL, MAX_GUEST, op, translate

BASE = 0x00100000
ILLEGAL = 0x00000000


def block(*words: int, pc: int = BASE, kernel: bool = True):
    """The translation of `words` placed at `pc` (the rest of the page illegal)."""
    return translate(pc, lambda gva: words[(gva - pc) // 4] if 0 <= gva - pc < 4 * len(words) else ILLEGAL,
                     kernel=kernel)


def mnemonics(translation) -> list[str]:
    return [decode(word).insn.mnemonic if decode(word) else "??" for word in translation.words]


def callouts(translation) -> list[str]:
    return [point.callout.kind for point in translation.points if point.callout is not None]


def test_plain_instructions_are_copied_as_they_are_after_the_segments_count():
    add, j = op("add", rd=4, rs1=5, rs2=6), op("jal", rd=0, target=-1)
    t = block(add, j)
    assert t.words[t.starts[BASE]] == add
    # the prologue: borrow at, add the segment's extra words to VCPU_COUNT, give at back
    assert mnemonics(t)[:5] == ["sw", "lw", "addi", "sw", "lw"]
    assert t.guest_count == 2 and t.entries == {BASE: 0}


def test_the_counts_increment_is_the_number_of_extra_words_in_its_segment():
    t = block(op("addi", rd=8, rs1=8, imm=1), op("lw", rd=9, rs1=8, imm=0), op("jal", rd=0, target=-2))
    increment = decode(t.words[2]).operands["imm"]
    stubs = sum(point.callout is not None for point in t.points)
    # every word that is neither one of the 3 guest instructions nor a stub is extra: 5 prologue + 5 check
    assert increment == len(t.words) - t.guest_count - stubs == t.overhead_words == 10


def test_rdsr_and_mfcr_read_the_virtual_cpu_page_from_zero():
    t = block(op("rdsr", rd=8), op("mfcr", rd=9, cr=2), op("jal", rd=0, target=0))
    rdsr, mfcr = (decode(t.words[t.starts[BASE + offset]]) for offset in (0, 4))
    assert (rdsr.insn.mnemonic, rdsr.operands) == ("lw", {"rd": 8, "rs1": 0, "imm": VCPU_PAGE - (1 << 32)})
    assert mfcr.operands["imm"] == VCPU_PAGE + VCPU_CR + 4 * 2 - (1 << 32)


def test_a_load_checks_its_address_against_the_window_before_it_runs():
    load = op("lw", rd=4, rs1=5, imm=8)
    t = block(load, op("jal", rd=0, target=-1))
    at = t.starts[BASE]
    check = [decode(word) for word in t.words[at:at + 6]]
    assert [d.insn.mnemonic for d in check] == ["sw", "addi", "sltiu", "beq", "lw", "lw"]
    assert check[2].operands["imm"] == MAPPED_BASE - (1 << 32) and t.words[at + 5] == load
    stub = at + 3 + check[3].operands["target"]
    assert t.words[stub] == HYPERCALL and t.points[stub].callout.kind == "window"
    assert t.points[stub].guest_pc == BASE and t.points[stub].restore    # the borrowed register goes back


def test_a_constant_address_in_the_window_is_a_window_callout_and_one_below_it_is_copied():
    inside, below = op("sw", rs2=4, rs1=0, imm=-4096), op("sw", rs2=4, rs1=0, imm=0x100)
    t = block(inside, below, op("jal", rd=0, target=-2))
    assert t.words[t.starts[BASE]] == HYPERCALL and t.points[t.starts[BASE]].callout.kind == "window"
    assert t.words[t.starts[BASE + 4]] == below


def test_a_conditional_branch_ends_its_segment_and_the_next_one_counts_again():
    t = block(op("beq", rs1=4, rs2=0, target=2), op("addi", rd=4, rs1=4, imm=1), op("jal", rd=0, target=-2))
    assert set(t.entries) == {BASE, BASE + 4}
    assert mnemonics(t)[t.entries[BASE + 4]:t.entries[BASE + 4] + 5] == ["sw", "lw", "addi", "sw", "lw"]
    assert {link.target for link in t.links} == {BASE + 8, BASE}       # beq's target, j's target


def test_privileged_instructions_are_callouts_and_in_user_mode_so_is_mfcr():
    kernel = block(op("tlbflush"), op("mfcr", rd=4, cr=4), op("halt"))
    user = block(op("mfcr", rd=4, cr=4), op("halt"), kernel=False)
    assert callouts(kernel)[:1] == ["privileged"] and kernel.words[kernel.starts[BASE + 4]] != HYPERCALL
    assert user.words[user.starts[BASE]] == HYPERCALL and callouts(user)[0] == "privileged"


def test_a_word_that_does_not_decode_is_copied_and_ends_the_block():
    t = block(op("addi", rd=4, rs1=4, imm=1), ILLEGAL, op("addi", rd=4, rs1=4, imm=2))
    assert t.guest_count == 2 and t.words[t.starts[BASE + 4]] == ILLEGAL and BASE + 8 not in t.starts


def test_a_block_ends_at_its_page_and_links_to_the_next_pages_first_instruction():
    last = 0x00100FFC
    t = block(op("addi", rd=4, rs1=4, imm=1), pc=last)
    assert t.guest_count == 1 and [link.target for link in t.links] == [last + 4]


def test_a_block_ends_after_max_guest_instructions_with_a_jump_to_the_next():
    t = block(*[op("addi", rd=4, rs1=4, imm=1)] * (MAX_GUEST + 4))
    assert t.guest_count == MAX_GUEST and [link.target for link in t.links] == [BASE + 4 * MAX_GUEST]


def test_a_call_puts_the_guests_return_address_in_the_link_register():
    t = block(op("jal", rd=1, target=16))
    lui, ori = (decode(word) for word in t.words[t.starts[BASE]:t.starts[BASE] + 2])
    assert (lui.operands["imm"] << 12 | ori.operands["imm"]) == BASE + 4
    assert t.points[t.starts[BASE] + 1].link == (1, BASE + 4)       # an exit between them finishes the link
    assert [link.target for link in t.links] == [BASE + 64]


def test_jalr_is_an_inline_target_cache_that_misses_until_the_vmm_predicts():
    t = block(op("jalr", rd=0, rs1=1, imm=0))
    site = t.jalr
    assert decode(t.words[site.compare]).insn.mnemonic == "jal"          # no prediction yet: always the miss
    assert t.points[site.miss].callout.kind == "jalr" and site.s1 != 1 and site.s2 != 1


def test_a_jalrs_words_before_its_commit_stand_before_it_and_those_after_before_its_target():
    ret, call = block(op("jalr", rd=0, rs1=1, imm=0)), block(op("jalr", rd=1, rs1=8, imm=0))
    # a return's commit is its final jump: nothing it runs before that has retired it
    assert ret.jalr.after == ()
    # an indirect call commits with lui of the link: its ori, the reloads and the jump come after
    assert [decode(call.words[index]).insn.mnemonic for index in call.jalr.after] == ["ori", "lw", "lw", "jal"]

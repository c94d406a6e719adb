"""asm.disasm: canonical text for every word, and text that re-assembles to the same word."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from asm import isa
from asm.disasm import disassemble_word
from asm.linker import LinkOptions, link
from tests.asm.helpers import assemble, word_at

EXAMPLES = Path(__file__).resolve().parents[2] / "guestos" / "examples"


def _w(mnemonic: str, **operands: int) -> int:
    return isa.encode(isa.BY_MNEMONIC[mnemonic], operands)


def _names(address: int) -> str | None:
    return {0x00100018: "puts+0x8", 0x00100000: "_start"}.get(address)


# (word, pc, expected text) -- the golden table, one line per operand syntax of asm/isa.py
GOLDEN = [
    (_w("add", rd=4, rs1=5, rs2=6), 0, "add a0, a1, a2"),
    (_w("addi", rd=4, rs1=0, imm=5), 0, "addi a0, zero, 5"),
    (_w("addi", rd=2, rs1=2, imm=-16), 0, "addi sp, sp, -16"),
    (_w("lw", rd=9, rs1=8, imm=8), 0, "lw t1, 8(t0)"),
    (_w("sw", rs2=1, rs1=2, imm=-4), 0, "sw ra, -4(sp)"),
    (_w("lbu", rd=15, rs1=12, imm=0), 0, "lbu s3, 0(s0)"),
    (_w("lui", rd=8, imm=0xF0000), 0, "lui t0, 0xf0000"),
    (_w("lui", rd=8, imm=0), 0, "lui t0, 0x0"),
    (_w("mfcr", rd=8, cr=2), 0, "mfcr t0, cause"),
    (_w("mtcr", cr=1, rs1=8), 0, "mtcr tvec, t0"),
    (_w("rdsr", rd=4), 0, "rdsr a0"),
    (_w("wrsr", rs1=4), 0, "wrsr a0"),
    (_w("tlbinv", rs1=3), 0, "tlbinv at"),
    (_w("jalr", rd=0, rs1=1, imm=0), 0, "jalr zero, ra, 0"),
    (_w("halt"), 0, "halt"),
    (_w("syscall"), 0, "syscall"),
    (_w("beq", rs1=9, rs2=0, target=5), 0x00100004, "beq t1, zero, . + 20  # 0x00100018 <puts+0x8>"),
    (_w("bne", rs1=9, rs2=0, target=-1), 0x00100004, "bne t1, zero, . - 4  # 0x00100000 <_start>"),
    (_w("jal", rd=1, target=0), 0x00100020, "jal ra, .  # 0x00100020"),
    (_w("jal", rd=0, target=-(1 << 21)), 0x00100000, "jal zero, . - 8388608  # 0xff900000"),
    (0x12345678, 0, ".word 0x12345678"),
    (_w("add", rd=1, rs1=2, rs2=3) | 1, 0, ".word 0x0448c001"),     # reserved bits set
    (_w("mfcr", rd=1, cr=0) | 8, 0, ".word 0xc0400008"),             # control register 8
    (0, 0, ".word 0x00000000"),
]


@pytest.mark.parametrize("word, pc, expected", GOLDEN)
def test_golden_disassembly(word, pc, expected):
    assert disassemble_word(word, pc, _names) == expected


def test_target_comment_is_the_bare_address_without_a_symbolizer():
    assert disassemble_word(_w("beq", rs1=9, rs2=0, target=5), 0x00100004) == "beq t1, zero, . + 20  # 0x00100018"


def test_target_address_wraps_at_32_bits():
    assert disassemble_word(_w("jal", rd=0, target=1), 0xFFFFFFFC).endswith("# 0x00000000")


# --- re-assembly: disassembling and assembling gives the same bytes ----------------------------


def _reassemble(lines: list[str]) -> bytes:
    """The .text bytes of `lines` assembled as one program."""
    return bytes(assemble(".text\n" + "\n".join(lines) + "\n", "dis.s").section(".text").data)


def _operand_values(insn: isa.Insn):
    strategies = {role: st.integers(*isa.operand_range(insn, role)) for role in insn.roles}
    return st.fixed_dictionaries(strategies).map(lambda ops: isa.encode(insn, ops))


VALID_WORDS = st.sampled_from(isa.INSTRUCTIONS).flatmap(_operand_values)


@settings(max_examples=300, deadline=None)
@given(st.lists(VALID_WORDS, min_size=1, max_size=20))
def test_random_valid_instructions_reassemble_to_the_same_words(words):
    lines = [disassemble_word(word, 4 * index) for index, word in enumerate(words)]
    expected = b"".join(word.to_bytes(4, "little") for word in words)
    assert _reassemble(lines) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=20))
def test_arbitrary_words_reassemble_to_the_same_words(words):
    lines = [disassemble_word(word, 4 * index) for index, word in enumerate(words)]
    assert _reassemble(lines) == b"".join(word.to_bytes(4, "little") for word in words)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.s")))
def test_linked_example_programs_disassemble_and_reassemble_identically(example):
    path = EXAMPLES / example
    image = ELFFile(io.BytesIO(link([assemble(path.read_text(encoding="utf-8"), str(path))], LinkOptions())))
    code = image.get_section_by_name(".text").data()
    image_words = [word_at(code, offset) for offset in range(0, len(code) - len(code) % 4, 4)]
    lines = [disassemble_word(word, 0x100000 + 4 * index) for index, word in enumerate(image_words)]
    assert _reassemble(lines) == bytes(code[:4 * len(image_words)])

"""The ISA table in asm/isa.py is self-consistent: encode and decode are exact
inverses over every instruction form and operand value, decode rejects every
word that is not a valid instruction, and the table's formats are well formed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm.isa import (operand_range, BY_MNEMONIC, BY_OPCODE, CR_NAMES, FORMATS, INSTRUCTIONS, LOAD, LOAD_WIDTHS, OPCODE,
                     STORE, STORE_WIDTHS, EncodeError, Field, decode, encode, field_for)

WORD_MASK = 0xFFFFFFFF
ALL_OPCODES = range(1 << OPCODE.width)
UNKNOWN_OPCODES = [op for op in ALL_OPCODES if op not in BY_OPCODE]
CR_INSNS = [insn for insn in INSTRUCTIONS if "cr" in insn.roles]


def role_values(insn, role: str) -> st.SearchStrategy[int]:
    """Every value operand `role` of `insn` can take: its field's whole range,
    except `cr` (a real control register) and the shift amounts (0..31)."""
    return st.integers(*operand_range(insn, role))


@st.composite
def instruction_forms(draw) -> tuple:
    """(insn, operands): any instruction with any valid operand values."""
    insn = draw(st.sampled_from(INSTRUCTIONS))
    operands = {role: draw(role_values(insn, role)) for role in insn.roles}
    return insn, operands


def used_mask(insn) -> int:
    """Bits of the word that `insn` gives meaning to: the opcode and its operand fields."""
    mask = OPCODE.mask << OPCODE.shift
    for role in insn.roles:
        field = field_for(insn, role)
        mask |= field.mask << field.shift
    return mask


def bits(field: Field) -> int:
    """The field's bits, in place within the word."""
    return field.mask << field.shift


def valid_operands(insn) -> dict[str, int]:
    """Some operands of `insn` that encode: the low end of every role's range, cr 0."""
    return {role: operand_range(insn, role)[0] for role in insn.roles}


# --- encode / decode round trip -------------------------------------------------


@settings(max_examples=3000, deadline=None)
@given(instruction_forms())
def test_decode_of_encode_is_the_identity_for_every_form(form):
    insn, operands = form
    word = encode(insn, operands)
    assert 0 <= word <= WORD_MASK
    decoded = decode(word)
    assert decoded is not None, f"{insn.mnemonic} {operands} -> {word:#010x} does not decode"
    assert decoded.insn == insn
    assert decoded.operands == operands


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_extreme_operand_values_round_trip(insn):
    for pick in (0, 1):   # every role at the bottom, then at the top of its range
        operands = {role: operand_range(insn, role)[pick] for role in insn.roles}
        assert decode(encode(insn, operands)) == (insn, operands)


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, WORD_MASK))
def test_every_word_that_decodes_re_encodes_to_itself(word):
    decoded = decode(word)
    if decoded is not None:
        assert encode(decoded.insn, decoded.operands) == word


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_out_of_range_operand_is_an_encode_error(insn):
    for role in insn.roles:
        low, high = operand_range(insn, role)
        for bad in (low - 1, high + 1):
            operands = dict(valid_operands(insn), **{role: bad})
            with pytest.raises(EncodeError, match="out of range"):
                encode(insn, operands)


# --- decode rejects invalid words -------------------------------------------------


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_decode_rejects_any_non_zero_unused_bit(insn):
    word = encode(insn, valid_operands(insn))
    unused = ~used_mask(insn) & WORD_MASK
    for bit in range(32):
        if unused >> bit & 1:
            assert decode(word | 1 << bit) is None, f"{insn.mnemonic} accepted bit {bit}"


def test_decode_rejects_unknown_opcodes():
    assert UNKNOWN_OPCODES, "every opcode is assigned: nothing to reject"
    for opcode in UNKNOWN_OPCODES:
        assert decode(opcode << OPCODE.shift) is None, f"opcode {opcode:#04x}"


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(UNKNOWN_OPCODES), st.integers(0, (1 << OPCODE.shift) - 1))
def test_decode_rejects_unknown_opcodes_whatever_the_other_bits(opcode, rest):
    assert decode(opcode << OPCODE.shift | rest) is None


def raw_word(insn, operands: dict[str, int]) -> int:
    """The word with these operand values packed into their fields, unchecked
    (encode refuses values outside operand_range)."""
    word = insn.opcode << OPCODE.shift
    for role, value in operands.items():
        field = field_for(insn, role)
        word |= (value & field.mask) << field.shift
    return word


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(CR_INSNS), st.integers(len(CR_NAMES), FORMATS["I"]["cr"].range()[1]))
def test_decode_rejects_control_register_numbers_of_8_and_more(insn, number):
    operands = dict(valid_operands(insn), cr=number)
    assert decode(raw_word(insn, operands)) is None


@pytest.mark.parametrize("insn", CR_INSNS, ids=lambda insn: insn.mnemonic)
def test_decode_rejects_negative_control_register_numbers(insn):
    assert decode(raw_word(insn, dict(valid_operands(insn), cr=-1))) is None


SHIFT_INSNS = [BY_MNEMONIC[name] for name in ("slli", "srli", "srai")]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SHIFT_INSNS),
       st.integers(-(1 << 17), (1 << 17) - 1).filter(lambda amount: not 0 <= amount <= 31))
def test_decode_rejects_immediate_shift_amounts_outside_0_to_31(insn, amount):
    """docs/isa.md: "A hand-made word with another amount does not decode"."""
    assert decode(raw_word(insn, dict(valid_operands(insn), imm=amount))) is None


def test_the_word_0x53b00020_is_slli_by_32_and_does_not_decode():
    assert raw_word(BY_MNEMONIC["slli"], {"rd": 14, "rs1": 12, "imm": 32}) == 0x53B00020
    assert decode(0x53B00020) is None


def test_the_all_zero_word_is_not_an_instruction():
    assert decode(0) is None


# --- the table itself ------------------------------------------------------------


def test_opcodes_are_unique_and_non_zero():
    opcodes = [insn.opcode for insn in INSTRUCTIONS]
    assert len(set(opcodes)) == len(opcodes)
    assert all(0 < op < 1 << OPCODE.width for op in opcodes)


def test_mnemonics_are_unique_and_indexed():
    assert len(BY_MNEMONIC) == len(INSTRUCTIONS)
    assert all(BY_MNEMONIC[insn.mnemonic] is insn and BY_OPCODE[insn.opcode] is insn
               for insn in INSTRUCTIONS)


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_every_role_in_the_syntax_is_a_field_of_the_format(insn):
    assert insn.fmt in FORMATS
    for role in insn.roles:
        assert role in FORMATS[insn.fmt], f"{insn.mnemonic}: '{role}' is not a field of {insn.fmt}"
    assert len(set(insn.roles)) == len(insn.roles), f"{insn.mnemonic} repeats a role"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fields_of_a_format_do_not_overlap_and_fit_below_the_opcode(fmt):
    distinct = set(FORMATS[fmt].values())   # `cr` and `imm` of I name one field
    taken = 0
    for field in distinct:
        assert field.shift + field.width <= OPCODE.shift, f"{fmt}: {field} reaches the opcode"
        assert not taken & bits(field), f"{fmt}: {field} overlaps another field"
        taken |= bits(field)


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_operands_of_an_instruction_occupy_disjoint_bits(insn):
    taken = bits(OPCODE)
    for role in insn.roles:
        field = field_for(insn, role)
        assert not taken & bits(field), f"{insn.mnemonic}: '{role}' overlaps another operand"
        taken |= bits(field)


def test_load_and_store_widths_cover_exactly_the_memory_instructions():
    assert set(LOAD_WIDTHS) == {insn.mnemonic for insn in INSTRUCTIONS if insn.has(LOAD)}
    assert set(STORE_WIDTHS) == {insn.mnemonic for insn in INSTRUCTIONS if insn.has(STORE)}
    # the width is in the mnemonic: w(ord) 4, h(alf) 2, b(yte) 1; signed unless it ends in u
    for mnemonic, (width, signed) in LOAD_WIDTHS.items():
        assert width == {"w": 4, "h": 2, "b": 1}[mnemonic[1]] and signed == (width < 4 and mnemonic[-1] != "u")

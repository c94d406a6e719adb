"""Every entry of the ISA table has an implementation in both engines that
execute instructions: a template in the machine's block translator and an
executor in the machine simulator.  A new instruction added to asm/isa.py
fails here until both know it."""

from __future__ import annotations

import pytest

from asm.isa import BRANCH, INSTRUCTIONS, LOAD_WIDTHS, PRIVILEGED, STORE_WIDTHS, encode, operand_range
from vmm.machine import translate
from vmm.machine.translate import Context, Site
from vmm.monitor import simulate

SIMULATOR_TABLES = {"REGISTER_OPS": simulate.REGISTER_OPS, "IMMEDIATE_OPS": simulate.IMMEDIATE_OPS,
                    "LOAD_WIDTHS": LOAD_WIDTHS, "STORE_WIDTHS": STORE_WIDTHS, "BRANCHES": simulate.BRANCHES,
                    "TRAPS": simulate.TRAPS, "SYSTEM": simulate.SYSTEM}


def some_word(insn) -> int:
    """`insn` with every operand at the low end of its range (register 1 for registers)."""
    return encode(insn, {role: 1 if role in ("rd", "rs1", "rs2") else operand_range(insn, role)[0]
                         for role in insn.roles})


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_every_instruction_has_a_translator_template(insn):
    lines = translate.translate_insn(some_word(insn), Site(0x1000, 0, Context(user=False, paging=False)))
    illegal = translate.trap(translate.EXC_ILLEGAL, "None", Site(0x1000, 0, Context(False, False)))
    assert lines and illegal not in lines, f"{insn.mnemonic} translates as an illegal instruction"
    if insn.has(PRIVILEGED):   # in user mode the same word is the privileged-instruction trap
        user = translate.translate_insn(some_word(insn), Site(0x1000, 0, Context(user=True, paging=False)))
        assert user == [translate.trap(translate.EXC_PRIVILEGED, "None", Site(0x1000, 0, Context(True, False)))]


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_every_instruction_has_exactly_one_simulator_executor(insn):
    tables = [name for name, table in SIMULATOR_TABLES.items() if insn.mnemonic in table]
    assert len(tables) == 1, f"{insn.mnemonic} is in {tables or 'no table'}"


def test_the_simulator_knows_no_instruction_the_table_lacks():
    known = {insn.mnemonic for insn in INSTRUCTIONS}
    for name, table in SIMULATOR_TABLES.items():
        assert set(table) <= known, f"{name}: {sorted(set(table) - known)}"


def test_control_transfer_is_where_the_table_says():
    """The simulator's branch executors are exactly the table's conditional branches."""
    conditional = {insn.mnemonic for insn in INSTRUCTIONS if insn.has(BRANCH) and insn.fmt == "B"}
    assert set(simulate.BRANCHES) == conditional

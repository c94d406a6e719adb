"""Every entry of the ISA table has an implementation in both engines that
execute instructions: a template in the machine's block translator and an
executor in the machine simulator.  A new instruction added to asm/isa.py
fails here until both know it."""

from __future__ import annotations

import io

import pytest

from asm.isa import (BRANCH, CR_CAUSE, CR_STATUS, CR_TVEC, EXC_ILLEGAL, INSTRUCTIONS, LOAD_WIDTHS, PRIVILEGED,
                     STATUS_KM, STORE_WIDTHS, encode, operand_range)
from vmm.machine import translate
from vmm.machine.translate import Context, Site
from vmm.monitor import simulate

SIMULATOR_TABLES = {"REGISTER_OPS": simulate.REGISTER_OPS, "IMMEDIATE_OPS": simulate.IMMEDIATE_OPS,
                    "LOAD_WIDTHS": LOAD_WIDTHS, "STORE_WIDTHS": STORE_WIDTHS, "BRANCHES": simulate.BRANCHES,
                    "JUMPS": simulate.JUMPS, "TRAPS": simulate.TRAPS, "SYSTEM": simulate.SYSTEM}


def some_word(insn) -> int:
    """`insn` with every operand at the low end of its range (register 1 for registers)."""
    return encode(insn, {role: 1 if role in ("rd", "rs1", "rs2") else operand_range(insn, role)[0]
                         for role in insn.roles})


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_every_instruction_has_a_translator_template(insn):
    word = some_word(insn)
    lines = translate.translate_insn(word, Site(0x1000, 0, Context(user=False, paging=False), word))
    illegal = translate.trap(translate.EXC_ILLEGAL, "None", Site(0x1000, 0, Context(False, False), word))
    assert lines and illegal not in lines, f"{insn.mnemonic} translates as an illegal instruction"
    if insn.has(PRIVILEGED):   # in user mode the same word is the privileged-instruction trap
        user = translate.translate_insn(word, Site(0x1000, 0, Context(user=True, paging=False), word))
        assert user == [translate.trap(translate.EXC_PRIVILEGED, "None", Site(0x1000, 0, Context(True, False), word))]


@pytest.mark.parametrize("insn", [insn for insn in INSTRUCTIONS if not insn.extension], ids=lambda insn: insn.mnemonic)
def test_every_instruction_has_exactly_one_simulator_executor(insn):
    """Every base instruction; the simulator models a machine without the optional extensions
    (docs/isa.md), tested below."""
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


@pytest.mark.parametrize("insn", [insn for insn in INSTRUCTIONS if insn.extension], ids=lambda insn: insn.mnemonic)
def test_an_extension_instruction_is_illegal_in_the_simulator_in_either_mode(insn):
    """docs/isa.md: a machine without the extension does not decode its opcode."""
    for status in (STATUS_KM, 0):
        simulator = simulate.Simulator(1 << 16, console_out=io.BytesIO())
        simulator.memory.write(0x1000, 4, some_word(insn))
        simulator.pc, simulator.cr[CR_STATUS], simulator.cr[CR_TVEC] = 0x1000, status, 0x2000
        simulator.run(max_instructions=1)
        assert (simulator.cr[CR_CAUSE], simulator.pc) == (EXC_ILLEGAL, 0x2000)

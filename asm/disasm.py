"""The Kite32 disassembler: one word at a time, in text that re-assembles to the same word.

Everything about the encoding comes from asm/isa.py (decode, the operand syntax of each
instruction); this module only chooses how to print each operand role:

    rd rs1 rs2   ABI register names (zero, ra, sp, a0, ...)
    cr           control-register names (status, tvec, ...)
    imm          decimal, except the unsigned 20-bit U-format immediate, in hex (lui t0, 0xf0000)
    target       relative to `.`: `. + 20`, `. - 8`, `.`, then `  # 0x00100018 <puts+0x8>`

A word that does not decode prints as `.word 0x12345678`.  With aliases=True (kite-objdump's
default; `-M no-aliases` turns it off) a word that is one of the pseudo-instructions of
isa.ALIASES prints as it: `ret`, `mov a0, s0`, `beqz a0, . + 8`.
"""

from __future__ import annotations

import re
from typing import Callable

from asm import isa

Symbolize = Callable[[int], "str | None"]

_ROLE = re.compile(r"[a-z0-9]+")


def _target_text(offset_words: int) -> str:
    """`.`, `. + N` or `. - N` for a word offset."""
    displacement = offset_words * 4
    if displacement == 0:
        return "."
    return f". + {displacement}" if displacement > 0 else f". - {-displacement}"


def _operand_text(insn: isa.Insn, role: str, value: int) -> str:
    """How one operand value is written (`rs` is an alias's register)."""
    if role in ("rd", "rs1", "rs2", "rs"):
        return isa.REG_ABI_NAMES[value]
    if role == "cr":
        return isa.CR_NAMES[value]
    if role == "target":
        return _target_text(value)
    return f"{value:#x}" if not isa.field_for(insn, role).signed else str(value)


def target_address(decoded: isa.Decoded, pc: int) -> int | None:
    """The address a branch or jal at `pc` goes to, or None if the instruction has no target."""
    if "target" not in decoded.operands:
        return None
    return (pc + decoded.operands["target"] * 4) & 0xFFFFFFFF


def target_comment(address: int, symbols: Symbolize | None) -> str:
    """`# 0x00100018 <puts+0x8>`, or without the name when `symbols` does not know it."""
    name = symbols(address) if symbols else None
    return f"# {address:#010x} <{name}>" if name else f"# {address:#010x}"


def disassemble_word(word: int, pc: int, symbols: Symbolize | None = None, aliases: bool = False) -> str:
    """One instruction as assembly text; `pc` is its address (for the target comment) and
    `symbols` maps an address to `name+0x8` or None (e.g. vmm.machine.symbols.Symbolizer).
    With `aliases`, a word that is an isa.ALIASES pseudo-instruction prints as it (`ret`)."""
    decoded = isa.decode(word)
    if decoded is None:
        return f".word {word:#010x}"
    insn, operands = decoded
    mnemonic, syntax = insn.mnemonic, insn.syntax
    alias = isa.alias_for(insn, operands) if aliases else None
    if alias is not None:
        (mnemonic, syntax, _, _), operands = alias
    if not syntax:
        return mnemonic
    text = _ROLE.sub(lambda m: _operand_text(insn, m.group(0), operands[m.group(0)]), syntax)
    line = f"{mnemonic} {text}"
    target = target_address(decoded, pc)
    return line if target is None else f"{line}  {target_comment(target, symbols)}"

"""Build small Kite32 programs with isa.encode, so the CPU tests do not need
the assembler, and run them on the real Machine.

    program([("addi", "t0", "zero", 5),
             "loop:",
             ("addi", "t0", "t0", -1),
             ("bne", "t0", "zero", "loop"),
             ("halt",)], base=0x10000) -> bytes

Operands follow the instruction's assembly order (Insn.roles); registers by
name or number, control registers by name, branch/jal targets by label (or
an int word offset), anything else an int.  ("word", value) places a raw
word (e.g. an undefined encoding).
"""

from __future__ import annotations

import io

from asm.isa import BY_MNEMONIC, CR_NUMBERS, REG_NUMBERS, encode
from vmm.machine.machine import Machine

CODE_BASE = 0x10000


def _operand(role: str, value, labels: dict[str, int], address: int) -> int:
    if role in ("rd", "rs1", "rs2"):
        return REG_NUMBERS[value] if isinstance(value, str) else value
    if role == "cr":
        return CR_NUMBERS[value] if isinstance(value, str) else value
    if role == "target" and isinstance(value, str):
        return (labels[value] - address) // 4
    return value


def words(items: list, base: int = CODE_BASE) -> list[int]:
    """The instruction words of `items` (see module doc) placed at `base`."""
    labels, address = {}, base
    for item in items:
        if isinstance(item, str):
            labels[item.rstrip(":")] = address
        else:
            address += 4
    out, address = [], base
    for item in items:
        if isinstance(item, str):
            continue
        mnemonic, *operands = item
        if mnemonic == "word":
            out.append(operands[0] & 0xFFFFFFFF)
        else:
            insn = BY_MNEMONIC[mnemonic]
            assert len(operands) == len(insn.roles), f"{mnemonic} takes {insn.roles}"
            out.append(encode(insn, {role: _operand(role, value, labels, address)
                                     for role, value in zip(insn.roles, operands)}))
        address += 4
    return out


def program(items: list, base: int = CODE_BASE) -> bytes:
    """`items` assembled to little-endian bytes."""
    return b"".join(word.to_bytes(4, "little") for word in words(items, base))


def label_address(items: list, label: str, base: int = CODE_BASE) -> int:
    """The address `label` gets when `items` is placed at `base`."""
    address = base
    for item in items:
        if isinstance(item, str) and item.rstrip(":") == label:
            return address
        if not isinstance(item, str):
            address += 4
    raise KeyError(label)


def li(reg: str, value: int) -> list[tuple]:
    """lui + ori building any 32-bit constant in `reg`."""
    value &= 0xFFFFFFFF
    return [("lui", reg, value >> 12), ("ori", reg, reg, value & 0xFFF)]


def machine_with(items: list, mem_size: int = 1 << 20, base: int = CODE_BASE, **options) -> Machine:
    """A real Machine with `items` at `base` and the CPU reset to start there."""
    machine = Machine(mem_size, console_out=io.BytesIO(), **options)
    machine.memory.write_bytes(base, program(items, base))
    machine.cpu.reset(base, 0)
    return machine


def run(items: list, max_instructions: int = 100_000, **options) -> Machine:
    """Run `items` on a fresh machine until it stops; the machine."""
    machine = machine_with(items, **options)
    machine.run(max_instructions=max_instructions)
    return machine

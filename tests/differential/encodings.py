"""Instruction words and operand values for the generator, from docs/isa.md's
encoding table: the ALU and memory mnemonics by class, interesting values,
hand-encoded ALU words, and words that must not decode.

The encoders here are written from the documented formats, not from
asm/isa.py, so the generator does not inherit a mistake of the table it tests.
"""

from __future__ import annotations

import random

R_OPS = ("add", "sub", "and", "or", "xor", "sll", "srl", "sra", "slt", "sltu", "mul",
         "div", "divu", "rem", "remu")
I_OPS = ("addi", "andi", "ori", "xori", "slti", "sltiu")
SHIFT_I_OPS = ("slli", "srli", "srai")
DIV_OPS = ("div", "divu", "rem", "remu")
LOADS = {"lw": 4, "lh": 2, "lhu": 2, "lb": 1, "lbu": 1}
STORES = {"sw": 4, "sh": 2, "sb": 1}
BRANCHES = ("beq", "bne", "blt", "bge", "bltu", "bgeu")
PRIVILEGED_IN_USER = ("halt", "wfi", "rfe", "ei", "di", "tlbflush", "tlbinv", "mfcr", "mtcr")
INTERESTING = (0, 1, 2, 3, 4, 7, 31, 32, 33, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
               0x10000, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFF8000,
               0xFFFFFF80, 0x1FFFF, 0x20000, 0xFFFE0000)

R_OPCODES = {name: opcode for opcode, name in enumerate(R_OPS, start=0x01)}    # add 0x01 .. remu 0x0F
I_OPCODES = {"addi": 0x10, "andi": 0x11, "ori": 0x12, "xori": 0x13, "slti": 0x17, "sltiu": 0x18}


def alu_word(rng: random.Random, rd: int, rs1: int, rs2: int, imm: int) -> int:
    """An R-format (rd, rs1, rs2) or I-format (rd, rs1, imm18) ALU word
    (docs/isa.md, "Instruction formats": opcode [31:26], rd [25:22], rs1
    [21:18], rs2 [17:14] or imm18 [17:0])."""
    if rng.random() < 0.5:
        return R_OPCODES[rng.choice(R_OPS)] << 26 | rd << 22 | rs1 << 18 | rs2 << 14
    return I_OPCODES[rng.choice(tuple(I_OPCODES))] << 26 | rd << 22 | rs1 << 18 | (imm & 0x3FFFF)


def illegal_word(rng: random.Random) -> int:
    """A word docs/isa.md says does not decode ("Instruction formats": an opcode
    not in the table, a non-zero unused bit, a control-register number of 8 or
    more; "Arithmetic and logic": an immediate shift amount outside 0..31)."""
    roll = rng.random()
    if roll < 0.25:
        return rng.choice((0x00, 0x2F, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F)) << 26 | rng.getrandbits(26)
    if roll < 0.4:                           # R format: bits [13:0] must be zero
        return rng.randint(0x01, 0x0F) << 26 | rng.getrandbits(12) << 14 | rng.randint(1, 0x3FFF)
    if roll < 0.55:                          # N format: bits [25:0] must be zero
        return rng.choice((0x2A, 0x2B, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37)) << 26 | rng.randint(1, (1 << 26) - 1)
    if roll < 0.7:                           # mfcr / mtcr with cr >= 8 or negative
        cr = rng.choice((8, 9, 0x1FFFF, 0x20000, 0x3FFFF, rng.randint(8, 0x3FFFF)))
        return rng.choice((0x30, 0x31)) << 26 | rng.getrandbits(4) << 22 | cr
    if roll < 0.85:                          # slli / srli / srai by 32 or more, or negative
        amount = rng.choice((32, 33, 63, 0x1FFFF, 0x20000, 0x3FFFF, rng.randint(32, 0x3FFFF)))
        return rng.choice((0x14, 0x15, 0x16)) << 26 | rng.getrandbits(8) << 18 | amount
    if roll < 0.93:                          # lui with bits [21:20] set
        return 0x19 << 26 | rng.getrandbits(4) << 22 | rng.randint(1, 3) << 20 | rng.getrandbits(20)
    # rdsr with rs1 or imm set, wrsr with rd or imm set, tlbinv with rd or imm set
    opcode = rng.choice((0x2D, 0x2E, 0x38))
    if opcode == 0x2D:
        return opcode << 26 | rng.getrandbits(4) << 22 | rng.randint(1, (1 << 22) - 1)
    return opcode << 26 | rng.randint(1, 15) << 22 | rng.getrandbits(4) << 18 | rng.getrandbits(18)

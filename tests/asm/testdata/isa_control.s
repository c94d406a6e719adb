# Golden test: docs/isa.md "Control transfer".  B: rs1[25:22] rs2[21:18]
# imm18 = (target - pc) / 4; J: rd[25:22] imm22 = (target - pc) / 4; jalr is I format.
#   top is word 0.  bne a0, zero, top at word 1: offset -1 -> 0x3FFFF;
#     0x23<<26 = 0x8c000000, a0 -> 0x01000000, zero -> 0; 0x8d03ffff
#   jal ra, top at word 6: offset -6 -> 0x3FFFFA (22 bits);
#     0x28<<26 = 0xa0000000, ra -> 0x00400000; 0xa07ffffa
#   `1: beq a0, a0, 1b` branches to itself (the label on the same line is already defined).
top:
    beq a0, a1, top                   # 0x89140000
    bne a0, zero, top                 # 0x8d03ffff
    blt t0, t1, fwd                   # 0x92240004
    bge t0, t1, . + 8                 # 0x96240002
    bltu s0, s1, .                    # 0x9b340000
    bgeu s0, s1, . - 16               # 0x9f37fffc
fwd:
    jal ra, top                       # 0xa07ffffa
    jal zero, fwd                     # 0xa03fffff
    jal t0, . + 0x400                 # 0xa2000100
    jalr zero, ra, 0                  # 0xa4040000
    jalr ra, t0, -8                   # 0xa463fff8
    1: beq a0, a0, 1b                 # 0x89100000
    bne a0, a0, 1f                    # 0x8d100002
    beq a0, a0, 1b                    # 0x8913fffe
    1: jal zero, 1b                   # 0xa0000000

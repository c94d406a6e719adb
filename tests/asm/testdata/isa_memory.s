# Golden test: docs/isa.md "Memory access".  Loads are I format (rd, imm(rs1)),
# stores S format: rs2 in A[25:22], rs1 (base) in B[21:18], imm18 offset.
#   lw a0, 8(sp):   0x1A<<26 = 0x68000000, a0 -> 0x01000000, sp=2 -> 0x00080000, 8; 0x69080008
#   sw ra, 12(sp):  0x1F<<26 = 0x7c000000, ra=1 -> 0x00400000, sp -> 0x00080000, 12; 0x7c48000c
#   lw a0, (sp) is the same as lw a0, 0(sp): 0x69080000
    lw a0, 8(sp)                      # 0x69080008
    lw a0, (sp)                       # 0x69080000
    lw a0, -4(s0)                     # 0x6933fffc
    lh t0, 2(a1)                      # 0x6e140002
    lhu t0, 0x7e(a1)                  # 0x7214007e
    lb t1, -1(a2)                     # 0x765bffff
    lbu t1, 131071(a2)                # 0x7a59ffff
    sw ra, 12(sp)                     # 0x7c48000c
    sw a0, (a1)                       # 0x7d140000
    sh t0, -2(fp)                     # 0x8233fffe
    sb zero, 3(t3)                    # 0x842c0003

# Golden test: docs/isa.md "Arithmetic and logic" (R format).
# Every instruction line carries its expected word, computed by hand from the
# field layout in asm/isa.py: opcode[31:26] A=rd[25:22] B=rs1[21:18] C=rs2[17:14].
#   add a0, a1, a2: 0x01<<26 = 0x04000000, a0=4 -> 4<<22 = 0x01000000,
#                   a1=5 -> 5<<18 = 0x00140000, a2=6 -> 6<<14 = 0x00018000
#                   sum 0x05158000
#   sub t0, t1, t2: 0x02<<26 = 0x08000000, t0=8 -> 0x02000000, t1=9 -> 0x00240000,
#                   t2=10 -> 0x00028000; sum 0x0a268000
    add a0, a1, a2                    # 0x05158000
    sub t0, t1, t2                    # 0x0a268000
    and s0, s1, s2                    # 0x0f378000
    or r15, r14, r13                  # 0x13fb4000
    xor zero, ra, sp                  # 0x14048000
    sll at, a3, t3                    # 0x18dec000
    srl a0, a0, a1                    # 0x1d114000
    sra fp, s0, a2                    # 0x23318000
    slt t0, a0, a1                    # 0x26114000
    sltu t1, a2, a3                   # 0x2a59c000
    mul s3, s3, s3                    # 0x2fffc000
    div r1, r2, r3                    # 0x3048c000
    divu a0, t0, s0                   # 0x35230000
    rem a1, t1, s1                    # 0x39674000
    remu a2, t2, s2                   # 0x3dab8000

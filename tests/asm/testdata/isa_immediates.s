# Golden test: docs/isa.md "Arithmetic and logic", register-immediate forms (I and U formats).
# I: opcode[31:26] rd[25:22] rs1[21:18] imm18[17:0] (two's complement); U: opcode rd imm20[19:0].
#   addi a0, a1, -1: 0x10<<26 = 0x40000000, a0 -> 0x01000000, a1 -> 0x00140000,
#                    -1 & 0x3FFFF = 0x3FFFF; sum 0x4117ffff
#   lui a0, 0x12345: 0x19<<26 = 0x64000000, a0 -> 0x01000000, imm 0x12345; sum 0x65012345
#   ori t1, zero, 0b1010: 0x12<<26 = 0x48000000, t1=9 -> 0x02400000, imm 10; sum 0x4a40000a
    addi a0, a1, 1                    # 0x41140001
    addi a0, a1, -1                   # 0x4117ffff
    addi sp, sp, 131071               # 0x4089ffff
    addi sp, sp, -131072              # 0x408a0000
    andi t0, t0, 0xFF                 # 0x462000ff
    ori t1, zero, 0b1010              # 0x4a40000a
    xori a0, a0, -1                   # 0x4d13ffff
    slli a0, a1, 31                   # 0x5114001f
    srli a0, a1, 0                    # 0x55140000
    srai s0, s1, 7                    # 0x5b340007
    slti t2, t3, -100                 # 0x5eafff9c
    sltiu t2, t3, 100                 # 0x62ac0064
    lui a0, 0x12345                   # 0x65012345
    lui s3, 0xFFFFF                   # 0x67cfffff
    lui at, 0                         # 0x64c00000
    addi a0, zero, 'A'                # 0x41000041
    addi a0, zero, '\n'               # 0x4100000a

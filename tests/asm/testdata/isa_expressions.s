# Golden test: expressions (docs/assembler.md "Expressions"): C precedence, 32-bit wrap,
# logical >>, division truncating toward zero, %hi/%lo of constants, label differences.
#   1 + 2 * 3 = 7: addi a0, zero, 7 = 0x40000000 | 0x01000000 | 7 = 0x41000007
#   0xF0 & 0x3C ^ 0x01 = (0xF0 & 0x3C) ^ 1 = 0x30 ^ 1 = 0x31 (& binds tighter than ^)
#   -7 / 2 = -3 and -7 % 2 = -1 (C semantics); 0xFFFFFFFF + 2 wraps to 1
#   0xFFFFFFFF is -1, which fits imm18 (docs/assembler.md "Every value is 32 bits")
#   end - start = 5 words = 20
    .equ FOUR, 4
start:
    addi a0, zero, 1 + 2 * 3          # 0x41000007
    addi a0, zero, (1 + 2) * 3        # 0x41000009
    addi a0, zero, 10 - 4 - 3         # 0x41000003
    addi a0, zero, 1 << 4 | 1         # 0x41000011
    addi a0, zero, 0xF0 & 0x3C ^ 0x01 # 0x41000031
end:
    addi a0, zero, -7 / 2             # 0x4103fffd
    addi a0, zero, -7 % 2             # 0x4103ffff
    addi a0, zero, ~0                 # 0x4103ffff
    addi a0, zero, -(-5)              # 0x41000005
    addi a0, zero, 0x80000000 >> 31   # 0x41000001
    addi a0, zero, 0xFFFFFFFF + 2     # 0x41000001
    addi a0, zero, 0xFFFFFFFF         # 0x4103ffff
    addi a0, zero, 'a' - 'A'          # 0x41000020
    addi a0, zero, FOUR * FOUR        # 0x41000010
    addi a0, zero, end - start        # 0x41000014
    lui a0, %hi(0x12345678)           # 0x65012345
    ori a0, a0, %lo(0x12345678)       # 0x49100678
    lui a0, %hi(0xFFFFF800)           # 0x650fffff
    lw a0, %lo(0xABC)(a0)             # 0x69100abc
    addi a0, zero, %hi(8192) + %lo(4097)# 0x41000003

# Golden test: macros (docs/assembler.md "Macros").  A parameter is substituted anywhere in a
# body line, the mnemonic and labels included; a backslash that names no parameter stays, so a
# character literal's escape works unless a parameter has that name.
#   op addi, a0, a1, 1: addi a0, a1, 1 = 0x40000000 | a0 0x01000000 | a1 0x00140000 | 1 = 0x41140001
#   op xori, a0, a0, -1: 0x13<<26 = 0x4c000000 | 0x01000000 | 0x00100000 | 0x3ffff = 0x4d13ffff
#   '\n' with no parameter n is 10: addi a0, zero, 10 = 0x4100000a; with a parameter n = 7: '7' = 0x37
#   skip done: j done_end, the next word: jal zero, +1 word = 0x28<<26 | 1 = 0xa0000001
    .macro op insn, rd, rs, imm
    \insn \rd, \rs, \imm
    .endm
    .macro char reg, c
    addi \reg, zero, '\c'
    .endm
    .macro newline reg
    addi \reg, zero, '\n'
    .endm
    .macro shadow n
    addi a0, zero, '\n'
    .endm
    .macro skip name
    j \name\()_end
\name\()_end:
    .endm
    op addi, a0, a1, 1                # 0x41140001
    op xori, a0, a0, -1               # 0x4d13ffff
    char a0, A                        # 0x41000041
    newline a0                        # 0x4100000a
    shadow 7                          # 0x41000037
    skip done                         # 0xa0000001

# Golden test: pseudo-instructions (docs/assembler.md).  A line that expands to two
# instructions lists both words.  `here` is word 0; SIZE is known when `li t2, SIZE` is
# read (one addi), LATER is not (lui %hi + ori %lo, resolved by the assembler).
#   li t1, 0x12345678 -> lui t1, 0x12345: 0x64000000 | 9<<22 = 0x02400000 | 0x12345 = 0x66412345
#                        ori t1, t1, 0x678: 0x48000000 | 0x02400000 | 9<<18 = 0x00240000 | 0x678
#                        = 0x4a640678
#   j here at word 16: jal zero, -16 -> 0xa0000000 | (-16 & 0x3FFFFF = 0x3ffff0) = 0xa03ffff0
#   bgtz a0, here (word 28) -> blt zero, a0, -28: 0x90000000 | 4<<18 = 0x00100000 | 0x3ffe4
    .equ SIZE, 64
here:
    nop                               # 0x40000000
    mov a0, a1                        # 0x41140000
    li a0, 5                          # 0x41000005
    li a0, -131072                    # 0x41020000
    li a0, 0xFFFFFFFF                 # 0x4103ffff
    li t0, 0x12345000                 # 0x66012345
    li t0, 0x80000000                 # 0x66080000
    li t1, 0x12345678                 # 0x66412345 0x4a640678
    li t1, 131072 + 1                 # 0x66400020 0x4a640001
    li t2, SIZE                       # 0x42800040
    li t2, LATER                      # 0x66800000 0x4aa80003
    la a0, here                       # 0x65000000 0x49100000
    j here                            # 0xa03ffff0
    call here                         # 0xa07fffef
    jr t0                             # 0xa4200000
    ret                               # 0xa4040000
    push s0                           # 0x408bfffc 0x7f080000
    pop s0                            # 0x6b080000 0x40880004
    beqz a0, here                     # 0x8903ffe8
    bnez a0, here                     # 0x8d03ffe7
    bltz a0, here                     # 0x9103ffe6
    bgez a0, here                     # 0x9503ffe5
    bgtz a0, here                     # 0x9013ffe4
    blez a0, here                     # 0x9413ffe3
    not a0, a1                        # 0x4d17ffff
    neg a0, a1                        # 0x09014000
    .equ LATER, 3

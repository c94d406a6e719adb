# Golden test: docs/isa.md "rdsr and wrsr", the sensitive-but-unprivileged pair (I format).
#   rdsr a0: rd in A: 0x2D<<26 = 0xb4000000 | 4<<22 = 0x01000000 -> 0xb5000000
#   wrsr a0: rs1 in B: 0x2E<<26 = 0xb8000000 | 4<<18 = 0x00100000 -> 0xb8100000
    rdsr a0                           # 0xb5000000
    rdsr s3                           # 0xb7c00000
    wrsr a0                           # 0xb8100000
    wrsr t3                           # 0xb82c0000

# Loads and stores of every width (docs/isa.md "Memory access"): little-endian, sign and
# zero extension, and a misaligned load that traps with badaddr and changes nothing.
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        la      t0, buf
        li      t1, 0x80FF7F01
        sw      t1, 0(t0)               # bytes 01 7F FF 80
        lb      a0, 0(t0)
        lb      a1, 1(t0)
        lb      a2, 2(t0)               # 0xFF sign-extends
        lbu     a3, 2(t0)
        lh      s0, 2(t0)               # 0x80FF sign-extends
        lhu     s1, 2(t0)
        lh      s2, 0(t0)
        sb      t1, 4(t0)               # 01 at buf+4
        sh      t1, 6(t0)               # 01 7F at buf+6
        lw      s3, 4(t0)               # 01 00 01 7F
        li      t2, 1234
misaligned:
        lw      t2, 2(t0)               # traps; t2 keeps 1234
        halt
handler:
        mfcr    t3, cause
        mfcr    t1, badaddr
        mfcr    t0, epc
        halt

        .data
buf:    .word   0, 0
# EXPECT a0 = 0x01
# EXPECT a1 = 0x7F
# EXPECT a2 = 0xFFFFFFFF
# EXPECT a3 = 0xFF
# EXPECT s0 = 0xFFFF80FF
# EXPECT s1 = 0x80FF
# EXPECT s2 = 0x7F01
# EXPECT s3 = 0x7F010001
# EXPECT t2 = 1234
# EXPECT t3 = 3
# EXPECT t1 = buf+2
# EXPECT t0 = misaligned

# Multiply and divide (docs/isa.md "Arithmetic and logic"): truncation toward zero, the sign
# of rem, the -2^31 / -1 case, and divide by zero trapping with no effect.
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        li      t0, -7
        li      t1, 2
        div     a0, t0, t1              # -7 / 2 = -3 (toward zero)
        rem     a1, t0, t1              # -7 % 2 = -1 (sign of the dividend)
        divu    a2, t0, t1              # 0xFFFFFFF9 / 2
        remu    a3, t0, t1              # 0xFFFFFFF9 % 2
        li      t2, 0x80000000
        li      t3, -1
        div     s0, t2, t3              # -2^31 / -1 = -2^31
        rem     s1, t2, t3              # and the remainder is 0
        mul     s2, t2, t3              # low 32 bits of -2^31 * -1
        li      s3, 77
faulting:
        div     s3, t1, zero            # traps; s3 keeps 77
        halt
handler:
        mfcr    t0, cause
        mfcr    t1, epc
        halt
# EXPECT a0 = 0xFFFFFFFD
# EXPECT a1 = 0xFFFFFFFF
# EXPECT a2 = 0x7FFFFFFC
# EXPECT a3 = 1
# EXPECT s0 = 0x80000000
# EXPECT s1 = 0
# EXPECT s2 = 0x80000000
# EXPECT s3 = 77
# EXPECT t0 = 5
# EXPECT t1 = faulting

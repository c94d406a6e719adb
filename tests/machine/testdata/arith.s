# Arithmetic edge cases (docs/isa.md "Arithmetic and logic"): wrap, shifts by >= 32,
# signed vs unsigned compares.  Each EXPECT is worked out by hand from the rules.
        .text
        .globl _start
_start: li      t0, 0x7FFFFFFF
        addi    a0, t0, 1               # 0x7FFFFFFF + 1 wraps to 0x80000000
        li      t1, -1
        add     a1, t1, t1              # -1 + -1 = -2
        li      t2, 32
        sll     a2, t1, t2              # a register shift by 32 gives 0
        li      t3, 0x80000000
        sra     a3, t3, t2              # sra by 32 gives the sign fill
        li      t2, 33
        srl     s0, t1, t2              # srl by 33 gives 0
        slt     s1, t1, zero            # -1 < 0 signed
        sltu    s2, t1, zero            # 0xFFFFFFFF < 0 unsigned: no
        sltiu   s3, zero, -1            # the immediate is sign-extended, then compared unsigned
        sub     t0, zero, t1            # 0 - (-1) = 1
        srai    t1, t3, 31              # 0x80000000 >> 31 arithmetic
        xori    t2, t0, -1              # ~1
        halt
# EXPECT a0 = 0x80000000
# EXPECT a1 = 0xFFFFFFFE
# EXPECT a2 = 0
# EXPECT a3 = 0xFFFFFFFF
# EXPECT s0 = 0
# EXPECT s1 = 1
# EXPECT s2 = 0
# EXPECT s3 = 1
# EXPECT t0 = 1
# EXPECT t1 = 0xFFFFFFFF
# EXPECT t2 = 0xFFFFFFFE
# EXPECT zero = 0

# Branches and jumps (docs/isa.md "Control transfer"): a0 collects one bit per branch
# that falls through, so 2 | 8 | 32 = 42 means exactly the right ones were taken.
        .text
        .globl _start
_start: li      a0, 0
        li      t0, -1
        li      t1, 1
        blt     t0, t1, 1f              # -1 < 1 signed: taken
        ori     a0, a0, 1
1:      bltu    t0, t1, 2f              # 0xFFFFFFFF < 1 unsigned: not taken
        ori     a0, a0, 2
2:      bge     t1, t0, 3f              # 1 >= -1: taken
        ori     a0, a0, 4
3:      bgeu    t1, t0, 4f              # 1 >= 0xFFFFFFFF unsigned: not taken
        ori     a0, a0, 8
4:      beq     t0, t0, 5f              # taken
        ori     a0, a0, 16
5:      bne     t0, t0, 6f              # not taken
        ori     a0, a0, 32
6:      jal     ra, sub
returned:
        la      t2, target
        jalr    s1, t2, 0
        halt                            # skipped
target: halt
sub:    mov     a1, ra
        ret
# EXPECT a0 = 42
# EXPECT a1 = returned
# EXPECT s1 = returned+12

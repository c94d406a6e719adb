# worker: a shadow-mode guest that spins 20,000 iterations and powers off.
        .text
        .globl _start
_start:
        li      s1, 20000
1:      addi    s1, s1, -1
        bnez    s1, 1b
        li      t1, 0xF0003000
        sw      zero, 0(t1)
2:      j       2b

# nullwrite: a store near address 0 (killed by the kernel).
        .text
        .globl _start
_start:
        li      t0, 1
        sw      t0, 16(zero)
        j       _start

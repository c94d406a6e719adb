# bigread: console_read with length 0xFFFFFFFF into a buffer of guest RAM
# (shadow mode, paging off), then power off with the result's low byte.
        .text
        .globl _start
_start:
        li      a0, 13                  # HC_CONSOLE_READ
        li      a1, 0x200000
        li      a2, 0xFFFFFFFF
        hypercall
        li      t1, 0xF0003000
        sw      a0, 0(t1)
1:      j       1b

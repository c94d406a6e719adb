# leak: spawn and reap `child` eight times (run with --cmdline debug: the kernel reports
# the free-frame count at each reap, which must not go down).
# modules: child
# cmdline: debug
# expect-exit: 0
        .include "ulib.inc"
        .text
        .globl _start
_start:
        li      s0, 8
1:      la      a1, name
        sys     SYS_SPAWN
        mov     a1, a0
        sys     SYS_WAIT
        addi    s0, s0, -1
        bnez    s0, 1b
        mov     a1, zero
        sys     SYS_EXIT

        .rodata
name:   .asciz "child"

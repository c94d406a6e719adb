# pong.s (user-pong): pingpong's partner.  Yields ROUNDS times (the same
# ROUNDS as pingpong.s) and exits with the number of yields that returned 0,
# so the parent can check it and print it without shared memory.

        .equ ROUNDS, 100

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        li      s0, ROUNDS              # s0: yields left
        li      s1, 0                   # s1: yields that returned 0
1:      call    yield
        sltiu   t0, a0, 1
        add     s1, s1, t0
        addi    s0, s0, -1
        bnez    s0, 1b
        mov     a0, s1
        pop     s1
        pop     s0
        pop     ra
        ret

# string.s: string helpers for user programs.

        .text

# strlen(s) -> the number of bytes before the NUL that ends s.
        .globl  strlen
        .type   strlen, @function
strlen:
        mov     t0, a0
1:      lbu     t1, 0(t0)
        beqz    t1, 2f
        addi    t0, t0, 1
        j       1b
2:      sub     a0, t0, a0
        ret
        .size   strlen, . - strlen

# fib.s (user-fib): compute-bound.  For n = 0 .. REC_MAX computes fibonacci(n)
# both iteratively and by naive recursion (about 2 * fib(n + 1) calls) and checks
# the two agree, then fib(ITER_MAX), the largest that print_dec shows as a positive
# number, iteratively: that is the region of interest, with no system call, the time
# going to calls, adds and branches.  Then prints "fib(n) = value" for each.  Exits
# 0, or 1 on a mismatch.

        .equ REC_MAX,  22
        .equ ITER_MAX, 46              # fib(46) = 1836311903 < 2^31 <= fib(47)

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        call    roi_begin               # the computation is the region of interest; the prints are not
        la      s1, values              # s1: &values[n]
        li      s0, 0                   # s0: n
1:      mov     a0, s0
        call    fib_rec
        sw      a0, 0(s1)
        mov     a0, s0
        call    fib_iter
        lw      t0, 0(s1)
        bne     a0, t0, 4f
        addi    s1, s1, 4
        addi    s0, s0, 1
        slti    t0, s0, REC_MAX + 1
        bnez    t0, 1b
        li      a0, ITER_MAX
        call    fib_iter
        sw      a0, 0(s1)
        call    roi_end
        la      s1, values              # print fib(0 .. REC_MAX), then fib(ITER_MAX)
        li      s0, 0
2:      mov     a0, s0
        lw      a1, 0(s1)
        call    print_fib
        addi    s1, s1, 4
        addi    s0, s0, 1
        slti    t0, s0, REC_MAX + 1
        bnez    t0, 2b
        li      a0, ITER_MAX
        lw      a1, 0(s1)
        call    print_fib
        li      a0, 0
        j       5f
4:      call    roi_end
        la      a0, mismatch
        call    print_str
        li      a0, 1
5:      pop     s1
        pop     s0
        pop     ra
        ret

# fib_iter(n) -> fibonacci(n) mod 2^32, by n additions.
fib_iter:
        li      t0, 0                   # t0, t1: fib(i), fib(i + 1)
        li      t1, 1
1:      beqz    a0, 2f
        add     t2, t0, t1
        mov     t0, t1
        mov     t1, t2
        addi    a0, a0, -1
        j       1b
2:      mov     a0, t0
        ret

# fib_rec(n) -> fibonacci(n), as fib(n - 1) + fib(n - 2); n >= 0.
fib_rec:
        slti    t0, a0, 2
        bnez    t0, 1f                  # fib(0) = 0, fib(1) = 1
        addi    sp, sp, -12
        sw      ra, 8(sp)
        sw      s0, 4(sp)
        sw      s1, 0(sp)
        mov     s0, a0
        addi    a0, a0, -1
        call    fib_rec
        mov     s1, a0
        addi    a0, s0, -2
        call    fib_rec
        add     a0, a0, s1
        lw      s1, 0(sp)
        lw      s0, 4(sp)
        lw      ra, 8(sp)
        addi    sp, sp, 12
1:      ret

# print_fib(n, value): print "fib(n) = value\n" (value read as signed).
print_fib:
        push    ra
        push    s0
        push    s1
        mov     s0, a0
        mov     s1, a1
        la      a0, fib_open
        call    print_str
        mov     a0, s0
        call    print_dec
        la      a0, fib_equals
        call    print_str
        mov     a0, s1
        call    print_dec
        la      a0, newline
        call    print_str
        pop     s1
        pop     s0
        pop     ra
        ret

        .rodata
fib_open:       .asciz  "fib("
fib_equals:     .asciz  ") = "
newline:        .asciz  "\n"
mismatch:       .asciz  "fib: iterative and recursive results differ\n"

        .bss
        .balign 4
values:         .space  (REC_MAX + 2) * 4   # fib(0 .. REC_MAX), then fib(ITER_MAX)

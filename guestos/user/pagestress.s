# pagestress.s (user-pagestress): dominated by page faults and PTE writes.
# Each of ROUNDS rounds grows the heap by PAGES fresh pages (sbrk), touches
# one word in each (at a different offset per page), checks it reads 0 first
# (demand-zero, also after the previous round freed the same pages), writes a
# value unique to the round and page, reads every value back, then gives the
# pages back (sbrk negative).  Every round must get the same break back.
# Prints a one-line summary and exits 0, or names the failure and exits 1.

        .equ ROUNDS, 4
        .equ PAGES,  128
        .equ PAGE,   4096
        .equ STRIDE, PAGE + 4           # page i is touched at word i (i < 1024)

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        li      s0, 0                   # s0: the round
        li      a0, 0
        call    sbrk
        mov     s1, a0                  # s1: the break every round starts from
1:      mov     a0, s0
        mov     a1, s1
        call    round
        bnez    a0, 3f
        addi    s0, s0, 1
        slti    t0, s0, ROUNDS
        bnez    t0, 1b
        la      a0, summary_head
        call    print_str
        li      a0, ROUNDS
        call    print_dec
        la      a0, summary_middle
        call    print_str
        li      a0, PAGES
        call    print_dec
        la      a0, summary_tail
        call    print_str
        li      a0, 0
        j       4f
3:      call    print_str               # a0: the failure message
        li      a0, 1
4:      pop     s1
        pop     s0
        pop     ra
        ret

# round(r, base) -> 0, or the address of a failure message.  One round as in
# the file comment; `base` is the break the round must find.
round:
        push    ra
        push    s0
        push    s1
        mov     s0, a0                  # s0: the round
        mov     s1, a1                  # s1: the heap base
        li      a0, PAGES * PAGE
        call    sbrk
        la      t0, sbrk_failed
        bltz    a0, 9f
        la      t0, break_moved
        bne     a0, s1, 9f
        mov     a0, s1                  # touch: each word must be 0, then gets its value
        mov     a1, s0
        li      a2, 1
        call    sweep
        mov     t0, a0
        bnez    t0, 9f
        mov     a0, s1                  # read back
        mov     a1, s0
        li      a2, 0
        call    sweep
        mov     t0, a0
        bnez    t0, 9f
        li      a0, -PAGES * PAGE
        call    sbrk
        li      t1, PAGES * PAGE
        add     t1, s1, t1
        la      t0, shrink_failed
        bne     a0, t1, 9f
        li      t0, 0
9:      mov     a0, t0
        pop     s1
        pop     s0
        pop     ra
        ret

# sweep(base, r, touch) -> 0, or the address of a failure message.  For each
# page i the word at base + i * STRIDE should hold value(r, i) = r << 16 | i;
# with touch set it must instead read 0, and is then given that value.
sweep:
        li      t0, 0                   # t0: i
        li      t3, STRIDE
1:      slli    t1, a1, 16
        or      t1, t1, t0              # t1: value(r, i)
        lw      t2, 0(a0)
        beqz    a2, 2f
        bnez    t2, 4f                  # a fresh page must read 0
        sw      t1, 0(a0)
        j       3f
2:      bne     t2, t1, 5f
3:      add     a0, a0, t3
        addi    t0, t0, 1
        slti    t1, t0, PAGES
        bnez    t1, 1b
        li      a0, 0
        ret
4:      la      a0, not_zero
        ret
5:      la      a0, read_back_wrong
        ret

        .rodata
summary_head:    .asciz  "pagestress: "
summary_middle:  .asciz  " rounds of "
summary_tail:    .asciz  " fresh pages: zero-filled, written, read back, freed: ok\n"
sbrk_failed:     .asciz  "pagestress: sbrk failed\n"
break_moved:     .asciz  "pagestress: sbrk returned another break than in the first round\n"
not_zero:        .asciz  "pagestress: a fresh heap page did not read 0\n"
read_back_wrong: .asciz  "pagestress: a heap word read back wrong\n"
shrink_failed:   .asciz  "pagestress: sbrk shrink did not return the grown break\n"

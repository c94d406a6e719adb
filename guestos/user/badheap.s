# badheap.s (user-badheap): a child usertests expects the kernel to kill: it
# grows the heap by a page, writes it, shrinks the heap back and writes the
# same page again, which sbrk gave back.  If that store succeeds it exits 0;
# if sbrk fails it exits 1.

        .equ PAGE, 4096

        .text
        .globl  main
main:
        push    ra
        push    s0
        li      a0, PAGE
        call    sbrk
        mov     s0, a0
        bltz    s0, 1f
        sw      s0, 0(s0)
        li      a0, -PAGE
        call    sbrk
        sw      s0, 0(s0)
        li      a0, 0
        j       2f
1:      li      a0, 1
2:      pop     s0
        pop     ra
        ret

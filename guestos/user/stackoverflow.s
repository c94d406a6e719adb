# stackoverflow.s (user-stackoverflow): a child usertests expects the kernel
# to kill: it recurses with one-page frames, each touched, so the stack runs
# below USTACK_TOP - USTACK_SIZE into the unmapped guard.  The recursion is
# bounded at twice the stack size: if no fault stops it, it exits 0.

        .include "../include/layout.inc"

        .equ FRAME, 4096
        .equ DEPTH, 2 * USTACK_SIZE / FRAME

        .text
        .globl  main
main:
        push    ra
        li      a0, DEPTH
        call    recurse
        li      a0, 0
        pop     ra
        ret

# recurse(n): n nested calls, each with a FRAME-byte frame whose lowest word
# is written.
recurse:
        beqz    a0, 1f
        addi    sp, sp, -FRAME
        sw      ra, 0(sp)
        addi    a0, a0, -1
        call    recurse
        lw      ra, 0(sp)
        addi    sp, sp, FRAME
1:      ret

# badread.s (user-badread): a child usertests expects the kernel to kill: it
# loads from UNMAPPED, between the heap and the stack, outside every region of
# the address space (layout.inc).  If the load succeeds it exits 0.

        .equ UNMAPPED, 0x40000000

        .text
        .globl  main
main:
        li      t0, UNMAPPED
        lw      t0, 0(t0)
        li      a0, 0
        ret

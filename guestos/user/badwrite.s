# badwrite.s (user-badwrite): a child usertests expects the kernel to kill
# (status STATUS_KILLED): it stores to KERNBASE, a kernel-only address.  If
# the store is allowed it exits 0, which usertests reports as a failure.

        .include "../include/layout.inc"

        .text
        .globl  main
main:
        li      t0, KERNBASE
        sw      zero, 0(t0)
        li      a0, 0
        ret

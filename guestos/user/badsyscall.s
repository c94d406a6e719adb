# badsyscall.s (user-badsyscall): a child usertests expects the kernel to
# kill: it makes a system call with a number that does not exist.  If the call
# returns it exits 0.

        .include "../include/syscall.inc"

        .text
        .globl  main
main:
        li      a0, NSYSCALLS
        syscall
        li      a0, 0
        ret

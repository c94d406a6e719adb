# badpriv.s (user-badpriv): a child usertests expects the kernel to kill: it
# executes halt, a privileged instruction, in user mode.  If that returns it
# exits 0.

        .text
        .globl  main
main:
        halt
        li      a0, 0
        ret

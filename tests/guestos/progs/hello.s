# hello: write, getpid and exit through raw syscalls.
# expect-exit: 42
# expect: hello from user mode
        .include "../../../guestos/include/syscall.inc"
        .text
        .globl _start
_start:
        li      a0, SYS_WRITE
        la      a1, msg
        li      a2, msg_end - msg
        syscall
        li      a0, SYS_GETPID
        syscall
        addi    a1, a0, 41              # pid 1: exit code 42
        li      a0, SYS_EXIT
        syscall

        .rodata
msg:    .ascii "hello from user mode\n"
msg_end:

# badsys: an unknown system call number (killed by the kernel).
        .text
        .globl _start
_start:
        li      a0, 99
        syscall
        j       _start

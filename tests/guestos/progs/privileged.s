# privileged: a privileged instruction in user mode (killed by the kernel).
        .text
        .globl _start
_start:
        halt

# spinner: print a line, then spin forever without a syscall.
        .include "ulib.inc"
        .text
        .globl _start
_start:
        la      a0, msg
        call    puts
1:      j       1b

        .rodata
msg:    .asciz "spinner: spinning\n"

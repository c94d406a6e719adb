# echo: copy the console input to the output, 4 bytes a read, until end of input.
# input: one line
# expect-exit: 0
# expect: one line
# expect: echo: end of input
        .include "ulib.inc"
        .text
        .globl _start
_start:
1:      la      a1, buffer
        li      a2, 4
        sys     SYS_READ
        blez    a0, 2f
        mov     a2, a0
        la      a1, buffer
        sys     SYS_WRITE
        j       1b
2:      la      a0, msg_end
        call    puts
        mov     a1, zero
        sys     SYS_EXIT

        .rodata
msg_end:        .asciz "\necho: end of input\n"
        .bss
buffer: .space 4

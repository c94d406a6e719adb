# crasher: an ordinary (shadow-mode) kernel that never sets a trap vector:
# it prints a line through the UART and loads from NO_RAM, far beyond its
# RAM.  The bus error finds tvec = 0, so the VMM stops this VM, and only it.
        .equ UART_TX, 0xF0000000
        .equ NO_RAM, 0xE0000000

        .text
        .globl _start
_start:
        la      a0, message
        li      t0, UART_TX
1:      lbu     t1, 0(a0)
        beqz    t1, 2f
        sw      t1, 0(t0)
        addi    a0, a0, 1
        j       1b
2:      li      t0, NO_RAM
        lw      t1, 0(t0)
        halt

        .rodata
message: .asciz "crasher: loading from 0xe0000000 with no trap vector\n"

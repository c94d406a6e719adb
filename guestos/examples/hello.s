# hello.s: the smallest bare-metal Kite32 program.  Prints a line through the
# UART and powers off with exit code 0.
        .equ UART_TX,    0xF0000000
        .equ POWER_EXIT, 0xF0003000

        .text
        .globl _start
_start:
        la      a0, message
        li      t0, UART_TX
1:      lbu     t1, 0(a0)                # for each byte of the message
        beqz    t1, 2f
        sw      t1, 0(t0)                # transmit it
        addi    a0, a0, 1
        j       1b
2:      li      t0, POWER_EXIT
        sw      zero, 0(t0)              # exit code 0
        halt

        .rodata
message: .asciz "hello from kite32\n"

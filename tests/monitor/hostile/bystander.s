# bystander: an innocent shadow-mode guest that prints one line and exits 0.
        .text
        .globl _start
_start:
        la      t0, message
        li      t1, 0xF0000000          # UART data register
1:      lbu     t2, 0(t0)
        beqz    t2, 2f
        sw      t2, 0(t1)
        addi    t0, t0, 1
        j       1b
2:      li      t1, 0xF0003000          # power: exit code 0
        sw      zero, 0(t1)
3:      j       3b
        .data
message: .asciz "bystander alive\n"

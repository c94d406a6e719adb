# victim: a shadow-mode guest with a secret at its image's offset 4
# (gpa 0x100004); it waits a little, prints the secret and exits 0.
        .text
        .globl _start
_start:
        j       main
secret: .asciz  "SECRET-OF-VM-B\n"
        .balign 4
main:   la      t0, secret
        li      t1, 0xF0000000          # UART data register
1:      lbu     t2, 0(t0)
        beqz    t2, 2f
        sw      t2, 0(t1)
        addi    t0, t0, 1
        j       1b
2:      li      t1, 0xF0003000          # power: exit code 0
        sw      zero, 0(t1)
3:      j       3b

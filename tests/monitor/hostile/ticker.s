# ticker: a shadow-mode guest that programs its virtual timer periodic with
# interval 1 (IE stays off, so nothing is ever injected), spins 20,000
# iterations and powers off.
        .text
        .globl _start
_start:
        li      t1, 0xF0001000
        li      t0, 1
        sw      t0, 4(t1)               # INTERVAL 1
        li      t0, 3
        sw      t0, 0(t1)               # ENABLE | PERIODIC, IE stays off
        li      s1, 20000
1:      addi    s1, s1, -1
        bnez    s1, 1b
        li      t1, 0xF0003000
        sw      zero, 0(t1)
2:      j       2b

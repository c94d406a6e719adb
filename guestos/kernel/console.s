# console.s: kernel messages (kputs, kputdec, kputhex) and panic, over the pv-ops
# console_write.

        .include "kernel.inc"

        .text
        .globl kputs, kputdec, kputhex, panic

# kputs(a0 = NUL-terminated string): print it (one console_write).
kputs:
        enter
        mov     s0, a0
        call    strlen
        mov     a1, a0
        mov     a0, s0
        call    console_write
        leave

# kputdec(a0 = unsigned value): print it in decimal.
kputdec:
        enter
        la      s0, numbuf + 12
        li      t1, 10
1:      remu    t0, a0, t1
        addi    t0, t0, '0'
        addi    s0, s0, -1
        sb      t0, 0(s0)
        divu    a0, a0, t1
        bnez    a0, 1b
        mov     a0, s0
        la      a1, numbuf + 12
        sub     a1, a1, s0
        call    console_write
        leave

# kputhex(a0 = value): print it as 0x and 8 lower-case hex digits.
kputhex:
        enter
        la      s0, numbuf
        li      t0, '0'
        sb      t0, 0(s0)
        li      t0, 'x'
        sb      t0, 1(s0)
        addi    t2, s0, 10
1:      addi    t2, t2, -1
        andi    t0, a0, 15
        sltiu   t1, t0, 10
        addi    t0, t0, '0'
        bnez    t1, 2f
        addi    t0, t0, 'a' - '0' - 10
2:      sb      t0, 0(t2)
        srli    a0, a0, 4
        addi    t1, s0, 2
        bne     t2, t1, 1b
        mov     a0, s0
        li      a1, 10
        call    console_write
        leave

# panic(a0 = where, a1 = why): print "panic: WHERE: WHY" and power off with
# PANIC_STATUS.  Does not return.
panic:
        mov     s0, a0
        mov     s1, a1
        la      a0, msg_panic
        call    kputs
        mov     a0, s0
        call    kputs
        la      a0, msg_sep
        call    kputs
        mov     a0, s1
        call    kputs
        la      a0, msg_nl
        call    kputs
        li      a0, PANIC_STATUS
        call    power_off

        .rodata
msg_panic:      .asciz "panic: "
msg_sep:        .asciz ": "
msg_nl:         .asciz "\n"

        .bss
numbuf:         .space 12

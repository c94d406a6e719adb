# print.s: console output for user programs.  Every function prints with
# exactly one write system call (so a line part never interleaves with another
# process's output mid-token) and returns what write returned: the number of
# bytes written, or -EFAULT.

        .text

# print_str(s) / puts(s): write the NUL-terminated string s as it is.  puts is
# the same function under its familiar name: unlike C's puts it adds no newline.
        .globl  print_str, puts
        .type   print_str, @function
        .type   puts, @function
print_str:
puts:
        push    ra
        push    s0
        mov     s0, a0
        call    strlen
        mov     a1, a0
        mov     a0, s0
        call    write
        pop     s0
        pop     ra
        ret
        .size   print_str, . - print_str
        .size   puts, . - puts

# print_char(c): write the byte c.
        .globl  print_char
        .type   print_char, @function
print_char:
        addi    sp, sp, -8
        sw      ra, 4(sp)
        sb      a0, 0(sp)
        mov     a0, sp
        li      a1, 1
        call    write
        lw      ra, 4(sp)
        addi    sp, sp, 8
        ret
        .size   print_char, . - print_char

# print_dec(n): write n as a signed decimal number: "-2147483648" .. "2147483647",
# no padding.  The digits are built backwards in a 12-byte stack buffer.
        .globl  print_dec
        .type   print_dec, @function
print_dec:
        addi    sp, sp, -16
        sw      ra, 12(sp)
        addi    t0, sp, 12              # t0: first byte written so far (the buffer ends at sp + 12)
        mov     t1, a0                  # t1: the magnitude, unsigned (0 - n is right for -2^31 too)
        bgez    a0, 1f
        neg     t1, a0
1:      li      t2, 10
2:      remu    t3, t1, t2
        addi    t3, t3, '0'
        addi    t0, t0, -1
        sb      t3, 0(t0)
        divu    t1, t1, t2
        bnez    t1, 2b
        bgez    a0, 3f
        li      t3, '-'
        addi    t0, t0, -1
        sb      t3, 0(t0)
3:      mov     a0, t0
        addi    a1, sp, 12
        sub     a1, a1, t0
        call    write
        lw      ra, 12(sp)
        addi    sp, sp, 16
        ret
        .size   print_dec, . - print_dec

# print_hex(n): write n as "0x" and exactly 8 lower-case hex digits ("0x0000002a").
        .globl  print_hex
        .type   print_hex, @function
print_hex:
        addi    sp, sp, -16
        sw      ra, 12(sp)
        li      t0, '0'
        sb      t0, 0(sp)
        li      t0, 'x'
        sb      t0, 1(sp)
        addi    t0, sp, 10              # t0: one past the digit being written (digits at sp+2 .. sp+9)
1:      andi    t1, a0, 15
        slti    t2, t1, 10
        addi    t1, t1, '0'
        bnez    t2, 2f
        addi    t1, t1, 'a' - '0' - 10
2:      addi    t0, t0, -1
        sb      t1, 0(t0)
        srli    a0, a0, 4
        addi    t2, sp, 2
        bne     t0, t2, 1b
        mov     a0, sp
        li      a1, 10
        call    write
        lw      ra, 12(sp)
        addi    sp, sp, 16
        ret
        .size   print_hex, . - print_hex

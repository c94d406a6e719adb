# string.s: string and memory helpers.  All are leaves: they clobber a0-a3, t0-t3 only.

        .text
        .globl strlen, strcmp, strlcpy, memcpy, strstr, atou

# strlen(a0 = string) -> a0 = its length.
strlen:
        mov     t0, a0
1:      lbu     t1, 0(t0)
        beqz    t1, 2f
        addi    t0, t0, 1
        j       1b
2:      sub     a0, t0, a0
        ret

# strcmp(a0, a1 = strings) -> a0 = 0 if equal, else nonzero.
strcmp:
1:      lbu     t0, 0(a0)
        lbu     t1, 0(a1)
        bne     t0, t1, 2f
        beqz    t0, 2f
        addi    a0, a0, 1
        addi    a1, a1, 1
        j       1b
2:      sub     a0, t0, t1
        ret

# strlcpy(a0 = dst, a1 = src, a2 = max chars): copy at most a2 characters and a NUL.
strlcpy:
1:      beqz    a2, 2f
        lbu     t0, 0(a1)
        beqz    t0, 2f
        sb      t0, 0(a0)
        addi    a0, a0, 1
        addi    a1, a1, 1
        addi    a2, a2, -1
        j       1b
2:      sb      zero, 0(a0)
        ret

# memcpy(a0 = dst, a1 = src, a2 = bytes): the areas must not overlap.
memcpy:
        add     t1, a0, a2
1:      beq     a0, t1, 2f
        lbu     t0, 0(a1)
        sb      t0, 0(a0)
        addi    a0, a0, 1
        addi    a1, a1, 1
        j       1b
2:      ret

# strstr(a0 = string, a1 = word) -> a0 = the address just after the word's first
# occurrence in the string, or 0 if it does not occur.
strstr:
1:      mov     t0, a0
        mov     t1, a1
2:      lbu     t3, 0(t1)
        beqz    t3, 4f                  # the whole word matched
        lbu     t2, 0(t0)
        bne     t2, t3, 3f
        addi    t0, t0, 1
        addi    t1, t1, 1
        j       2b
3:      lbu     t2, 0(a0)
        addi    a0, a0, 1
        bnez    t2, 1b
        mov     a0, zero
        ret
4:      mov     a0, t0
        ret

# atou(a0 = string) -> a0 = the value of its leading decimal digits (0 if none), mod 2^32.
atou:
        mov     t0, zero
        li      t2, 10
1:      lbu     t1, 0(a0)
        addi    t1, t1, -48             # '0'
        bgeu    t1, t2, 2f              # not a digit (below '0' wraps high)
        mul     t0, t0, t2
        add     t0, t0, t1
        addi    a0, a0, 1
        j       1b
2:      mov     a0, t0
        ret

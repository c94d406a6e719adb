# sieve.s (user-sieve): CPU-bound, SPEC-INT-like.  The sieve of Eratosthenes over
# [0, LIMIT): a byte per number in a heap buffer from sbrk, every multiple of each
# prime p <= sqrt(LIMIT) from p * p on crossed out, then the primes counted.  The
# sieve and the count are the region of interest (roi_begin / roi_end), its pages
# touched before it; the line
# printed afterwards is "sieve: primes below LIMIT: COUNT".  Exits 0, or 1 if sbrk fails.

        .equ LIMIT, 400000

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        li      a0, LIMIT
        call    sbrk
        bltz    a0, 2f
        mov     s0, a0                  # s0: the buffer, zero: every number a candidate
        call    touch                   # its demand-zero pages faulted in before the measurement
        call    roi_begin
        mov     a0, s0
        call    cross_out
        mov     a0, s0
        call    count_primes
        mov     s1, a0
        call    roi_end
        la      a0, text
        call    print_str
        li      a0, LIMIT
        call    print_dec
        la      a0, colon
        call    print_str
        mov     a0, s1
        call    print_dec
        la      a0, newline
        call    print_str
        li      a0, 0
        j       3f
2:      la      a0, no_memory
        call    print_str
        li      a0, 1
3:      pop     s1
        pop     s0
        pop     ra
        ret

# touch(buf): store a zero byte (buf is zero already) in every page of buf[0 .. LIMIT),
# so that the region of interest measures the sieve and not the first touch of its
# pages: a store, so that a page's first write (its dirty bit) falls here too (a
# warm-up, as benchmarks do).
touch:
        li      t0, LIMIT
        add     t0, t0, a0              # t0: the end of the buffer
1:      sb      zero, 0(a0)
        addi    a0, a0, 4096
        bltu    a0, t0, 1b
        ret

# cross_out(buf): buf[m] = 1 for every composite m < LIMIT (buf zero on entry).
cross_out:
        li      t0, 2                   # t0: p
        li      t3, LIMIT
1:      mul     t1, t0, t0              # t1: p * p, the first multiple left
        bgeu    t1, t3, 4f              # p > sqrt(LIMIT): done
        add     t2, a0, t0
        lbu     t2, 0(t2)
        bnez    t2, 3f                  # p is composite: its multiples are crossed out already
        li      a1, 1
2:      add     t2, a0, t1
        sb      a1, 0(t2)
        add     t1, t1, t0
        bltu    t1, t3, 2b
3:      addi    t0, t0, 1
        j       1b
4:      ret

# count_primes(buf) -> the numbers in [2, LIMIT) buf leaves at 0.
count_primes:
        li      t0, 2
        li      t3, LIMIT
        mov     a1, zero
1:      add     t1, a0, t0
        lbu     t1, 0(t1)
        bnez    t1, 2f
        addi    a1, a1, 1
2:      addi    t0, t0, 1
        bltu    t0, t3, 1b
        mov     a0, a1
        ret

        .rodata
text:           .asciz  "sieve: primes below "
colon:          .asciz  ": "
newline:        .asciz  "\n"
no_memory:      .asciz  "sieve: sbrk failed\n"

# sort.s (user-sort): CPU-bound.  Fills a heap buffer from sbrk with COUNT
# pseudo-random words (the LCG x = x * 1103515245 + 12345 mod 2^32 from
# SEED), heapsorts it (unsigned, in place), checks it is in order and prints
# the checksum  sum over i of a[i] * (i + 1) mod 2^32  of the sorted words,
# which depends on the order as well as on the values.  The heapsort is the
# region of interest.  Exits 0, or 1 on a failure (the line printed says which).

        .equ COUNT, 20000
        .equ SEED,  12345
        .equ LCG_A, 1103515245
        .equ LCG_C, 12345

        .text
        .globl  main
main:
        push    ra
        push    s0
        li      a0, COUNT * 4
        call    sbrk
        la      t0, no_memory
        bltz    a0, 2f
        mov     s0, a0                  # s0: the buffer
        call    fill
        call    roi_begin               # the sort is the region of interest
        mov     a0, s0
        li      a1, COUNT
        call    heapsort
        call    roi_end
        mov     a0, s0
        call    check_order
        la      t0, out_of_order
        bnez    a0, 2f
        la      a0, sort_text
        call    print_str
        li      a0, COUNT
        call    print_dec
        la      a0, checksum_text
        call    print_str
        mov     a0, s0
        call    checksum
        call    print_hex
        la      a0, sorted_ok
        call    print_str
        li      a0, 0
        j       3f
2:      mov     a0, t0                  # t0: the failure message
        call    print_str
        li      a0, 1
3:      pop     s0
        pop     ra
        ret

# fill(a): a[0 .. COUNT) = the first COUNT values of the LCG after SEED.
fill:
        li      t0, SEED
        li      t1, LCG_A
        li      t2, COUNT * 4
        add     t2, t2, a0              # t2: end of the buffer
1:      mul     t0, t0, t1
        addi    t0, t0, LCG_C
        sw      t0, 0(a0)
        addi    a0, a0, 4
        bne     a0, t2, 1b
        ret

# heapsort(a, n): sort the n words at a in unsigned ascending order; n >= 1.
heapsort:
        push    ra
        push    s0
        push    s1
        push    s2
        mov     s0, a0
        mov     s1, a1
        srli    s2, a1, 1               # build the max-heap: sift down n/2 - 1 .. 0
1:      addi    s2, s2, -1
        bltz    s2, 2f
        mov     a0, s0
        mov     a1, s2
        mov     a2, s1
        call    sift_down
        j       1b
2:      addi    s1, s1, -1              # s1: end; move the max to a[end], re-heap a[0 .. end)
        blez    s1, 3f
        slli    t0, s1, 2
        add     t0, s0, t0
        lw      t1, 0(s0)
        lw      t2, 0(t0)
        sw      t2, 0(s0)
        sw      t1, 0(t0)
        mov     a0, s0
        li      a1, 0
        mov     a2, s1
        call    sift_down
        j       2b
3:      pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

# sift_down(a, root, n): restore the max-heap property of a[0 .. n) below
# `root`, assuming both subtrees of root are heaps.  Uses no stack.
sift_down:
1:      slli    t0, a1, 1
        addi    t0, t0, 1               # t0: the left child
        bgeu    t0, a2, 3f
        slli    t1, t0, 2
        add     t1, a0, t1              # t1: &a[child]
        lw      t2, 0(t1)               # t2: a[child]
        addi    t3, t0, 1
        bgeu    t3, a2, 2f              # no right child
        lw      t3, 4(t1)
        bgeu    t2, t3, 2f
        addi    t0, t0, 1               # the right child is larger
        addi    t1, t1, 4
        mov     t2, t3
2:      slli    t3, a1, 2
        add     t3, a0, t3              # t3: &a[root]
        lw      a3, 0(t3)
        bgeu    a3, t2, 3f              # root already the largest: done
        sw      t2, 0(t3)
        sw      a3, 0(t1)
        mov     a1, t0
        j       1b
3:      ret

# check_order(a) -> 0 if a[0 .. COUNT) is in unsigned ascending order, else 1.
check_order:
        li      t2, COUNT * 4 - 4
        add     t2, t2, a0              # t2: &a[COUNT - 1]
1:      beq     a0, t2, 2f
        lw      t0, 0(a0)
        lw      t1, 4(a0)
        bltu    t1, t0, 3f
        addi    a0, a0, 4
        j       1b
2:      li      a0, 0
        ret
3:      li      a0, 1
        ret

# checksum(a) -> sum over i of a[i] * (i + 1), mod 2^32, for i in [0, COUNT).
checksum:
        li      t0, 0                   # t0: the sum
        li      t1, 1                   # t1: i + 1
        li      t2, COUNT
1:      lw      t3, 0(a0)
        mul     t3, t3, t1
        add     t0, t0, t3
        addi    a0, a0, 4
        addi    t1, t1, 1
        bge     t2, t1, 1b
        mov     a0, t0
        ret

        .rodata
sort_text:      .asciz  "sort: "
checksum_text:  .asciz  " words, checksum "
sorted_ok:      .asciz  "\nsorted ok\n"
no_memory:      .asciz  "sort: sbrk failed\n"
out_of_order:   .asciz  "sort: NOT sorted\n"

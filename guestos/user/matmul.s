# matmul.s (user-matmul): CPU-bound, SPEC-INT-like.  C = A x B for N x N matrices of
# 32-bit integers (products and sums wrap mod 2^32), with A[i][j] = i + 2j + 1 and
# B[i][j] = 3i + j + 7, in heap buffers from sbrk.  The multiply is the region of
# interest; the line printed afterwards is "matmul: NxN, checksum 0x........" with
# the checksum  sum over i, j of C[i][j] * (i * N + j + 1) mod 2^32.  Exits 0, or 1
# if sbrk fails.

        .equ N, 96
        .equ ROW, N * 4                 # bytes per row

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        push    s2
        li      a0, 3 * N * ROW
        call    sbrk
        bltz    a0, 2f
        mov     s0, a0                  # s0: A, then B, then C
        li      t0, N * ROW
        add     s1, s0, t0
        add     s2, s1, t0
        mov     a0, s0
        mov     a1, s1
        call    fill
        call    roi_begin
        mov     a0, s0
        mov     a1, s1
        mov     a2, s2
        call    multiply
        call    roi_end
        la      a0, text
        call    print_str
        mov     a0, s2
        call    checksum
        call    print_hex
        la      a0, newline
        call    print_str
        li      a0, 0
        j       3f
2:      la      a0, no_memory
        call    print_str
        li      a0, 1
3:      pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

# fill(A, B): A[i][j] = i + 2j + 1, B[i][j] = 3i + j + 7.
fill:
        li      t0, 0                   # t0: i
1:      li      t1, 0                   # t1: j
2:      slli    t2, t1, 1
        add     t2, t2, t0
        addi    t2, t2, 1
        sw      t2, 0(a0)
        slli    t2, t0, 1
        add     t2, t2, t0
        add     t2, t2, t1
        addi    t2, t2, 7
        sw      t2, 0(a1)
        addi    a0, a0, 4
        addi    a1, a1, 4
        addi    t1, t1, 1
        li      t3, N
        bne     t1, t3, 2b
        addi    t0, t0, 1
        bne     t0, t3, 1b
        ret

# multiply(A, B, C): C[i][j] = sum over k of A[i][k] * B[k][j].
multiply:
        push    s0
        push    s1
        push    s2
        push    s3
        li      s0, N * ROW
        add     s0, s0, a0              # s0: the end of A
1:      mov     s1, a1                  # s1: &B[0][j], from j = 0
        li      s2, ROW
        add     s2, s2, a1              # s2: &B[0][N], the end of B's first row
2:      mov     a3, a0                  # a3: &A[i][k], from k = 0
        mov     t1, s1                  # t1: &B[k][j]
        li      t2, 0                   # t2: the sum
        li      s3, ROW
        add     s3, s3, a0              # s3: the end of row i of A
3:      lw      t0, 0(a3)
        lw      t3, 0(t1)
        mul     t0, t0, t3
        add     t2, t2, t0
        addi    a3, a3, 4
        addi    t1, t1, ROW
        bne     a3, s3, 3b
        sw      t2, 0(a2)               # C[i][j]; a2 walks C row by row
        addi    a2, a2, 4
        addi    s1, s1, 4
        bne     s1, s2, 2b
        addi    a0, a0, ROW
        bne     a0, s0, 1b
        pop     s3
        pop     s2
        pop     s1
        pop     s0
        ret

# checksum(C) -> sum over i, j of C[i][j] * (i * N + j + 1), mod 2^32.
checksum:
        li      t0, 0                   # t0: the sum
        li      t1, 1                   # t1: i * N + j + 1
        li      t2, N * N
1:      lw      t3, 0(a0)
        mul     t3, t3, t1
        add     t0, t0, t3
        addi    a0, a0, 4
        addi    t1, t1, 1
        bge     t2, t1, 1b
        mov     a0, t0
        ret

        .rodata
text:           .asciz  "matmul: 96x96, checksum "
newline:        .asciz  "\n"
no_memory:      .asciz  "matmul: sbrk failed\n"

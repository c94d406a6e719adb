# crc.s (user-crc): CPU-bound, SPEC-INT-like.  The CRC-32 of IEEE 802.3 (reflected,
# polynomial 0xEDB88320, initial value and final xor 0xFFFFFFFF: zlib's crc32) of a
# SIZE-byte heap buffer filled with the LCG bytes x = x * 1103515245 + 12345 from
# SEED (each byte the top 8 bits of x), computed bit by bit.  The CRC is the region of
# interest; the line printed afterwards is "crc: SIZE bytes, crc32 0x........".
# Exits 0, or 1 if sbrk fails.

        .equ SIZE,  120000
        .equ SEED,  2026
        .equ LCG_A, 1103515245
        .equ LCG_C, 12345
        .equ POLY,  0xEDB88320

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        li      a0, SIZE
        call    sbrk
        bltz    a0, 2f
        mov     s0, a0                  # s0: the buffer
        call    fill
        call    roi_begin
        mov     a0, s0
        call    crc32
        mov     s1, a0
        call    roi_end
        la      a0, text
        call    print_str
        li      a0, SIZE
        call    print_dec
        la      a0, crc_text
        call    print_str
        mov     a0, s1
        call    print_hex
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

# fill(buf): buf[0 .. SIZE) = the top bytes of the LCG's values after SEED.
fill:
        li      t0, SEED
        li      t1, LCG_A
        li      t2, SIZE
        add     t2, t2, a0              # t2: the end of the buffer
1:      mul     t0, t0, t1
        addi    t0, t0, LCG_C
        srli    t3, t0, 24
        sb      t3, 0(a0)
        addi    a0, a0, 1
        bne     a0, t2, 1b
        ret

# crc32(buf) -> the CRC-32 of buf[0 .. SIZE), a bit at a time.
crc32:
        li      t0, -1                  # t0: the CRC register
        li      t1, POLY
        li      a2, SIZE
        add     a2, a2, a0              # a2: the end of the buffer
1:      lbu     t2, 0(a0)
        xor     t0, t0, t2
        li      t3, 8
2:      andi    t2, t0, 1
        srli    t0, t0, 1
        beqz    t2, 3f
        xor     t0, t0, t1
3:      addi    t3, t3, -1
        bnez    t3, 2b
        addi    a0, a0, 1
        bne     a0, a2, 1b
        not     a0, t0
        ret

        .rodata
text:           .asciz  "crc: "
crc_text:       .asciz  " bytes, crc32 "
newline:        .asciz  "\n"
no_memory:      .asciz  "crc: sbrk failed\n"

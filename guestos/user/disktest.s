# disktest.s (user-disktest): the disk workload (I/O-bound).  Needs a disk of at least
# SECTORS sectors (kite run --disk FILE).
#
# 1. The error paths: a read of the first sector past the end and of a range across the
#    end, a write past the end (-EIO), counts 0 and DISK_IO_MAX + 1 (-EINVAL), buffers
#    at KERNBASE and at 0x40000000 (-EFAULT), sector 0xFFFFFFFF (-EIO), then reads of
#    the last sector (1), into the buffer and one byte further on (not word-aligned).
#    Prints "disktest: error checks ok".
# 2. The region of interest: writes the pattern over sectors [0, SECTORS) in
#    disk_write calls of the sizes in `chunks`, cycled (16 calls of 1 to 32 sectors),
#    then reads it back in calls of DISK_IO_MAX sectors (8 calls) and checks every
#    word.  The pattern: word w of the area (bytes 4w .. 4w+3, little-endian) is the
#    (w+1)-th value of the LCG x = x * 1103515245 + 12345 from SEED.  The checksum is
#    the sum of word[w] * (w + 1) mod 2^32 over the area, as read back.
#
# Prints (then exits 0):
#   disktest: error checks ok
#   disktest: wrote 256 sectors in 16 calls
#   disktest: read 256 sectors in 8 calls
#   disktest: checksum 0x........
#   disktest: ok
# On a failure it prints a line "disktest: FAILED ..." naming it and exits 1; without a
# disk, "disktest: no disk" (exit 1).

        .include "../include/syscall.inc"
        .include "../include/layout.inc"

        .equ SECTORS, 256
        .equ WORDS_PER_SECTOR, SECTOR_SIZE / 4
        .equ BUF_SIZE, DISK_IO_MAX * SECTOR_SIZE
        .equ NCHUNKS, 8
        .equ SEED, 4242
        .equ LCG_A, 1103515245
        .equ LCG_C, 12345
        .equ BAD_POINTER, 0x40000000    # mapped by no region (docs/userspace.md)

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        push    s2
        push    s3
        call    disk_size
        bltz    a0, no_disk
        mov     s1, a0                  # s1: the disk's size in sectors
        li      t0, SECTORS
        bltu    s1, t0, too_small
        li      a0, BUF_SIZE
        call    sbrk
        bltz    a0, no_memory
        mov     s0, a0                  # s0: the buffer, DISK_IO_MAX sectors
        call    checks
        bnez    a0, fail
        la      a0, msg_checks
        call    print_str
        call    roi_begin
        call    write_pass
        bnez    a0, fail
        call    read_pass
        bnez    a0, fail
        call    roi_end
        la      a0, msg_wrote
        call    print_str
        li      a0, SECTORS
        call    print_dec
        la      a0, msg_in
        call    print_str
        la      t0, write_calls
        lw      a0, 0(t0)
        call    print_dec
        la      a0, msg_read
        call    print_str
        li      a0, SECTORS
        call    print_dec
        la      a0, msg_in
        call    print_str
        la      t0, read_calls
        lw      a0, 0(t0)
        call    print_dec
        la      a0, msg_checksum
        call    print_str
        la      t0, checksum
        lw      a0, 0(t0)
        call    print_hex
        la      a0, msg_ok
        call    print_str
        li      a0, 0
        j       done
no_disk:
        la      a0, msg_no_disk
        call    print_str
        j       fail
too_small:
        la      a0, msg_too_small
        call    print_str
        j       fail
no_memory:
        la      a0, msg_no_memory
        call    print_str
fail:   li      a0, 1
done:   pop     s3
        pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

# checks() (s0 = buffer, s1 = disk size) -> a0 = 0 if every error path answered as it
# should, else 1 (after printing the check that failed).
checks:
        push    ra
        mov     a0, s1                  # 1: the first sector past the end
        mov     a1, s0
        li      a2, 1
        call    disk_read
        li      a1, -EIO
        li      a2, 1
        call    expect
        bnez    a0, 9f
        addi    a0, s1, -1              # 2: a range across the end
        mov     a1, s0
        li      a2, 2
        call    disk_read
        li      a1, -EIO
        li      a2, 2
        call    expect
        bnez    a0, 9f
        mov     a0, s1                  # 3: a write past the end
        mov     a1, s0
        li      a2, 1
        call    disk_write
        li      a1, -EIO
        li      a2, 3
        call    expect
        bnez    a0, 9f
        mov     a0, zero                # 4: count 0
        mov     a1, s0
        mov     a2, zero
        call    disk_read
        li      a1, -EINVAL
        li      a2, 4
        call    expect
        bnez    a0, 9f
        mov     a0, zero                # 5: one sector more than a call may move
        mov     a1, s0
        li      a2, DISK_IO_MAX + 1
        call    disk_write
        li      a1, -EINVAL
        li      a2, 5
        call    expect
        bnez    a0, 9f
        mov     a0, zero                # 6: a read into the kernel
        li      a1, KERNBASE
        li      a2, 1
        call    disk_read
        li      a1, -EFAULT
        li      a2, 6
        call    expect
        bnez    a0, 9f
        mov     a0, zero                # 7: a write from unmapped memory
        li      a1, BAD_POINTER
        li      a2, 1
        call    disk_write
        li      a1, -EFAULT
        li      a2, 7
        call    expect
        bnez    a0, 9f
        li      a0, -1                  # 8: sector 0xFFFFFFFF (no wrap-around to 0)
        mov     a1, s0
        li      a2, 1
        call    disk_read
        li      a1, -EIO
        li      a2, 8
        call    expect
        bnez    a0, 9f
        addi    a0, s1, -1              # 9: the last sector reads
        mov     a1, s0
        li      a2, 1
        call    disk_read
        li      a1, 1
        li      a2, 9
        call    expect
        bnez    a0, 9f
        addi    a0, s1, -1              # 10: into a buffer that is not word-aligned too
        addi    a1, s0, 1
        li      a2, 1
        call    disk_read
        li      a1, 1
        li      a2, 10
        call    expect
9:      pop     ra
        ret

# expect(a0 = result, a1 = expected, a2 = check number) -> a0 = 0 if they are equal,
# else 1 after printing "disktest: FAILED check N: got R".
expect:
        bne     a0, a1, 1f
        mov     a0, zero
        ret
1:      push    ra
        push    s0
        push    s1
        mov     s0, a0
        mov     s1, a2
        la      a0, msg_check
        call    print_str
        mov     a0, s1
        call    print_dec
        la      a0, msg_got
        call    print_str
        mov     a0, s0
        call    print_dec
        la      a0, msg_newline
        call    print_str
        li      a0, 1
        pop     s1
        pop     s0
        pop     ra
        ret

# write_pass() (s0 = buffer) -> a0 = 0, or 1 after printing the call that failed.
# Writes the pattern over [0, SECTORS) in calls of the sizes in `chunks`, cycled;
# counts them in write_calls.
write_pass:
        push    ra
        push    s1
        push    s2
        push    s3
        la      t0, lcg
        li      t1, SEED
        sw      t1, 0(t0)
        mov     s2, zero                # s2: the next sector
        mov     s3, zero                # s3: the calls made
1:      andi    t0, s3, NCHUNKS - 1
        slli    t0, t0, 2
        la      t1, chunks
        add     t1, t1, t0
        lw      s1, 0(t1)               # s1: this call's count, the chunk ...
        li      t0, SECTORS
        sub     t0, t0, s2
        bgeu    t0, s1, 2f
        mov     s1, t0                  # ... or what is left
2:      mov     a0, s0
        li      t0, WORDS_PER_SECTOR
        mul     a1, s1, t0
        call    fill
        mov     a0, s2
        mov     a1, s0
        mov     a2, s1
        call    disk_write
        bne     a0, s1, 8f
        add     s2, s2, s1
        addi    s3, s3, 1
        li      t0, SECTORS
        bne     s2, t0, 1b
        la      t0, write_calls
        sw      s3, 0(t0)
        mov     a0, zero
        j       9f
8:      mov     a1, s2
        mov     a2, s1
        la      a3, msg_write_failed
        call    io_failed
9:      pop     s3
        pop     s2
        pop     s1
        pop     ra
        ret

# read_pass() (s0 = buffer) -> a0 = 0, or 1 after printing what failed.  Reads
# [0, SECTORS) back in calls of DISK_IO_MAX sectors, checks every word against the
# pattern and sums the checksum; counts the calls in read_calls.
read_pass:
        push    ra
        push    s1
        push    s2
        push    s3
        la      t0, lcg
        li      t1, SEED
        sw      t1, 0(t0)
        la      t0, word_index
        sw      zero, 0(t0)
        la      t0, checksum
        sw      zero, 0(t0)
        mov     s2, zero                # s2: the next sector
        mov     s3, zero                # s3: the calls made
1:      li      s1, DISK_IO_MAX         # s1: this call's count
        li      t0, SECTORS
        sub     t0, t0, s2
        bgeu    t0, s1, 2f
        mov     s1, t0
2:      mov     a0, s2
        mov     a1, s0
        mov     a2, s1
        call    disk_read
        bne     a0, s1, 8f
        mov     a0, s0
        li      t0, WORDS_PER_SECTOR
        mul     a1, s1, t0
        call    verify
        bnez    a0, 7f
        add     s2, s2, s1
        addi    s3, s3, 1
        li      t0, SECTORS
        bne     s2, t0, 1b
        la      t0, read_calls
        sw      s3, 0(t0)
        mov     a0, zero
        j       9f
7:      la      a0, msg_mismatch        # a0 was the word's index + 1
        call    print_str
        la      t0, word_index
        lw      a0, 0(t0)
        srli    a0, a0, 7               # WORDS_PER_SECTOR = 128 words a sector
        call    print_dec
        la      a0, msg_newline
        call    print_str
        li      a0, 1
        j       9f
8:      mov     a1, s2
        mov     a2, s1
        la      a3, msg_read_failed
        call    io_failed
9:      pop     s3
        pop     s2
        pop     s1
        pop     ra
        ret

# io_failed(a0 = result, a1 = sector, a2 = count, a3 = message) -> a0 = 1, after
# printing "disktest: FAILED <message>(sector S, count C) = R".
io_failed:
        push    ra
        push    s0
        push    s1
        push    s2
        mov     s0, a0
        mov     s1, a1
        mov     s2, a2
        mov     a0, a3
        call    print_str
        mov     a0, s1
        call    print_dec
        la      a0, msg_count
        call    print_str
        mov     a0, s2
        call    print_dec
        la      a0, msg_equals
        call    print_str
        mov     a0, s0
        call    print_dec
        la      a0, msg_newline
        call    print_str
        li      a0, 1
        pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

# fill(a0 = buf, a1 = words): the next `a1` words of the pattern into buf.
fill:
        la      t3, lcg
        lw      t0, 0(t3)
        li      t1, LCG_A
        slli    a1, a1, 2
        add     a1, a1, a0              # a1: the end
1:      mul     t0, t0, t1
        addi    t0, t0, LCG_C
        sw      t0, 0(a0)
        addi    a0, a0, 4
        bne     a0, a1, 1b
        sw      t0, 0(t3)
        ret

# verify(a0 = buf, a1 = words) -> a0 = 0 if buf holds the next `a1` words of the
# pattern, else nonzero (word_index is then the first wrong word's index).  Adds
# word * (index + 1) of each to checksum.
verify:
        la      t3, lcg
        lw      t0, 0(t3)
        la      t3, word_index
        lw      a2, 0(t3)               # a2: the index of the word at a0
        la      t3, checksum
        lw      a3, 0(t3)               # a3: the checksum so far
        li      t1, LCG_A
        slli    a1, a1, 2
        add     a1, a1, a0              # a1: the end
1:      mul     t0, t0, t1
        addi    t0, t0, LCG_C
        lw      t2, 0(a0)
        bne     t2, t0, 2f
        addi    a2, a2, 1
        mul     t3, t2, a2
        add     a3, a3, t3
        addi    a0, a0, 4
        bne     a0, a1, 1b
        mov     a0, zero
        j       3f
2:      li      a0, 1
3:      la      t3, word_index
        sw      a2, 0(t3)
        la      t3, checksum
        sw      a3, 0(t3)
        la      t3, lcg
        sw      t0, 0(t3)
        ret

        .data
        .balign 4
chunks:         .word 32, 1, 8, 9, 16, 31, 7, 24        # NCHUNKS sizes, 128 sectors a cycle
lcg:            .word 0                 # the pattern generator's state
word_index:     .word 0                 # verify: the index of the next word
checksum:       .word 0
write_calls:    .word 0
read_calls:     .word 0

        .rodata
msg_checks:     .asciz  "disktest: error checks ok\n"
msg_wrote:      .asciz  "disktest: wrote "
msg_read:       .asciz  " calls\ndisktest: read "
msg_in:         .asciz  " sectors in "
msg_checksum:   .asciz  " calls\ndisktest: checksum "
msg_ok:         .asciz  "\ndisktest: ok\n"
msg_no_disk:    .asciz  "disktest: no disk\n"
msg_too_small:  .asciz  "disktest: FAILED: the disk is smaller than 256 sectors\n"
msg_no_memory:  .asciz  "disktest: FAILED: sbrk\n"
msg_check:      .asciz  "disktest: FAILED check "
msg_got:        .asciz  ": got "
msg_write_failed: .asciz "disktest: FAILED disk_write(sector "
msg_read_failed: .asciz "disktest: FAILED disk_read(sector "
msg_count:      .asciz  ", count "
msg_equals:     .asciz  ") = "
msg_mismatch:   .asciz  "disktest: FAILED: wrong data read back in sector "
msg_newline:    .asciz  "\n"

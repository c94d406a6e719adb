# dcat.s (user-dcat): cat for the raw disk.  Prints the disk's bytes as they are, from
# sector 0 on, up to the first NUL byte or the end of the disk, reading DISK_IO_MAX
# sectors per disk_read call and writing what it read with one write each.  Exits 0;
# 1 after "dcat: no disk" or "dcat: read error at sector N".

        .include "../include/syscall.inc"

        .equ BUF_SIZE, DISK_IO_MAX * SECTOR_SIZE

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
        li      a0, BUF_SIZE
        call    sbrk
        bltz    a0, no_memory
        mov     s0, a0                  # s0: the buffer
        mov     s2, zero                # s2: the next sector
1:      beq     s2, s1, 4f              # the end of the disk
        li      s3, DISK_IO_MAX         # s3: this call's count
        sub     t0, s1, s2
        bgeu    t0, s3, 2f
        mov     s3, t0
2:      mov     a0, s2
        mov     a1, s0
        mov     a2, s3
        call    disk_read
        bne     a0, s3, read_error
        li      t1, SECTOR_SIZE         # the end of the bytes read
        mul     t1, t1, s3
        add     t1, t1, s0
        mov     t0, s0
3:      lbu     t2, 0(t0)               # up to the first NUL
        beqz    t2, 5f
        addi    t0, t0, 1
        bne     t0, t1, 3b
        mov     a0, s0                  # no NUL in these sectors: all of them, go on
        sub     a1, t1, s0
        call    write
        add     s2, s2, s3
        j       1b
5:      mov     a0, s0                  # the text ends in these sectors
        sub     a1, t0, s0
        call    write
4:      li      a0, 0
        j       done
read_error:
        la      a0, msg_read_error
        call    print_str
        mov     a0, s2
        call    print_dec
        la      a0, msg_newline
        call    print_str
        j       fail
no_disk:
        la      a0, msg_no_disk
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

        .rodata
msg_no_disk:    .asciz  "dcat: no disk\n"
msg_no_memory:  .asciz  "dcat: sbrk failed\n"
msg_read_error: .asciz  "dcat: read error at sector "
msg_newline:    .asciz  "\n"

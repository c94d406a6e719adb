# disk_writer: rewrites every sector of the disk, round after round, until
# the run's instruction limit: in round r sector s is 512 bytes of the value
# ((r + s) & 0xFF) | 1, written by one polled DMA command.  Whenever the run
# is stopped, each sector of the image file must be one repeated byte: the
# zeros it started with or a value a round wrote, never a mix (a torn sector).
        .include "kernel.inc"
        .equ DISK,        0xF0002000
        .equ D_SECTOR,    0x00
        .equ D_DMA,       0x04
        .equ D_COUNT,     0x08
        .equ D_CMD,       0x0C
        .equ D_STATUS,    0x10
        .equ D_CAPACITY,  0x18
        .equ D_ACK,       0x1C
        .equ CMD_WRITE,   2
        .equ DONE,        4

        .text
        .globl _start
_start:
        li      t0, DISK
        lw      s1, D_CAPACITY(t0)
        li      s0, 0                           # the round
1:      li      s2, 0                           # the sector
2:      add     t1, s0, s2                      # the byte of this sector in this round
        andi    t1, t1, 0xFF
        ori     t1, t1, 1
        la      t2, buffer
        addi    t3, t2, 512
3:      sb      t1, 0(t2)
        addi    t2, t2, 1
        bne     t2, t3, 3b
        li      t0, DISK
        sw      s2, D_SECTOR(t0)
        la      t1, buffer
        sw      t1, D_DMA(t0)
        li      t1, 1
        sw      t1, D_COUNT(t0)
        li      t1, CMD_WRITE
        sw      t1, D_CMD(t0)
4:      lw      t1, D_STATUS(t0)
        andi    t1, t1, DONE
        beqz    t1, 4b
        sw      zero, D_ACK(t0)
        addi    s2, s2, 1
        bne     s2, s1, 2b
        addi    s0, s0, 1
        j       1b

        .bss
        .balign 512
buffer: .space 512

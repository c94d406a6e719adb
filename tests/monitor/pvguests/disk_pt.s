# disk_pt: a direct-mode guest drives the emulated disk's registers (MMIO
# exits: its tables never map a device) and aims a DMA read at its own
# bootstrap L2, guest-physical pt_first_gfn * 4096: the VMM must refuse it
# (STATUS = DONE | ERROR, the table untouched).  Then a DMA read of sector 0
# into `buf` (guest-physical = guest-virtual here) must work: its text is
# printed.  Prints "status: N" per command; shutdown 0.
        .include "pv.inc"
        .equ DISK,      0xF0002000
        .equ D_SECTOR,  0x00
        .equ D_DMA,     0x04
        .equ D_COUNT,   0x08
        .equ D_CMD,     0x0C
        .equ D_STATUS,  0x10
        .equ D_ACK,     0x1C
        .equ DONE,      4

        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        li      t0, START_INFO_ADDR
        lw      a1, SI_PT_FIRST_GFN(t0)
        slli    a1, a1, 12
        call    read_sector
        la      a1, buf
        call    read_sector
        la      a0, buf
        call    puts
        la      a0, msg_newline
        call    puts
        li      a1, 0
        hcall   HC_SHUTDOWN

# read_sector(a1 = guest-physical DMA address): sector 0 there, polled; prints the status.
read_sector:
        addi    sp, sp, -4
        sw      ra, 0(sp)
        li      t0, DISK
        sw      zero, D_SECTOR(t0)
        sw      a1, D_DMA(t0)
        li      t1, 1
        sw      t1, D_COUNT(t0)
        sw      t1, D_CMD(t0)                   # 1 = read
1:      lw      t2, D_STATUS(t0)
        andi    t1, t2, DONE
        beqz    t1, 1b
        sw      zero, D_ACK(t0)
        addi    sp, sp, -4
        sw      t2, 0(sp)
        la      a0, msg_status
        call    puts
        lw      a0, 0(sp)
        addi    sp, sp, 4
        call    putint
        la      a0, msg_newline
        call    puts
        lw      ra, 0(sp)
        addi    sp, sp, 4
        ret

        .include "pvlib.inc"

        .data
msg_status:     .asciz "status: "
        .bss
        .balign 512
buf:    .space 512
        .space 1024
stack_top:

# disk_probe: the disk of docs/isa.md "Disk", driven by polling, paging off.
#
# Reads sectors 0-1 into `buffer` and prints sector 0's text (up to its first
# NUL); writes `buffer` to sectors 2-3 with its first byte changed to '#';
# then tries the transfers the device must refuse, printing the STATUS of
# each (6 = DONE | ERROR, 4 = DONE): a DMA buffer just past the end of RAM,
# one straddling it, one wrapping past 2^32, one at a device page, sectors
# beyond the capacity, and an unknown command.  Prints "disk_probe: done" and
# powers off with 0.  The bare machine, the simulator and the VMM must print
# the same transcript and leave the same bytes on the disk.

        .include "kernel.inc"
        .equ DISK,        0xF0002000
        .equ D_SECTOR,    0x00
        .equ D_DMA,       0x04
        .equ D_COUNT,     0x08
        .equ D_CMD,       0x0C
        .equ D_STATUS,    0x10
        .equ D_CAPACITY,  0x18
        .equ D_ACK,       0x1C
        .equ CMD_READ,    1
        .equ CMD_WRITE,   2
        .equ DONE,        4

        .text
        .globl _start
_start:
        lw      s0, BOOTINFO_MEM_SIZE(a0)       # the end of RAM
        li      a0, 0
        la      a1, buffer
        li      a2, 2
        li      a3, CMD_READ
        call    transfer
        la      a0, buffer
        call    puts
        li      a0, '\n'
        call    putc
        la      t0, buffer
        li      t1, '#'
        sb      t1, 0(t0)
        li      a0, 2
        la      a1, buffer
        li      a2, 2
        li      a3, CMD_WRITE
        call    transfer
        print   "copy: "
        print_hex s1
        li      a0, '\n'
        call    putc

        li      a0, 0                           # just past the end of RAM
        mov     a1, s0
        li      a2, 1
        li      a3, CMD_READ
        call    probe
        li      a0, 0                           # straddling it
        addi    a1, s0, -256
        li      a2, 1
        li      a3, CMD_READ
        call    probe
        li      a0, 0                           # wrapping past 2^32
        li      a1, 0xFFFFFF00
        li      a2, 1
        li      a3, CMD_READ
        call    probe
        li      a0, 0                           # a device page (the UART's)
        li      a1, UART_TX
        li      a2, 1
        li      a3, CMD_READ
        call    probe
        li      t0, DISK                        # sectors beyond the capacity
        lw      a0, D_CAPACITY(t0)
        addi    a0, a0, -1
        la      a1, buffer
        li      a2, 2
        li      a3, CMD_WRITE
        call    probe
        li      a0, 0                           # an unknown command
        la      a1, buffer
        li      a2, 1
        li      a3, 7
        call    probe
        print   "disk_probe: done\n"
        li      a0, 0
        j       power_off

# transfer(a0 = sector, a1 = DMA address, a2 = count, a3 = command): start it,
# poll until DONE, acknowledge; s1 = the final STATUS.  Clobbers t0, t1.
transfer:
        li      t0, DISK
        sw      a0, D_SECTOR(t0)
        sw      a1, D_DMA(t0)
        sw      a2, D_COUNT(t0)
        sw      a3, D_CMD(t0)
1:      lw      s1, D_STATUS(t0)
        andi    t1, s1, DONE
        beqz    t1, 1b
        sw      zero, D_ACK(t0)
        ret

# probe(as transfer): transfer, then print "status: 0x..." and a newline.
# Clobbers t0-t2, a0, a1, s2.
probe:
        mov     s2, ra
        call    transfer
        print   "status: "
        print_hex s1
        li      a0, '\n'
        call    putc
        mov     ra, s2
        ret

        .bss
        .balign 512
buffer: .space 1024

# harness.s: a stand-in for the guest kernel, to run one user program on the
# bare machine before (and independently of) guestos/kernel.  Linked with the
# program's objects; entry harness_start.
#
# The program runs in KERNEL mode with paging off (virtual = physical), so
# this checks the library and the program's own logic, not the kernel.  The
# trap handler implements the syscalls of one lone process (syscall.inc):
#   exit      power off with the status as the machine's exit code
#   write     copy the bytes to the UART          read   poll the UART
#   getpid    1          yield  0                 sbrk   bump HEAP_BASE, zero-filling growth
#                                                        (increments: multiples of 4)
#   spawn     -ENOENT    wait   -ECHILD (no processes to run or reap)
#   roi       0 (the region of interest is the guest kernel's to mark: nothing to measure here)
#   disk_read, disk_write, disk_size   -ENODEV (no disk driver here)
# Any other trap powers off with exit code 255 (STATUS_KILLED).  Pointers are
# not checked.

        .include "../../guestos/include/syscall.inc"

        .equ UART_TX,        0xF0000000
        .equ UART_RX,        0xF0000004
        .equ UART_STATUS,    0xF0000008
        .equ RX_READY,       1
        .equ RX_EOF,         4
        .equ POWER_EXIT,     0xF0003000
        .equ EXC_SYSCALL,    7
        .equ STACK_TOP,      0x00F00000         # below the end of the default 16 MiB of RAM
        .equ HEAP_BASE,      0x00800000         # above any program image linked at USER_BASE

        .text
        .globl  harness_start
harness_start:
        la      t0, trap
        mtcr    tvec, t0
        li      sp, STACK_TOP
        la      t0, brk
        li      t1, HEAP_BASE
        sw      t1, 0(t0)
        j       _start

# trap: the syscall dispatcher.  Saves the registers the handlers use on the
# program's stack (nothing below sp is live), returns after the syscall.
trap:
        addi    sp, sp, -24
        sw      t0, 0(sp)
        sw      t1, 4(sp)
        sw      t2, 8(sp)
        sw      t3, 12(sp)
        sw      ra, 16(sp)
        mfcr    t0, cause
        li      t1, EXC_SYSCALL
        bne     t0, t1, killed
        sltiu   t0, a0, NSYSCALLS
        beqz    t0, killed
        slli    t0, a0, 2
        la      t1, handlers
        add     t1, t1, t0
        lw      t1, 0(t1)
        jalr    ra, t1, 0               # a0 = the result (a1 too for wait)
        mfcr    t0, epc
        addi    t0, t0, 4
        mtcr    epc, t0
        lw      t0, 0(sp)
        lw      t1, 4(sp)
        lw      t2, 8(sp)
        lw      t3, 12(sp)
        lw      ra, 16(sp)
        addi    sp, sp, 24
        rfe

killed:
        li      a1, STATUS_KILLED
sys_exit:
        li      t0, POWER_EXIT
        sw      a1, 0(t0)
        halt

sys_write:                              # (a1 = buf, a2 = len) -> len
        li      t0, UART_TX
        mov     t1, a1
        add     t2, a1, a2
1:      beq     t1, t2, 2f
        lbu     t3, 0(t1)
        sw      t3, 0(t0)
        addi    t1, t1, 1
        j       1b
2:      mov     a0, a2
        ret

sys_read:                               # (a1 = buf, a2 = len) -> bytes read, 0 at end of input
        li      t0, UART_STATUS
1:      lw      t3, 0(t0)               # wait for a byte or the end of input
        andi    t1, t3, RX_READY
        bnez    t1, 2f
        andi    t1, t3, RX_EOF
        beqz    t1, 1b
        li      a0, 0
        ret
2:      mov     t1, a1                  # copy while bytes are ready and room is left
        add     t2, a1, a2
3:      beq     t1, t2, 4f
        lw      t3, 0(t0)
        andi    t3, t3, RX_READY
        beqz    t3, 4f
        lw      t3, UART_RX - UART_STATUS(t0)
        sb      t3, 0(t1)
        addi    t1, t1, 1
        j       3b
4:      sub     a0, t1, a1
        ret

sys_getpid:
        li      a0, 1
        ret

sys_yield:
        li      a0, 0
        ret

sys_sbrk:                               # (a1 = increment) -> old break; growth is zero-filled
        la      t0, brk                 # a word at a time: increments must be multiples of 4
        lw      a0, 0(t0)
        add     t1, a0, a1
        sw      t1, 0(t0)
        mov     t2, a0
1:      bgeu    t2, t1, 2f
        sw      zero, 0(t2)
        addi    t2, t2, 4
        j       1b
2:      ret

sys_spawn:
        li      a0, -ENOENT
        ret

sys_wait:
        li      a0, -ECHILD
        ret

sys_roi:
        li      a0, 0
        ret

sys_disk:
        li      a0, -ENODEV
        ret

        .rodata
        .balign 4
handlers:
        .word   sys_exit, sys_write, sys_read, sys_getpid, sys_yield, sys_sbrk, sys_spawn, sys_wait, sys_roi
        .word   sys_disk, sys_disk, sys_disk

        .bss
        .balign 4
brk:    .space  4

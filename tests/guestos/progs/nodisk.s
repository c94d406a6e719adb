# nodisk: the disk system calls on a machine without a disk fail with -ENODEV (19), before
# any other check (a count of 0, a bad pointer), and the kernel goes on.
# expect-exit: 0
# expect: disk_size: -19
# expect: disk_read: -19
# expect: disk_write: -19
# expect: disk_read count 0: -19
# expect: disk_write from KERNBASE: -19
# expect: still running
        .include "ulib.inc"
        .text
        .globl _start
_start:
        la      a0, msg_size
        call    puts
        sys     SYS_DISK_SIZE
        call    putdec
        call    newline
        la      a0, msg_read
        call    puts
        mov     a1, zero
        la      a2, buf
        li      a3, 1
        sys     SYS_DISK_READ
        call    putdec
        call    newline
        la      a0, msg_write
        call    puts
        mov     a1, zero
        la      a2, buf
        li      a3, 1
        sys     SYS_DISK_WRITE
        call    putdec
        call    newline
        la      a0, msg_count0
        call    puts
        mov     a1, zero
        la      a2, buf
        mov     a3, zero
        sys     SYS_DISK_READ
        call    putdec
        call    newline
        la      a0, msg_kernel
        call    puts
        mov     a1, zero
        li      a2, 0xC0000000
        li      a3, 1
        sys     SYS_DISK_WRITE
        call    putdec
        call    newline
        la      a0, msg_running
        call    puts
        mov     a1, zero
        sys     SYS_EXIT

newline:
        la      a0, msg_newline
        j       puts

        .data
msg_size:       .asciz "disk_size: "
msg_read:       .asciz "disk_read: "
msg_write:      .asciz "disk_write: "
msg_count0:     .asciz "disk_read count 0: "
msg_kernel:     .asciz "disk_write from KERNBASE: "
msg_running:    .asciz "still running\n"
msg_newline:    .asciz "\n"
        .balign 4
buf:            .space 512

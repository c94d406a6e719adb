# disk.s: the block driver's device-independent half and the disk system calls
# (syscall.inc: disk_read, disk_write, disk_size; docs/guestos.md "The disk").
#
# The driver moves whole sectors between the disk and ONE kernel bounce buffer,
# disk_buf: DISK_IO_MAX sectors, page-aligned, in the kernel's .bss.  The kernel image
# is physically contiguous, so natively one emulated command moves a whole transfer by
# DMA (the DMA address is disk_buf's physical address); in the PV build each page of
# it is one ring request.  The device-dependent half is two pv-ops (pvops.s):
#
#   disk_init(buf)                        find the disk; buf is the bounce buffer
#   disk_transfer(op, sector, count)      move sectors between the disk and the buffer,
#                                         waiting for the completion
#
# The system calls check their arguments (the range against the disk's size), copy
# between disk_buf and the caller's buffer after user_check, and never stop the
# kernel: every error is a negative result.  The kernel is not preemptible, so the
# one buffer is never shared by two calls.

        .include "kernel.inc"

        .text
        .globl disk_setup, sys_disk_read, sys_disk_write, sys_disk_size

# disk_setup(): find the disk (disk_init) and record its size; 0 sectors: no disk.
# Boot, before the trap vector is installed.
disk_setup:
        push    ra
        la      a0, disk_buf
        call    disk_init
        la      t0, disk_sectors
        sw      a0, 0(t0)
        pop     ra
        ret

# sys_disk_size() -> the disk's size in sectors, or -ENODEV.
sys_disk_size:
        la      t0, disk_sectors
        lw      a0, 0(t0)
        bnez    a0, 1f
        li      a0, -ENODEV
1:      ret

# sys_disk_read(a0 = sector, a1 = buf, a2 = count) -> count, or -ENODEV, -EINVAL, -EIO,
# -EFAULT (disk_io).
sys_disk_read:
        li      a3, DISK_CMD_READ
        j       disk_io

# sys_disk_write(a0 = sector, a1 = buf, a2 = count) -> count, or -ENODEV, -EINVAL, -EIO,
# -EFAULT (disk_io).
sys_disk_write:
        li      a3, DISK_CMD_WRITE
        j       disk_io

# disk_io(a0 = sector, a1 = user buf, a2 = count, a3 = DISK_CMD_READ or DISK_CMD_WRITE)
# -> count, or: -ENODEV (no disk), -EINVAL (count 0 or over DISK_IO_MAX), -EIO (a range
# beyond the disk, or the device reported an error), -EFAULT (buf is not count sectors
# of the caller's memory, writable for a read).  Nothing is moved on a refusal.  A timer
# tick that disk_transfer acknowledged while it waited is served here, as trap would
# have: schedule (syscall stores the result into the caller's own frame).
disk_io:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     s2, a2
        mov     s3, a3
        mov     a1, a2
        call    disk_check
        bnez    a0, 9f
        mov     a0, s1
        slli    a1, s2, SECTOR_SHIFT
        xori    a2, s3, DISK_CMD_WRITE  # 0 (read-only access) for a write, else writable
        call    user_check
        bnez    a0, 9f
        li      t0, DISK_CMD_WRITE
        bne     s3, t0, 1f
        la      a0, disk_buf            # a write: the caller's bytes into the buffer first
        mov     a1, s1
        slli    a2, s2, SECTOR_SHIFT
        call    disk_copy
1:      mov     a0, s3
        mov     a1, s0
        mov     a2, s2
        call    disk_transfer           # a0 = 0 or -EIO, a1 = 1 if it acknowledged a tick
        mov     s0, a0
        mov     a0, s3                  # s3: the tick flag from here on
        mov     s3, a1
        bnez    s0, 2f
        li      t0, DISK_CMD_READ
        bne     a0, t0, 2f
        mov     a0, s1                  # a read: the sectors out to the caller
        la      a1, disk_buf
        slli    a2, s2, SECTOR_SHIFT
        call    disk_copy
2:      bnez    s0, 3f
        mov     s0, s2                  # success: the count
3:      beqz    s3, 4f
        call    schedule
4:      mov     a0, s0
9:      leave

# disk_check(a0 = sector, a1 = count) -> a0 = 0 if [sector, sector + count) is a valid
# transfer, else -ENODEV, -EINVAL or -EIO.  Leaf.
disk_check:
        la      t0, disk_sectors
        lw      t0, 0(t0)
        beqz    t0, 1f
        addi    t1, a1, -1              # count 0 wraps to the largest value
        li      t2, DISK_IO_MAX
        bgeu    t1, t2, 2f
        bgeu    a0, t0, 3f
        sub     t1, t0, a0              # sectors from `sector` to the end of the disk
        bltu    t1, a1, 3f
        mov     a0, zero
        ret
1:      li      a0, -ENODEV
        ret
2:      li      a0, -EINVAL
        ret
3:      li      a0, -EIO
        ret

# disk_copy(a0 = dst, a1 = src, a2 = bytes, a multiple of SECTOR_SIZE): memcpy, four
# words an iteration when both addresses are word-aligned (disk_buf always is).  Leaf.
disk_copy:
        or      t0, a0, a1
        andi    t0, t0, 3
        bnez    t0, memcpy
        add     t3, a0, a2
1:      lw      t0, 0(a1)
        lw      t1, 4(a1)
        lw      t2, 8(a1)
        sw      t0, 0(a0)
        lw      t0, 12(a1)
        sw      t1, 4(a0)
        sw      t2, 8(a0)
        sw      t0, 12(a0)
        addi    a0, a0, 16
        addi    a1, a1, 16
        bne     a0, t3, 1b
        ret

        .data
        .balign 4
disk_sectors:   .word 0                 # the disk's size in sectors; 0: no disk

        .bss
        .balign PGSIZE
disk_buf:       .space DISK_IO_MAX * SECTOR_SIZE   # the bounce buffer: the DMA / ring buffer

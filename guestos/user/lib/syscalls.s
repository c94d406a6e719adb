# syscalls.s: one C-callable wrapper per system call of ../../include/syscall.inc.
#
# Each wrapper takes the call's arguments in a0..a2 (the calling convention of
# docs/isa.md), moves them to a1..a3, puts the number in a0 and traps.  The
# kernel preserves every register but a0 (and a1 for wait), so the wrappers
# need no stack.  Results are returned unchanged: a negative value is -errno.

        .include "../../include/syscall.inc"

        .text

# exit(status): end the calling process with `status` (0..255).  Does not return.
        .globl  exit
        .type   exit, @function
exit:
        mov     a1, a0
        li      a0, SYS_EXIT
        syscall
        break                           # not reached; a kernel that returns gets a breakpoint
        .size   exit, . - exit

# write(buf, len) -> bytes written to the console, or -EFAULT.
        .globl  write
        .type   write, @function
write:
        mov     a2, a1
        mov     a1, a0
        li      a0, SYS_WRITE
        syscall
        ret
        .size   write, . - write

# read(buf, len) -> bytes read from the console (waits for at least one),
# 0 at end of input, or -EFAULT.
        .globl  read
        .type   read, @function
read:
        mov     a2, a1
        mov     a1, a0
        li      a0, SYS_READ
        syscall
        ret
        .size   read, . - read

# getpid() -> the caller's pid.
        .globl  getpid
        .type   getpid, @function
getpid:
        li      a0, SYS_GETPID
        syscall
        ret
        .size   getpid, . - getpid

# yield() -> 0, after the other runnable processes had a turn.
        .globl  yield
        .type   yield, @function
yield:
        li      a0, SYS_YIELD
        syscall
        ret
        .size   yield, . - yield

# sbrk(increment) -> the old break, or -ENOMEM.  Grown pages read as zero.
        .globl  sbrk
        .type   sbrk, @function
sbrk:
        mov     a1, a0
        li      a0, SYS_SBRK
        syscall
        ret
        .size   sbrk, . - sbrk

# spawn(name) -> pid of a new process running boot module `name` (NUL-terminated),
# or -ENOENT, -EFAULT, -ENOMEM.
        .globl  spawn
        .type   spawn, @function
spawn:
        mov     a1, a0
        li      a0, SYS_SPAWN
        syscall
        ret
        .size   spawn, . - spawn

# roi_begin() / roi_end(): mark where the region of interest begins and ends (what
# kite compare reports as the workload phase).  Return 0.
        .globl  roi_begin
        .type   roi_begin, @function
roi_begin:
        li      a1, 1
        li      a0, SYS_ROI
        syscall
        ret
        .size   roi_begin, . - roi_begin

        .globl  roi_end
        .type   roi_end, @function
roi_end:
        mov     a1, zero
        li      a0, SYS_ROI
        syscall
        ret
        .size   roi_end, . - roi_end

# wait(pid, status) -> pid of an exited child (pid -1: any child), or -ECHILD.
# When a child was reaped and `status` is not 0, its exit status is stored
# at *status; on error *status is left alone.
        .globl  wait
        .type   wait, @function
wait:
        mov     t0, a1                  # the kernel returns the status in a1
        mov     a1, a0
        li      a0, SYS_WAIT
        syscall
        bltz    a0, 1f
        beqz    t0, 1f
        sw      a1, 0(t0)
1:      ret
        .size   wait, . - wait

# disk_read(sector, buf, count) -> count: `count` sectors (1..DISK_IO_MAX, SECTOR_SIZE
# bytes each) of the disk from `sector` on, into buf; or -ENODEV (no disk), -EINVAL
# (count 0 or over DISK_IO_MAX), -EIO (a range beyond the disk, or a device error),
# -EFAULT (buf not writable).
        .globl  disk_read
        .type   disk_read, @function
disk_read:
        mov     a3, a2
        mov     a2, a1
        mov     a1, a0
        li      a0, SYS_DISK_READ
        syscall
        ret
        .size   disk_read, . - disk_read

# disk_write(sector, buf, count) -> count: `count` sectors from buf to the disk from
# `sector` on; or -ENODEV, -EINVAL, -EIO, -EFAULT (buf not readable), as disk_read.
        .globl  disk_write
        .type   disk_write, @function
disk_write:
        mov     a3, a2
        mov     a2, a1
        mov     a1, a0
        li      a0, SYS_DISK_WRITE
        syscall
        ret
        .size   disk_write, . - disk_write

# disk_size() -> the disk's size in sectors, or -ENODEV.
        .globl  disk_size
        .type   disk_size, @function
disk_size:
        li      a0, SYS_DISK_SIZE
        syscall
        ret
        .size   disk_size, . - disk_size

# syscall.s: the system calls of guestos/include/syscall.inc, dispatched through a
# table indexed by number.  Arguments come from the trap frame's a1..a3; the result
# goes back in its a0.  Every user pointer is checked with user_check.

        .include "kernel.inc"

        .equ HEAP_LIMIT, USTACK_TOP - USTACK_SIZE - PGSIZE   # a guard page below the stack
        .equ MODNAME_MAX, 64            # longest module name spawn accepts, NUL included

        .text
        .globl syscall

# syscall(a0 = trap frame): run the call numbered tf.a0; an unknown number kills the
# process.
syscall:
        enter
        mov     s0, a0
        lw      t0, TF_A0(s0)
        li      t1, NSYSCALLS
        bgeu    t0, t1, 1f
        slli    t0, t0, 2
        la      t1, syscalls
        add     t1, t1, t0
        lw      t1, 0(t1)
        lw      a0, TF_A1(s0)
        lw      a1, TF_A2(s0)
        lw      a2, TF_A3(s0)
        jalr    ra, t1, 0
        sw      a0, TF_A0(s0)           # a process that blocked gets its result later
        leave
1:      la      a0, msg_bad_syscall
        mov     a1, t0
        call    kill_current
        leave

# sys_exit(a0 = status): does not come back to the caller.
sys_exit:
        j       proc_exit

# sys_write(a0 = buf, a1 = len) -> len, or -EFAULT.
sys_write:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     a2, zero
        call    user_check
        bnez    a0, 1f
        mov     a0, s0
        mov     a1, s1
        call    console_write
        mov     a0, s1
1:      leave

# sys_read(a0 = buf, a1 = len) -> bytes read (at least one unless at end of input), 0
# at end of input or for len 0, or -EFAULT.
sys_read:
        beqz    a1, 2f
        enter
        mov     s0, a0
        mov     s1, a1
        li      a2, 1
        call    user_check
        bnez    a0, 1f
        mov     a0, s0
        mov     a1, s1
        call    console_read
1:      leave
2:      mov     a0, zero
        ret

# sys_getpid() -> the caller's pid.
sys_getpid:
        la      t0, cur_proc
        lw      t0, 0(t0)
        lw      a0, P_PID(t0)
        ret

# sys_yield() -> 0, after every other runnable process had a turn.
sys_yield:
        push    ra
        call    schedule
        pop     ra
        mov     a0, zero
        ret

# sys_sbrk(a0 = increment, signed) -> the old break, or -ENOMEM (beyond HEAP_LIMIT or
# below the heap's start).  Growing maps nothing (the pages are demand-zero);
# shrinking frees the pages above the new break.
sys_sbrk:
        enter
        la      t0, cur_proc
        lw      s0, 0(t0)
        lw      s1, P_BRK(s0)
        add     s2, s1, a0
        bltz    a0, 1f
        bltu    s2, s1, 9f              # wrapped
        li      t0, HEAP_LIMIT
        bltu    t0, s2, 9f
        j       2f
1:      lw      t0, P_HEAP(s0)
        bltu    s2, t0, 9f
        bgeu    s2, s1, 9f              # wrapped
        lw      a0, P_PGDIR(s0)
        li      t0, PGSIZE - 1
        add     a1, s2, t0
        add     a2, s1, t0
        li      t0, ~(PGSIZE - 1)
        and     a1, a1, t0
        and     a2, a2, t0
        call    uvm_unmap
2:      sw      s2, P_BRK(s0)
        mov     a0, s1
        leave
9:      li      a0, -ENOMEM
        leave

# sys_spawn(a0 = name) -> pid of the new process, or -ENOENT, -EFAULT, -ENOMEM.
sys_spawn:
        enter
        addi    sp, sp, -MODNAME_MAX
        mov     s0, a0
        mov     s1, zero
1:      add     a0, s0, s1              # copy the name in, checking each byte
        li      a1, 1
        mov     a2, zero
        call    user_check
        bnez    a0, 3f
        add     t0, s0, s1
        lbu     t0, 0(t0)
        add     t1, sp, s1
        sb      t0, 0(t1)
        beqz    t0, 2f
        addi    s1, s1, 1
        li      t0, MODNAME_MAX
        bne     s1, t0, 1b
        li      a0, -ENOENT             # longer than any module name
        j       3f
2:      mov     a0, sp
        la      t0, cur_proc
        lw      a1, 0(t0)
        call    proc_spawn
3:      addi    sp, sp, MODNAME_MAX
        leave

# sys_wait(a0 = pid or -1) -> see proc_wait.
sys_wait:
        j       proc_wait

# sys_roi(a0 = 1: begin, 0: end) -> 0, or -EINVAL.  Marks the region of interest.
sys_roi:
        li      t0, 1
        bltu    t0, a0, 1f
        li      t0, MARK_ROI_END
        sub     a0, t0, a0              # 1 -> ROI_BEGIN (2), 0 -> ROI_END (3)
        push    ra
        call    phase_mark
        pop     ra
        mov     a0, zero
        ret
1:      li      a0, -EINVAL
        ret

        .rodata
        .balign 4
syscalls:       .word sys_exit, sys_write, sys_read, sys_getpid, sys_yield, sys_sbrk
                .word sys_spawn, sys_wait, sys_roi
                .word sys_disk_read, sys_disk_write, sys_disk_size      # disk.s
msg_bad_syscall: .asciz "bad syscall "

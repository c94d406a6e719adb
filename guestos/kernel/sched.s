# sched.s: round-robin scheduling.  A process switch changes cur_proc, cur_tf (the trap
# frame trap_return restores) and, when it differs, the address space.

        .include "kernel.inc"

        .text
        .globl schedule, as_switch

# schedule(): make current the next RUNNABLE process after cur_proc in proc_table order,
# wrapping around, cur_proc itself last.  Panics if no process can run.
schedule:
        enter
        call    irq_save                # the switch is a critical section
        mov     s3, a0
        la      t0, cur_proc
        lw      t0, 0(t0)
        la      s0, proc_table
        li      s1, NPROC * PROC_SIZE   # offset of cur_proc (past the end if none)
        beqz    t0, 1f
        sub     s1, t0, s0
1:      li      s2, NPROC
2:      addi    s1, s1, PROC_SIZE
        li      t0, NPROC * PROC_SIZE
        bltu    s1, t0, 3f
        mov     s1, zero
3:      add     a0, s0, s1
        lw      t0, P_STATE(a0)
        li      t1, PROC_RUNNABLE
        beq     t0, t1, 4f
        addi    s2, s2, -1
        bnez    s2, 2b
        la      a0, msg_sched
        la      a1, msg_none
        j       panic
4:      la      t0, cur_proc
        sw      a0, 0(t0)
        addi    t1, a0, P_TF
        la      t0, cur_tf
        sw      t1, 0(t0)
        lw      a0, P_PGDIR(a0)
        call    as_switch
        mov     a0, s3
        call    irq_restore
        leave

# as_switch(a0 = page directory kva): activate it unless it is already current.
as_switch:
        la      t0, cur_as
        lw      t1, 0(t0)
        beq     t1, a0, 1f
        sw      a0, 0(t0)
        j       as_activate
1:      ret

        .rodata
msg_sched:      .asciz "sched"
msg_none:       .asciz "no runnable process"

        .data
cur_as: .word 0                         # the page directory last activated

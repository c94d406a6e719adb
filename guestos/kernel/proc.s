# proc.s: the process table, spawning boot modules, exit, wait and reaping.
#
# States: UNUSED -> RUNNABLE (proc_spawn) -> ZOMBIE (proc_exit: every frame freed at
# once) -> UNUSED (reaped by wait).  A parent blocked in wait is WAITING; the exit of a
# child it waits for completes its wait (results written into its trap frame) and
# makes it RUNNABLE.  Orphans go to init; init's exit powers the machine off with its
# status.

        .include "kernel.inc"

        .text
        .globl proc_spawn, proc_exit, proc_wait, cur_proc, cur_tf, proc_table, debug

# proc_spawn(a0 = module name, a1 = parent proc or 0) -> a0 = pid of a new RUNNABLE
# process running that boot module, or -ENOENT (no such module), -ENOMEM (no slot, no
# memory), -EINVAL (not a loadable user program).
proc_spawn:
        enter
        mov     s1, a1
        mov     s2, a0
        call    module_find
        beqz    a0, 8f
        mov     s3, a0
        call    proc_slot
        beqz    a0, 7f
        mov     s0, a0
        call    uvm_create
        beqz    a0, 7f
        sw      a0, P_PGDIR(s0)
        mov     a0, s0
        mov     a1, s3
        call    elf_load
        bnez    a0, 6f
        addi    a0, s0, P_NAME
        mov     a1, s2
        li      a2, NAME_MAX - 1
        call    strlcpy
        sw      s1, P_PARENT(s0)
        bnez    s1, 5f
        la      t0, init_proc           # the first process
        sw      s0, 0(t0)
5:      la      t0, nextpid
        lw      t1, 0(t0)
        sw      t1, P_PID(s0)
        addi    t2, t1, 1
        sw      t2, 0(t0)
        li      t0, PROC_RUNNABLE
        sw      t0, P_STATE(s0)
        mov     a0, t1
        leave
6:      mov     s1, a0                  # the loader's error
        lw      a0, P_PGDIR(s0)
        call    uvm_destroy
        mov     a0, s1
        leave
7:      li      a0, -ENOMEM
        leave
8:      li      a0, -ENOENT
        leave

# module_find(a0 = name) -> a0 = kva of the boot-module entry with that name, or 0.
module_find:
        enter
        mov     s0, a0
        la      t0, modules
        lw      s1, 0(t0)
        la      t0, module_count
        lw      s2, 0(t0)
1:      beqz    s2, 2f
        lw      a1, MOD_NAME(s1)
        li      t0, KERNBASE
        add     a1, a1, t0
        mov     a0, s0
        call    strcmp
        beqz    a0, 3f
        addi    s1, s1, MOD_ENTRY_SIZE
        addi    s2, s2, -1
        j       1b
2:      mov     a0, zero
        leave
3:      mov     a0, s1
        leave

# proc_slot() -> a0 = an UNUSED proc, zeroed (still UNUSED), or 0 if the table is full.
proc_slot:
        la      a0, proc_table
        li      t1, NPROC
1:      lw      t0, P_STATE(a0)
        beqz    t0, 2f
        addi    a0, a0, PROC_SIZE
        addi    t1, t1, -1
        bnez    t1, 1b
        mov     a0, zero
        ret
2:      addi    t1, a0, PROC_SIZE
        mov     t0, a0
3:      sw      zero, 0(t0)
        addi    t0, t0, 4
        bne     t0, t1, 3b
        ret

# proc_exit(a0 = status): end the current process: free its address space, give its
# children to init, become a ZOMBIE (completing its parent's wait), and schedule.
# When init exits, power off with its status.
proc_exit:
        enter
        mov     s1, a0
        la      t0, cur_proc
        lw      s0, 0(t0)
        lw      t0, P_PID(s0)
        li      t1, 1
        beq     t0, t1, 5f
        la      t0, kpgdir
        lw      a0, 0(t0)
        call    as_switch
        lw      a0, P_PGDIR(s0)
        call    uvm_destroy
        sw      zero, P_PGDIR(s0)
        sw      s1, P_XSTATUS(s0)
        li      t0, PROC_ZOMBIE
        sw      t0, P_STATE(s0)
        la      s2, proc_table          # reparent the children to init
        li      s3, NPROC
1:      lw      t0, P_PARENT(s2)
        bne     t0, s0, 2f
        la      t0, init_proc
        lw      t0, 0(t0)
        sw      t0, P_PARENT(s2)
        lw      t0, P_STATE(s2)
        li      t1, PROC_ZOMBIE
        bne     t0, t1, 2f
        mov     a0, s2
        call    notify_parent
2:      addi    s2, s2, PROC_SIZE
        addi    s3, s3, -1
        bnez    s3, 1b
        mov     a0, s0
        call    notify_parent
        call    schedule
        leave
5:      mov     a0, s1                  # init
        call    power_off_with

# power_off_with(a0 = status): power off; with "debug" print the free-frame count first.
power_off_with:
        mov     s0, a0
        la      t0, debug
        lw      t0, 0(t0)
        beqz    t0, 1f
        la      a0, msg_power_off
        call    kputs
        call    print_free
1:      mov     a0, s0
        j       power_off

# notify_parent(a0 = zombie proc): if its parent waits for it, complete that wait (pid
# and status into the parent's a0/a1), reap it and make the parent RUNNABLE.
notify_parent:
        lw      t0, P_PARENT(a0)
        lw      t1, P_STATE(t0)
        li      t2, PROC_WAITING
        bne     t1, t2, 2f
        lw      t1, P_WAITPID(t0)
        li      t2, -1
        beq     t1, t2, 1f
        lw      t2, P_PID(a0)
        bne     t1, t2, 2f
1:      lw      t1, P_PID(a0)
        sw      t1, P_TF + TF_A0(t0)
        lw      t1, P_XSTATUS(a0)
        sw      t1, P_TF + TF_A1(t0)
        li      t1, PROC_RUNNABLE
        sw      t1, P_STATE(t0)
        j       reap
2:      ret

# reap(a0 = zombie proc): free its slot; with "debug" report the free-frame count.
reap:
        sw      zero, P_STATE(a0)
        la      t0, debug
        lw      t0, 0(t0)
        beqz    t0, 1f
        enter
        lw      s0, P_PID(a0)
        la      a0, msg_reaped
        call    kputs
        mov     a0, s0
        call    kputdec
        la      a0, msg_comma
        call    kputs
        call    print_free
        leave
1:      ret

# print_free(): print "N free frames\n".
print_free:
        push    ra
        la      t0, free_frames
        lw      a0, 0(t0)
        call    kputdec
        la      a0, msg_free
        call    kputs
        pop     ra
        ret

# proc_wait(a0 = pid, or -1 for any child) -> a0 = the pid of a ZOMBIE child it reaped
# (its status put in the current trap frame's a1), -ECHILD if no such child, or
# anything when it blocked: then the current process is WAITING and notify_parent
# writes the results when the child exits.
proc_wait:
        enter
        mov     s0, a0
        la      t0, cur_proc
        lw      s1, 0(t0)
        la      s2, proc_table
        li      s3, NPROC
        li      t3, 0                   # a matching child exists
1:      lw      t0, P_PARENT(s2)
        bne     t0, s1, 3f
        lw      t0, P_STATE(s2)
        beqz    t0, 3f
        li      t1, -1
        beq     s0, t1, 2f
        lw      t1, P_PID(s2)
        bne     t1, s0, 3f
2:      li      t3, 1
        li      t1, PROC_ZOMBIE
        bne     t0, t1, 3f
        lw      t0, P_XSTATUS(s2)
        sw      t0, P_TF + TF_A1(s1)
        lw      s0, P_PID(s2)
        mov     a0, s2
        call    reap
        mov     a0, s0
        leave
3:      addi    s2, s2, PROC_SIZE
        addi    s3, s3, -1
        bnez    s3, 1b
        beqz    t3, 4f
        sw      s0, P_WAITPID(s1)
        li      t0, PROC_WAITING
        sw      t0, P_STATE(s1)
        call    schedule
        mov     a0, zero
        leave
4:      li      a0, -ECHILD
        leave

        .rodata
msg_reaped:     .asciz "kernel: reaped pid "
msg_comma:      .asciz ", "
msg_free:       .asciz " free frames\n"
msg_power_off:  .asciz "kernel: power off, "

        .data
nextpid:        .word 1
cur_proc:       .word 0                 # the running process (0 before the first)
cur_tf:         .word boot_tf           # where trap_entry saves registers
debug:          .word 0                 # the command line contains "debug"
        .globl init_proc, modules, module_count
init_proc:      .word 0                 # pid 1
modules:        .word 0                 # kva of the boot-module entries
module_count:   .word 0

        .bss
        .balign 4
boot_tf:        .space TF_SIZE          # catches a trap before the first process runs
proc_table:     .space NPROC * PROC_SIZE

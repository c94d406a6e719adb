# trap.s: the dispatch on the cause of a trap.
#
# The kernel is not preemptible and never blocks inside a trap: every trap runs to the
# end on the one kernel stack (kstack_top) with interrupts off, and a process switch
# just changes cur_tf, the trap frame trap_return restores.  The trap vector
# (trap_entry) and the way back to user mode (trap_return) differ between the native and
# the paravirtual build: they are pv-ops (pvops.s), as are trap_cause and trap_badaddr.

        .include "kernel.inc"

        .text
        .globl trap, kill_current

# trap(a0 = trap frame): dispatch on the cause.  A trap from kernel mode panics; a
# timer interrupt preempts; a disk interrupt needs nothing more (disk_intr); a syscall
# runs (epc past it); a page fault in a demand-zero region maps a zeroed page; any
# other user exception kills the process.
trap:
        enter
        mov     s0, a0
        call    trap_cause
        mov     s1, a0
        lw      t0, TF_STATUS(s0)
        andi    t0, t0, STATUS_PKM
        bnez    t0, kernel_trap
        bltz    s1, 3f                  # CAUSE_INTERRUPT is the sign bit
        andi    s2, s1, CAUSE_CODE_MASK
        li      t0, EXC_SYSCALL
        bne     s2, t0, 1f
        lw      t0, TF_EPC(s0)
        addi    t0, t0, 4
        sw      t0, TF_EPC(s0)
        mov     a0, s0
        call    syscall
        leave
1:      li      t0, EXC_PAGE_FAULT
        bne     s2, t0, 2f
        mov     a0, s1
        call    page_fault
        leave
2:      mov     a0, s2
        lw      a1, TF_EPC(s0)
        call    user_exception
        leave
3:      andi    t0, s1, CAUSE_CODE_MASK
        li      t1, IRQ_TIMER
        bne     t0, t1, 4f
        call    timer_ack
        call    schedule                # round robin: the interrupted process goes last
        leave
4:      li      t1, IRQ_DISK
        bne     t0, t1, 5f
        call    disk_intr               # the driver waited for its completion already (disk.s)
        leave
5:      la      a0, msg_trap
        la      a1, msg_interrupt
        j       panic

# page_fault(a0 = cause): a not-present fault in a demand-zero region gets its page;
# anything else kills the process.
page_fault:
        enter
        mov     s1, a0
        call    trap_badaddr
        mov     s0, a0
        srli    t0, s1, 8               # the error code's P bit: a protection fault
        andi    t0, t0, 1
        bnez    t0, 1f
        la      t0, cur_proc
        lw      a0, 0(t0)
        mov     a1, s0
        call    uvm_demand
        beqz    a0, 2f
1:      la      a0, msg_page_fault
        mov     a1, s0
        call    kill_current
2:      leave

# user_exception(a0 = exception code, a1 = epc): kill the process, naming the exception.
user_exception:
        li      t0, EXC_NAMES_COUNT
        bltu    a0, t0, 1f
        mov     a0, zero
1:      slli    a0, a0, 2
        la      t0, exc_names
        add     t0, t0, a0
        lw      a0, 0(t0)
        j       kill_current

# kill_current(a0 = reason, a1 = address): print "kernel: pid N (NAME) killed: REASON
# 0xADDR" and end the current process with STATUS_KILLED.
kill_current:
        enter
        mov     s0, a0
        mov     s1, a1
        la      t0, cur_proc
        lw      s2, 0(t0)
        la      a0, msg_kernel_pid
        call    kputs
        lw      a0, P_PID(s2)
        call    kputdec
        la      a0, msg_open
        call    kputs
        addi    a0, s2, P_NAME
        call    kputs
        la      a0, msg_killed
        call    kputs
        mov     a0, s0
        call    kputs
        mov     a0, s1
        call    kputhex
        la      a0, msg_newline
        call    kputs
        li      a0, STATUS_KILLED
        call    proc_exit
        leave

# kernel_trap (s0 = the trap frame): a trap from kernel mode.  Panics, naming cause,
# epc and badaddr.
kernel_trap:
        la      a0, msg_kernel_trap
        call    kputs
        call    trap_cause
        call    kputhex
        la      a0, msg_epc
        call    kputs
        lw      a0, TF_EPC(s0)
        call    kputhex
        la      a0, msg_badaddr
        call    kputs
        call    trap_badaddr
        call    kputhex
        la      a0, msg_newline
        call    kputs
        la      a0, msg_trap
        la      a1, msg_kernel_mode
        j       panic

        .rodata
        .balign 4
        .equ EXC_NAMES_COUNT, 9
exc_names:      .word msg_exception, msg_illegal, msg_privileged, msg_misaligned, msg_page_fault
                .word msg_divide, msg_breakpoint, msg_exception, msg_bus_error
msg_exception:  .asciz "exception at "
msg_illegal:    .asciz "illegal instruction at "
msg_privileged: .asciz "privileged instruction at "
msg_misaligned: .asciz "misaligned access at "
msg_page_fault: .asciz "page fault at "
msg_divide:     .asciz "divide by zero at "
msg_breakpoint: .asciz "breakpoint at "
msg_bus_error:  .asciz "bus error at "
msg_kernel_pid: .asciz "kernel: pid "
msg_open:       .asciz " ("
msg_killed:     .asciz ") killed: "
msg_newline:    .asciz "\n"
msg_trap:       .asciz "trap"
msg_interrupt:  .asciz "unexpected interrupt"
msg_kernel_mode: .asciz "fault in kernel mode"
msg_kernel_trap: .asciz "kernel trap: cause "
msg_epc:        .asciz " epc "
msg_badaddr:    .asciz " badaddr "

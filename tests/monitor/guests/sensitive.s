# sensitive.s: rdsr and wrsr used the way a kernel uses them, and what they read.
#
# rdsr / wrsr are sensitive but not privileged (docs/isa.md, "rdsr and
# wrsr"): they never trap.  This kernel reads status with rdsr at boot, after
# `ei`, inside a critical section (rdsr to save, di) and after wrsr restores
# the saved status; sets the user-flag byte with wrsr; reads status inside a
# system-call handler.  It shows that wrsr really restores IE: a timer that
# expires inside the critical section interrupts right after the wrsr.  Then
# user code reads status with rdsr and tries to set every bit with wrsr.
#
# On the bare machine every kernel rdsr shows KM = 1.  A trap-and-emulate VMM
# runs this kernel with KM = 0, and nothing traps, so there it reads KM = 0
# and its wrsr cannot restore the virtual IE: the Popek-Goldberg
# demonstration.  Exit code 23 (see sensitive.expected for the bare transcript).
#
# Paging stays off throughout.

        .include "kernel.inc"

        .equ UF_VALUE,  0x5A00          # the user-flag byte, in place
        .equ ONE_SHOT,  50              # timer interval inside the critical section
        .equ SYS_KERNEL, 0              # syscall numbers (a0)
        .equ SYS_USER_DONE, 1           # a1, a2: what user mode read
        .equ EXIT_CODE, 23

        .text
        .globl _start
# _start: entry from the boot state (kernel mode, IE = 0, paging off).
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        print   "sensitive: boot\n"
        rdsr    s0
        print   "rdsr at boot: "
        mov     a0, s0
        call    print_status
        ei
        rdsr    s0
        print   "rdsr after ei: "
        mov     a0, s0
        call    print_status
        call    critical_section
        li      t0, UF_VALUE | STATUS_KM | STATUS_IE
        wrsr    t0
        rdsr    s0
        print   "rdsr after wrsr of the user flags 0x5a: "
        mov     a0, s0
        call    print_status
        li      a0, SYS_KERNEL
        syscall
        print   "rdsr in the system-call handler: "
        la      t0, handler_status
        lw      a0, 0(t0)
        call    print_status
        call    run_user
        print   "sensitive: done, exit code 23\n"
        li      a0, EXIT_CODE
        j       power_off

# critical_section: the "save status, di, ..., restore status" idiom, with a
# one-shot timer that expires inside it.  Prints status inside and after, and
# the tick count before and after the restoring wrsr.  Expects IE = 1 on entry.
# Clobbers t0-t3, a0, a1, s0, s1.
critical_section:
        push    ra
        rdsr    s1                      # save status (IE = 1)
        di
        rdsr    s0
        print   "rdsr in a critical section (after rdsr, di): "
        mov     a0, s0
        call    print_status
        li      t0, TIMER_INTERVAL
        li      t1, ONE_SHOT
        sw      t1, 0(t0)
        li      t0, TIMER_CTRL
        li      t1, TIMER_ENABLE
        sw      t1, 0(t0)
        li      t0, TIMER_COUNT
1:      lw      t1, 0(t0)               # until the countdown has expired: IRQ pending
        bnez    t1, 1b
        print   "timer expired inside the critical section, ticks "
        la      t0, ticks
        lw      a0, 0(t0)
        call    put_dec
        wrsr    s1                      # restore status: IE = 1 again
        la      t0, ticks
        lw      s0, 0(t0)               # the interrupt came before this load
        print   "\nticks right after the restoring wrsr: "
        mov     a0, s0
        call    put_dec
        rdsr    s0
        print   "\nrdsr after the restoring wrsr: "
        mov     a0, s0
        call    print_status
        pop     ra
        ret

# run_user: run user_code in user mode (IE off) until its SYS_USER_DONE, then
# print the two values it read.  Clobbers t0-t3, a0, a1, s0, s1.
run_user:
        push    ra
        la      t0, kernel_sp
        sw      sp, 0(t0)
        la      t0, user_code
        mtcr    epc, t0
        li      t0, UF_VALUE | STATUS_KM        # PKM = 0, PIE = 0: rfe enters user mode
        mtcr    status, t0
        rfe
user_returned:
        la      t0, user_status
        lw      s0, 0(t0)
        lw      s1, 4(t0)
        print   "rdsr in user mode: "
        mov     a0, s0
        call    print_status
        print   "rdsr in user mode after wrsr 0xffff: "
        mov     a0, s1
        call    print_status
        pop     ra
        ret

# user_code: read status, try to set every bit with wrsr, read it again, and
# hand both to the kernel.
user_code:
        rdsr    a1
        li      t0, 0xFFFF
        wrsr    t0
        rdsr    a2
        li      a0, SYS_USER_DONE
        syscall

# print_status(a0 = status): print "0x... (KM=k IE=i)" and a newline.
# Clobbers t0-t2, a0, a1.
print_status:
        push    ra
        push    s0
        mov     s0, a0
        call    put_hex
        print   " (KM="
        andi    a0, s0, STATUS_KM
        addi    a0, a0, '0'
        call    putc
        print   " IE="
        srli    a0, s0, 1
        andi    a0, a0, 1
        addi    a0, a0, '0'
        call    putc
        print   ")\n"
        pop     s0
        pop     ra
        ret

# trap_entry: the trap vector.  Timer: count a tick, acknowledge.  A kernel
# syscall: record rdsr in handler_status, continue after it.  The user's
# SYS_USER_DONE: record a1, a2 in user_status and resume run_user in kernel
# mode.  Preserves every register of the interrupted kernel code; anything
# else panics.
trap_entry:
        mtcr    scratch, t0
        la      t0, trap_save
        sw      t1, 0(t0)
        mfcr    t1, cause
        li      t0, CAUSE_TIMER
        beq     t1, t0, timer_tick
        li      t0, EXC_SYSCALL
        bne     t1, t0, unexpected_trap
        li      t0, SYS_USER_DONE
        beq     a0, t0, user_done
        rdsr    t1
        la      t0, handler_status
        sw      t1, 0(t0)
        mfcr    t1, epc
        addi    t1, t1, 4
        mtcr    epc, t1
        j       trap_return
timer_tick:
        li      t0, TIMER_ACK
        sw      zero, 0(t0)
        la      t0, ticks
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
trap_return:
        la      t0, trap_save
        lw      t1, 0(t0)
        mfcr    t0, scratch
        rfe
user_done:
        la      t0, user_status
        sw      a1, 0(t0)
        sw      a2, 4(t0)
        la      t0, kernel_sp
        lw      sp, 0(t0)
        j       user_returned

unexpected_trap:
        print   "sensitive: unexpected trap, cause "
        mfcr    t0, cause
        print_hex t0
        print   "\n"
        li      a0, EXIT_UNEXPECTED
        j       power_off

        .data
        .balign 4
ticks:          .word 0
handler_status: .word 0
user_status:    .word 0, 0
kernel_sp:      .word 0
trap_save:      .word 0

        .bss
        .balign 16
stack:          .space 1024
stack_top:

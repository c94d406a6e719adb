# main.s: kmain, the rest of the boot once the kernel runs at its link address.

        .include "kernel.inc"

        .text
        .globl kmain

# kmain(a0 = boot-info kva, a1 = kva of the boot page directory, a2 = first free pa):
# set up the kernel address space, the frame allocator, the disk driver, the trap vector
# and the timer, start init (the first boot module) and enter it.  Does not return.
kmain:
        mov     s0, a0
        mov     s1, a1
        mov     a1, a2
        call    pv_init                 # a0 = first free pa
        mov     s2, a0
        mov     a0, s1
        call    kvm_init
        mov     a0, s0
        call    pv_boot_done
        lw      a1, BI_MEM_SIZE(s0)
        li      t0, KMAP_MAX
        bgeu    t0, a1, 1f
        mov     a1, t0
1:      mov     a0, s2
        call    kinit
        call    read_cmdline
        call    disk_setup              # before the trap vector: the native probe borrows it
        lw      t0, BI_MODULES(s0)
        li      t1, KERNBASE
        add     t0, t0, t1
        la      t1, modules
        sw      t0, 0(t1)
        lw      t0, BI_MODULE_COUNT(s0)
        la      t1, module_count
        sw      t0, 0(t1)
        la      a0, trap_entry
        call    trap_vector_set
        la      t0, module_count
        lw      t0, 0(t0)
        beqz    t0, 8f
        la      t0, modules
        lw      t0, 0(t0)
        lw      a0, MOD_NAME(t0)
        li      t0, KERNBASE
        add     a0, a0, t0
        mov     a1, zero
        call    proc_spawn
        bltz    a0, 9f
        la      t0, time_slice
        lw      a0, 0(t0)
        call    timer_start
        li      a0, MARK_BOOT_DONE      # what follows is the workload's (docs/guestos.md "Phases")
        call    phase_mark
        call    schedule
        j       trap_return
8:      la      a0, msg_main
        la      a1, msg_no_modules
        j       panic
9:      la      a0, msg_main
        la      a1, msg_no_init
        j       panic

# read_cmdline(s0 = boot-info kva): the kernel command line's words: "debug" sets
# debug; "slice=N" sets time_slice to N instructions per timer tick (0: no timer).
read_cmdline:
        enter
        lw      s1, BI_CMDLINE(s0)
        beqz    s1, 1f
        li      t0, KERNBASE
        add     s1, s1, t0
        mov     a0, s1
        la      a1, str_debug
        call    strstr
        la      t0, debug
        sw      a0, 0(t0)
        mov     a0, s1
        la      a1, str_slice
        call    strstr
        beqz    a0, 1f
        call    atou
        la      t0, time_slice
        sw      a0, 0(t0)
1:      leave

        .data
        .balign 4
time_slice:     .word TIME_SLICE        # instructions per timer tick

        .rodata
str_debug:      .asciz "debug"
str_slice:      .asciz "slice="
msg_main:       .asciz "main"
msg_no_modules: .asciz "no boot modules"
msg_no_init:    .asciz "cannot start init (the first module)"

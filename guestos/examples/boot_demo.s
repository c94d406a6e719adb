# boot_demo.s: a bare-metal Kite32 program in kernel mode.
#
# It installs a trap vector, builds a two-level page table (identity map of
# the first 4 MiB plus the four MMIO device pages), turns paging on, programs
# the interval timer, takes one timer interrupt, prints through the UART and
# powers off with exit code 7.  Expected console output:
#
#   kite32: booting
#   kite32: paging on
#   kite32: tick
#   kite32: timer interrupt taken, exit code 7
#
# Physical (= virtual) layout: linked and loaded at 0x00100000.

        .equ UART_TX,        0xF0000000
        .equ TIMER_CTRL,     0xF0001000
        .equ TIMER_INTERVAL, 0xF0001004
        .equ TIMER_ACK,      0xF000100C
        .equ POWER_EXIT,     0xF0003000
        .equ PTE_P, 1
        .equ PTE_W, 2
        .equ PTB_ENABLE, 1
        .equ CAUSE_TIMER, 0x80000000     # CAUSE_INTERRUPT | IRQ_TIMER
        .equ EXIT_CODE, 7
        .equ PDE_MMIO, (UART_TX >> 22) * 4   # byte offset of the MMIO PDE

        .text
        .globl _start
# _start: entry from the boot state (kernel mode, paging off, IE = 0).
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        la      a0, msg_boot
        call    puts
        call    build_page_tables
        la      t0, page_dir
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        la      a0, msg_paging
        call    puts
        li      t0, TIMER_INTERVAL       # one-shot timer, 1000 ticks from now
        li      t1, 1000
        sw      t1, 0(t0)
        li      t0, TIMER_CTRL
        li      t1, 1
        sw      t1, 0(t0)
        ei
1:      wfi                              # sleep until the handler has counted a tick
        la      t0, ticks
        lw      t1, 0(t0)
        beqz    t1, 1b
        di
        la      a0, msg_done
        call    puts
        li      a0, EXIT_CODE
        j       power_off

# build_page_tables: identity-map 0..4 MiB and the MMIO pages, kernel-only, writable.
# Clobbers t0-t3.  Does not load ptb.
        .type build_page_tables, @function
build_page_tables:
        la      t0, pt_low
        li      t1, PTE_P | PTE_W        # frame 0
        li      t2, 1024
1:      sw      t1, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, 4096
        addi    t2, t2, -1
        bnez    t2, 1b
        la      t0, pt_mmio
        li      t1, UART_TX | PTE_P | PTE_W
        li      t2, 4                    # UART, timer, disk, power
2:      sw      t1, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, 4096
        addi    t2, t2, -1
        bnez    t2, 2b
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)                # PDE 0: 0x00000000..0x003FFFFF
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)         # PDE 960: 0xF0000000..0xF03FFFFF
        ret

# trap_entry: the trap vector.  Counts timer interrupts; anything else is fatal.
        .type trap_entry, @function
trap_entry:
        push    t0
        push    t1
        push    a0
        push    ra
        mfcr    t0, cause
        li      t1, CAUSE_TIMER
        bne     t0, t1, unexpected_trap
        li      t0, TIMER_ACK
        sw      zero, 0(t0)
        la      t0, ticks
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        la      a0, msg_tick
        call    puts
        pop     ra
        pop     a0
        pop     t1
        pop     t0
        rfe

unexpected_trap:
        la      a0, msg_unexpected
        call    puts
        li      a0, 99
        j       power_off

# puts(a0 = NUL-terminated string): write it to the UART.  Clobbers t0, t1, a0.
        .type puts, @function
puts:
        li      t0, UART_TX
1:      lbu     t1, 0(a0)
        beqz    t1, 2f
        sw      t1, 0(t0)
        addi    a0, a0, 1
        j       1b
2:      ret

# power_off(a0 = exit code): write the power device; does not return.
power_off:
        li      t0, POWER_EXIT
        sw      a0, 0(t0)
        halt

        .rodata
msg_boot:       .asciz "kite32: booting\n"
msg_paging:     .asciz "kite32: paging on\n"
msg_tick:       .asciz "kite32: tick\n"
msg_done:       .asciz "kite32: timer interrupt taken, exit code 7\n"
msg_unexpected: .asciz "kite32: unexpected trap\n"

        .data
ticks:  .word 0

        .bss
        .balign 4096
page_dir:       .space 4096
pt_low:         .space 4096
pt_mmio:        .space 4096
stack:          .space 4096
stack_top:

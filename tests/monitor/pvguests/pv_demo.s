# pv_demo: a paravirtual (direct-mode) guest kernel.
#
# It prints through console_write, installs its trap vector, builds its own
# address space (a new L1 mapping DATA_PAGES of its frames at NEW_VA, and a
# new L2 = the bootstrap L2 plus that PDE) with ONE mmu_update batch (the two
# new tables' bootstrap entries made read-only), pins both, switches to the
# new L2 with set_base, then writes through NEW_VA and reads the same frames
# back through their gva = gpa mapping.  It takes TICKS periodic timer
# interrupts (set_timer, set_irq_enable; acknowledged at the emulated timer's
# ACK register), takes a page fault on an unmapped address that its handler
# reports and skips, and shuts down with exit code 7.
#
#   guest frames from first_free:  +0 new L1 | +1 new L2 | +2.. data pages
        .include "pv.inc"

        .equ NEW_VA, 0x80000000
        .equ UNMAPPED_VA, 0x40000000
        .equ DATA_PAGES, 3
        .equ PATTERN, 0xC0FFEE00
        .equ TICKS, 3
        .equ TICK_INTERVAL, 300
        .equ EXIT_CODE, 7

        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        say     msg_hello
        la      a1, trap_entry
        hcall   HC_SET_TRAP_VECTOR
        call    build_space
        call    use_space
        call    run_timer
        call    take_fault
        say     msg_bye
        li      a1, EXIT_CODE
        hcall   HC_SHUTDOWN

# build_space: the new L1 and L2 written by plain stores while their frames
# are still ordinary writable pages, then one mmu_update batch making both
# read-only, a flush, two pins and set_base.  Keeps s1 = the new L1's gfn.
build_space:
        push    ra
        li      t0, START_INFO_ADDR
        lw      s1, SI_FIRST_FREE(t0)
        srli    s1, s1, PAGE_SHIFT
        slli    s2, s1, PAGE_SHIFT      # the new L1, at gva = gpa
        mov     s3, zero
1:      addi    a0, s1, 2               # entry s3 -> data page s3
        add     a0, a0, s3
        call    mfn_of
        slli    a0, a0, PAGE_SHIFT
        ori     a0, a0, PTE_RW
        slli    t0, s3, 2
        add     t0, t0, s2
        sw      a0, 0(t0)
        addi    s3, s3, 1
        li      t0, DATA_PAGES
        bne     s3, t0, 1b
        li      t0, START_INFO_ADDR     # the new L2: a copy of the bootstrap L2 ...
        lw      t0, SI_PT_FIRST_GFN(t0)
        slli    t0, t0, PAGE_SHIFT
        addi    t1, s2, 0x1000
        li      t2, 1024
2:      lw      t3, 0(t0)
        sw      t3, 0(t1)
        addi    t0, t0, 4
        addi    t1, t1, 4
        addi    t2, t2, -1
        bnez    t2, 2b
        mov     a0, s1                  # ... plus the PDE of NEW_VA
        call    mfn_of
        slli    a0, a0, PAGE_SHIFT
        ori     a0, a0, PTE_RW
        addi    t1, s2, 0x1000
        sw      a0, (NEW_VA >> PDX_SHIFT) * 4(t1)
        la      s3, batch               # element i: table i's bootstrap PTE := read-only
        mov     s2, zero
3:      add     a0, s1, s2
        call    boot_pte_gva
        call    gva_to_ma
        sw      a0, 0(s3)
        add     a0, s1, s2
        call    mfn_of
        slli    a0, a0, PAGE_SHIFT
        ori     a0, a0, PTE_RO
        sw      a0, 4(s3)
        addi    s3, s3, 8
        addi    s2, s2, 1
        li      t0, 2
        bne     s2, t0, 3b
        la      a1, batch
        li      a2, 2
        hcall   HC_MMU_UPDATE
        bnez    a0, failed
        hcall   HC_TLB_FLUSH
        mov     a0, s1
        call    mfn_of
        mov     a1, a0
        li      a2, PIN_L1
        hcall   HC_PIN_TABLE
        bnez    a0, failed
        addi    a0, s1, 1
        call    mfn_of
        mov     s3, a0
        mov     a1, s3
        li      a2, PIN_L2
        hcall   HC_PIN_TABLE
        bnez    a0, failed
        mov     a1, s3
        mov     a2, s3
        hcall   HC_SET_BASE
        bnez    a0, failed
        say     msg_space
        pop     ra
        ret

# use_space: PATTERN + i into data page i through NEW_VA, then each read back
# through the page's gva = gpa mapping; prints how many match.
use_space:
        push    ra
        li      t0, NEW_VA
        li      t1, PATTERN
        li      t2, DATA_PAGES
1:      sw      t1, 0(t0)
        addi    t0, t0, 0x1000
        addi    t1, t1, 1
        addi    t2, t2, -1
        bnez    t2, 1b
        slli    t0, s1, PAGE_SHIFT      # data page 0 at gva = gpa
        addi    t0, t0, 0x2000
        li      t1, PATTERN
        li      t2, DATA_PAGES
        mov     s2, zero                # matches
2:      lw      t3, 0(t0)
        bne     t3, t1, 3f
        addi    s2, s2, 1
3:      addi    t0, t0, 0x1000
        addi    t1, t1, 1
        addi    t2, t2, -1
        bnez    t2, 2b
        say     msg_wrote
        mov     a0, s2
        call    putint
        say     msg_match
        pop     ra
        ret

# run_timer: a periodic timer with virtual IE on; spin (counting in `spins`)
# until the handler has counted TICKS ticks, then IE off and the timer off.
run_timer:
        push    ra
        li      a1, TICK_INTERVAL
        li      a2, TIMER_PERIODIC
        hcall   HC_SET_TIMER
        li      a1, 1
        hcall   HC_SET_IRQ_ENABLE
        la      s2, spins
        la      s3, ticks
1:      lw      t0, 0(s2)
        addi    t0, t0, 1
        sw      t0, 0(s2)
        lw      t0, 0(s3)
        sltiu   t0, t0, TICKS
        bnez    t0, 1b
        mov     a1, zero
        hcall   HC_SET_IRQ_ENABLE
        mov     a1, zero
        mov     a2, zero
        hcall   HC_SET_TIMER
        say     msg_ticks
        lw      a0, 0(s3)
        call    putint
        la      t0, back_to_back
        lw      t0, 0(t0)
        bnez    t0, 2f
        say     msg_spaced
        pop     ra
        ret
2:      say     msg_back_to_back
        pop     ra
        ret

# take_fault: a load from UNMAPPED_VA, which the handler reports and skips.
take_fault:
        push    ra
        la      t0, expect_fault
        li      t1, 1
        sw      t1, 0(t0)
        li      t0, UNMAPPED_VA
        lw      t1, 0(t0)
        say     msg_survived
        pop     ra
        ret

# failed(a0 = result): report the refused hypercall and shut down.
failed:
        mov     s3, a0
        say     msg_failed
        mov     a0, s3
        call    putint
        say     msg_newline
        li      a1, EXIT_FAILED
        hcall   HC_SHUTDOWN

# trap_entry: the virtual trap vector.  Timer: acknowledge, count, note
# whether the main loop ran since the last tick.  Expected page fault:
# report, skip the load.  Anything else: report and shut down.
trap_entry:
        trap_save
        mfcr    t0, cause
        li      t1, CAUSE_INTERRUPT
        beq     t0, t1, on_timer
        li      t1, EXC_PAGE_FAULT
        andi    t0, t0, 0xFF
        bne     t0, t1, unexpected
        say     msg_fault
        mfcr    a0, cause
        call    puthex
        say     msg_at
        mfcr    a0, badaddr
        call    puthex
        say     msg_newline
        la      t0, expect_fault
        lw      t1, 0(t0)
        beqz    t1, unexpected
        sw      zero, 0(t0)
        mfcr    t0, epc
        addi    t0, t0, 4
        mtcr    epc, t0
        j       trap_done
on_timer:
        li      t0, TIMER_BASE
        sw      zero, TIMER_ACK(t0)
        la      t0, ticks
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        la      t0, spins
        lw      t1, 0(t0)
        la      t0, last_spins
        lw      t2, 0(t0)
        sw      t1, 0(t0)
        bne     t1, t2, trap_done
        la      t0, back_to_back
        li      t1, 1
        sw      t1, 0(t0)
trap_done:
        trap_return

        .include "pvlib.inc"

        .rodata
msg_hello:      .asciz "pv_demo: direct-mode guest up\n"
msg_space:      .asciz "pv_demo: own address space: new L1 and L2 pinned, base switched\n"
msg_wrote:      .asciz "pv_demo: wrote 3 pages through 0x80000000, read back through gva = gpa: "
msg_match:      .asciz " match\n"
msg_ticks:      .asciz "pv_demo: timer ticks: "
msg_spaced:     .asciz ", the main loop ran between them\n"
msg_back_to_back: .asciz ", back to back (never acknowledged)\n"
msg_survived:   .asciz "pv_demo: page fault handled, continuing\n"
msg_bye:        .asciz "pv_demo: shutting down with exit code 7\n"
msg_failed:     .asciz "pv_demo: hypercall refused: "
msg_fault:      .asciz "trap: page fault, cause "
msg_at:         .asciz " at "

        .data
ticks:          .word 0
spins:          .word 0
last_spins:     .word -1
back_to_back:   .word 0
expect_fault:   .word 0
batch:          .space 16

        .bss
        .balign 16
stack:          .space 1024
stack_top:

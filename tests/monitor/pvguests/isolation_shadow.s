# isolation_shadow: the shadow-mode half of tests/monitor/test_isolation.py,
# an ordinary kernel (its own page tables, mtcr ptb, a bare-metal trap
# handler; hypercalls only for yield and the console).  It fills a page with
# SECRET_SHADOW, yields, then maps guest-physical 0 .. SCAN_PAGES pages at
# gva = gpa (far beyond its RAM) and reads the first word of each: pages
# beyond its RAM must give bus errors, and no page may hold the other VM's
# SECRET_PV (its own secret, seen once, shows the scan would find one).
# With paging off again it checks its own secret and powers off
# with 0, or 1 if it saw the other VM's secret or lost its own.
        .include "pv.inc"

        .equ SECRET_SHADOW, 0x5EC0DE02
        .equ SECRET_PV, 0x5EC0DE01
        .equ SCAN_PAGES, 1024           # 4 MiB of guest-physical space
        .equ EXC_BUS_ERROR, 8
        .equ POWER_EXIT, 0xF0003000

        .text
        .globl _start
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        la      a0, secret
        li      a1, SECRET_SHADOW
        call    fill_page
        hcall   HC_YIELD
        call    build_tables
        la      t0, directory
        ori     t0, t0, 1
        mtcr    ptb, t0
        mov     s0, zero                # page
        mov     s1, zero                # readable pages
        mov     s2, zero                # pages holding SECRET_PV
        mov     s3, zero                # bus errors (counted by trap_entry)
        mov     t3, zero                # pages holding SECRET_SHADOW
        li      a2, SECRET_SHADOW
        li      a3, SECRET_PV
1:      mov     t2, s3
        mov     t1, zero
        slli    t0, s0, PAGE_SHIFT
        lw      t1, 0(t0)
        bne     s3, t2, 2f
        addi    s1, s1, 1
        bne     t1, a2, 3f
        addi    t3, t3, 1
3:      bne     t1, a3, 2f
        addi    s2, s2, 1
2:      addi    s0, s0, 1
        li      t0, SCAN_PAGES
        bne     s0, t0, 1b
        mtcr    ptb, zero
        la      t0, own_seen
        sw      t3, 0(t0)
        call    report
        la      a0, secret
        li      a1, SECRET_SHADOW
        call    count_other
        or      a0, a0, s2
        li      t0, POWER_EXIT
        beqz    a0, 3f
        say     msg_breached
        li      a0, 1
        sw      a0, 0(t0)
3:      say     msg_intact
        li      t0, POWER_EXIT
        sw      zero, 0(t0)

# build_tables: directory[0] -> table; table[i] = page i, present, writable.
build_tables:
        la      t0, table
        li      t1, PTE_P | PTE_W
        li      t2, SCAN_PAGES
1:      sw      t1, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, 0x1000
        addi    t2, t2, -1
        bnez    t2, 1b
        la      t0, table
        ori     t0, t0, PTE_P | PTE_W
        la      t1, directory
        sw      t0, 0(t1)
        ret

# report: the scan's figures (s1, s3, s2, own_seen) on the console.
report:
        push    ra
        say     msg_readable
        mov     a0, s1
        call    putint
        say     msg_bus
        mov     a0, s3
        call    putint
        say     msg_seen
        mov     a0, s2
        call    putint
        say     msg_own
        la      t0, own_seen
        lw      a0, 0(t0)
        call    putint
        say     msg_times
        pop     ra
        ret

# trap_entry: a bus error is counted in s3 and skipped; anything else powers off with 2.
trap_entry:
        mtcr    scratch, t0
        mfcr    t0, cause
        addi    t0, t0, -EXC_BUS_ERROR
        bnez    t0, 1f
        addi    s3, s3, 1
        mfcr    t0, epc
        addi    t0, t0, 4
        mtcr    epc, t0
        mfcr    t0, scratch
        rfe
1:      li      t0, POWER_EXIT
        li      a0, 2
        sw      a0, 0(t0)

fill_page:
        li      t0, 1024
1:      sw      a1, 0(a0)
        addi    a0, a0, 4
        addi    t0, t0, -1
        bnez    t0, 1b
        ret

count_other:
        li      t0, 1024
        mov     t1, zero
1:      lw      t2, 0(a0)
        beq     t2, a1, 2f
        addi    t1, t1, 1
2:      addi    a0, a0, 4
        addi    t0, t0, -1
        bnez    t0, 1b
        mov     a0, t1
        ret

        .include "pvlib.inc"

        .rodata
msg_readable:   .asciz "shadow: scanned 4 MiB of guest-physical space: readable pages "
msg_bus:        .asciz ", bus errors "
msg_seen:       .asciz ", other VM's secret seen "
msg_own:        .asciz " times, own "
msg_times:      .asciz " times\n"
msg_intact:     .asciz "shadow: own secret intact\n"
msg_breached:   .asciz "shadow: ISOLATION BREACHED\n"

        .data
own_seen:       .word 0

        .bss
        .balign 4096
directory:      .space 4096
table:          .space 4096
secret:         .space 4096
stack:          .space 1024
stack_top:

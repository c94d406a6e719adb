# isolation_pv: the direct-mode half of tests/monitor/test_isolation.py.
# It fills a page with SECRET_PV, yields (so the other VM writes its own
# secret), then asks to map every machine frame below the end of the frames
# that follow its own (the VMM's and the next VM's, same size as its own),
# read-only, at its free frame's gva; it counts the answers.  After many
# yields it checks its secret and shuts down with EXIT_ISOLATED, or
# EXIT_BREACHED if any foreign frame was mapped or its secret changed.
        .include "pv.inc"

        .equ SECRET_PV, 0x5EC0DE01
        .equ YIELDS, 100
        .equ EXIT_ISOLATED, 5
        .equ EXIT_BREACHED, 1

        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        la      a0, secret
        li      a1, SECRET_PV
        call    fill_page
        hcall   HC_YIELD
        call    map_foreign
        li      s0, YIELDS
1:      hcall   HC_YIELD
        addi    s0, s0, -1
        bnez    s0, 1b
        la      a0, secret
        li      a1, SECRET_PV
        call    count_other
        bnez    a0, breached
        say     msg_intact
        la      t0, mapped
        lw      t0, 0(t0)
        bnez    t0, breached
        li      a1, EXIT_ISOLATED
        hcall   HC_SHUTDOWN
breached:
        say     msg_breached
        li      a1, EXIT_BREACHED
        hcall   HC_SHUTDOWN

# map_foreign: for each machine frame 0 .. own_last + nr_frames not this VM's,
# one mmu_update of the free frame's bootstrap PTE; counts in `mapped` and
# `eperm`, prints the tally.  s1 = frame, s2 = PTE machine address, s3 = limit.
map_foreign:
        push    ra
        li      t0, START_INFO_ADDR
        lw      a0, SI_FIRST_FREE(t0)
        srli    a0, a0, PAGE_SHIFT
        call    boot_pte_gva
        call    gva_to_ma
        mov     s2, a0
        li      t0, START_INFO_ADDR
        lw      s3, SI_NR_FRAMES(t0)
        addi    a0, s3, -1
        call    mfn_of                  # own last frame
        add     s3, s3, a0              # the next VM's last frame
        mov     s1, zero
1:      mov     a0, s1
        call    is_own
        bnez    a0, 3f
        la      a1, batch
        sw      s2, 0(a1)
        slli    t0, s1, PAGE_SHIFT
        ori     t0, t0, PTE_RO
        sw      t0, 4(a1)
        li      a2, 1
        hcall   HC_MMU_UPDATE
        la      t0, attempts
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        li      t1, -EPERM
        la      t0, eperm
        beq     a0, t1, 2f
        bnez    a0, 3f
        la      t0, mapped
2:      lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
3:      addi    s1, s1, 1
        bgeu    s3, s1, 1b
        say     msg_tried
        la      t0, attempts
        lw      a0, 0(t0)
        call    putint
        say     msg_mapped
        la      t0, mapped
        lw      a0, 0(t0)
        call    putint
        say     msg_eperm
        la      t0, eperm
        lw      a0, 0(t0)
        call    putint
        say     msg_newline
        pop     ra
        ret

# is_own(a0 = machine frame) -> a0 = 1 if the p2m list holds it, else 0.
is_own:
        li      t0, START_INFO_ADDR
        lw      t1, SI_NR_FRAMES(t0)
        lw      t0, SI_P2M(t0)
1:      lw      t2, 0(t0)
        beq     t2, a0, 2f
        addi    t0, t0, 4
        addi    t1, t1, -1
        bnez    t1, 1b
        mov     a0, zero
        ret
2:      li      a0, 1
        ret

# fill_page(a0 = page, a1 = word): every word of the page := a1.
fill_page:
        li      t0, 1024
1:      sw      a1, 0(a0)
        addi    a0, a0, 4
        addi    t0, t0, -1
        bnez    t0, 1b
        ret

# count_other(a0 = page, a1 = word) -> a0 = how many words of the page differ.
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
msg_tried:      .asciz "pv: asked to map "
msg_mapped:     .asciz " foreign frames: mapped "
msg_eperm:      .asciz ", refused with -EPERM "
msg_intact:     .asciz "pv: own secret intact\n"
msg_breached:   .asciz "pv: ISOLATION BREACHED\n"

        .data
attempts:       .word 0
mapped:         .word 0
eperm:          .word 0
batch:          .space 8

        .bss
        .balign 4096
secret:         .space 4096
stack:          .space 1024
stack_top:

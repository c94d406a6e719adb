# refetch: a direct-mode guest whose machine TLB still maps its code page to
# the old frame P after a (legal, not yet flushed) mmu_update remapped that
# page to a frame Q full of `nop`.  The next instruction, fetched from P
# through the stale TLB, traps to the VMM; the VMM re-fetches "the same"
# instruction through the guest's CURRENT tables and finds Q's `nop`.
#   -D VICTIM_MMIO        the trapping instruction is a load from the UART page
#   -D VICTIM_PRIVILEGED  the trapping instruction is `ei`
# Expected of a sound VMM: at worst this VM stops; the other VM goes on.
        .include "pv.inc"
        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        li      t0, START_INFO_ADDR
        lw      s1, SI_FIRST_FREE(t0)
        srli    s1, s1, PAGE_SHIFT      # s1 = Q, a free frame mapped writable at gva = gpa
        la      t0, nop_word
        lw      t1, 0(t0)               # the encoding of nop
        slli    t2, s1, PAGE_SHIFT
        li      t3, 1024
1:      sw      t1, 0(t2)
        addi    t2, t2, 4
        addi    t3, t3, -1
        bnez    t3, 1b
        la      a0, victim
        srli    a0, a0, PAGE_SHIFT      # the code page's gfn
        call    boot_pte_gva
        call    gva_to_ma
        la      t0, batch
        sw      a0, 0(t0)               # ptr: the bootstrap PTE of the code page
        mov     a0, s1
        call    mfn_of
        slli    a0, a0, PAGE_SHIFT
        ori     a0, a0, PTE_RO
        la      t0, batch
        sw      a0, 4(t0)               # val: map Q there instead, read-only
        li      t1, 0xF0000000          # the UART, reached as a device
        la      a1, batch
        li      a2, 1
        hcall   HC_MMU_UPDATE           # accepted; the TLB is not flushed (as documented)
victim:
.ifdef VICTIM_MMIO
        lw      t0, 0(t1)
.endif
.ifdef VICTIM_PRIVILEGED
        ei
.endif
        li      a1, 3
        hcall   HC_SHUTDOWN
nop_word:
        nop

        .include "pvlib.inc"
        .data
        .balign 8
batch:  .space  8
        .bss
        .balign 16
stack:  .space  512
stack_top:

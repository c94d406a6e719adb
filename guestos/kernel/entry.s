# entry.s: the kernel's entry point and its first page tables.
#
# The loader starts _start at its PHYSICAL address (the image is linked at KERNBASE +
# 0x00100000, loaded at 0x00100000): natively with paging off, in the PV build on the
# VMM's gva = gpa bootstrap tables.  Until the jump high, code here and in the early_*
# pv-ops runs below KERNBASE: only pc-relative branches and calls, and `la` results
# converted with `- KERNBASE`.
#
# Boot page tables, from boot-info first_free (see kernel.inc):
#   first_free + 0        the kernel page directory (kpgdir)
#   first_free + 4 KiB    the kernel L1 tables, one per 4 MiB of RAM: KERNBASE + pa -> pa
#   after them            native: the MMIO L1 (early_paging_on)
# The directory maps RAM twice: at KERNBASE + pa and, until kmain removes it, at pa
# (the same L1s), so the instruction after paging goes on still runs.

        .include "kernel.inc"

        .text
        .globl _start
# _start(a0 = boot-info / start-info pa).  Does not return.
_start:
        la      sp, kstack_top
        li      t0, KERNBASE
        sub     sp, sp, t0
        mov     s0, a0
        call    early_kmap              # a0 = directory pa, a1 = end of the tables
        mov     s1, a0
        mov     a2, s0
        call    early_paging_on         # a0 = end of the boot tables
        mov     s2, a0
        la      t0, 1f
        jr      t0                      # to the link address
1:      li      t0, KERNBASE
        add     sp, sp, t0
        add     a0, s0, t0              # boot-info kva
        add     a1, s1, t0              # kpgdir kva
        mov     a2, s2                  # first free pa
        call    kmain
        la      a0, msg_entry
        la      a1, msg_returned
        j       panic

# early_kmap(a0 = boot-info pa) -> a0 = page directory pa, a1 = end of the tables pa.
# Builds the boot tables at first_free (zeroed first); entries come from early_pte.
early_kmap:
        enter
        mov     s0, a0
        lw      s1, BI_FIRST_FREE(s0)   # the directory
        lw      s2, BI_MEM_SIZE(s0)
        li      t0, KMAP_MAX
        bgeu    t0, s2, 1f
        mov     s2, t0
1:      li      t0, (1 << PDXSHIFT) - 1 # L1 count = RAM / 4 MiB, rounded up
        add     s3, s2, t0
        srli    s3, s3, PDXSHIFT
        addi    t0, s3, 1               # zero the directory and the L1s
        slli    t0, t0, PGSHIFT
        add     t0, t0, s1
        mov     t1, s1
2:      sw      zero, 0(t1)
        addi    t1, t1, 4
        bne     t1, t0, 2b
        push    t0                      # end of the tables
3:      addi    s3, s3, -1              # PDEs KPDX + i and i -> L1 i
        slli    a0, s3, PGSHIFT
        add     a0, a0, s1
        addi    a0, a0, PGSIZE
        li      a1, PTE_P | PTE_W
        mov     a2, s0
        call    early_pte
        slli    t0, s3, 2
        add     t0, t0, s1
        sw      a0, 0(t0)
        sw      a0, KPDX * 4(t0)
        bnez    s3, 3b
4:      addi    s2, s2, -PGSIZE         # PTE of every frame, top down
        mov     a0, s2
        li      a1, PTE_P | PTE_W
        mov     a2, s0
        call    early_pte
        srli    t0, s2, PGSHIFT - 2
        add     t0, t0, s1
        sw      a0, PGSIZE(t0)
        bnez    s2, 4b
        pop     a1
        mov     a0, s1
        leave

        .rodata
msg_entry:      .asciz "entry"
msg_returned:   .asciz "kmain returned"

        .bss
        .balign 16
        .globl kstack_top
kstack:         .space 4096             # the one kernel stack: boot, then every trap
kstack_top:

# vm.s: address spaces.  A page directory (pgdir) is a frame whose PDEs KPDX..1023 are
# the kernel's (copied from kpgdir, pointing at the shared kernel L1 tables) and whose
# PDEs below KPDX map the process's user pages.  `walk` carries the subsystem: mapping,
# lookup, demand-zero and the user-pointer checks all go through it.  Every PTE change,
# table setup and address-space switch goes through the pv-ops layer (pvops.s).

        .include "kernel.inc"

        .text
        .globl kvm_init, walk, map_page, uvm_create, uvm_destroy, uvm_unmap
        .globl uvm_demand, user_check, kpgdir

# kvm_init(a0 = kva of the boot page directory): make it kpgdir and remove its low
# (pa = va) half, which only served the jump to the link address.
kvm_init:
        enter
        la      t0, kpgdir
        sw      a0, 0(t0)
        mov     s0, a0
        li      s1, KPDX * 4
        add     s1, s1, s0
1:      lw      t0, 0(s0)
        beqz    t0, 2f
        mov     a0, s0
        mov     a1, zero
        call    pte_write
2:      addi    s0, s0, 4
        bne     s0, s1, 1b
        call    mmu_commit
        call    tlb_flush_all
        leave

# walk(a0 = pgdir, a1 = user va, a2 = alloc) -> a0 = kva of va's PTE, or 0 if it has no
# L1 table (and alloc is 0, or no frame was left to make one).  A new L1 is zeroed,
# prepared and installed (committed).
walk:
        enter
        mov     s0, a0
        mov     s1, a1
        srli    t0, s1, PDXSHIFT
        slli    t0, t0, 2
        add     t0, t0, s0
        lw      a0, 0(t0)
        andi    t0, a0, PTE_P
        bnez    t0, 2f
        beqz    a2, 9f
        call    kalloc
        beqz    a0, 9f
        mov     s2, a0
        li      a1, LEVEL_L1
        call    pt_prepare
        bnez    a0, 8f
        li      t0, KERNBASE
        sub     a0, s2, t0
        li      a1, PTE_P | PTE_W | PTE_U
        call    pte_make
        mov     a2, a0
        mov     a0, s0
        srli    a1, s1, PDXSHIFT
        call    pd_set_user
        call    mmu_commit
        mov     a0, s2
        j       3f
2:      call    pte_frame
        li      t0, KERNBASE
        add     a0, a0, t0
3:      srli    t0, s1, PGSHIFT
        andi    t0, t0, NPDENTRIES - 1
        slli    t0, t0, 2
        add     a0, a0, t0
        leave
8:      mov     a0, s2
        call    kfree
9:      mov     a0, zero
        leave

# map_page(a0 = pgdir, a1 = page-aligned user va, a2 = pa, a3 = PTE flags) -> a0 = 0, or
# -1 if no frame was left for an L1 table.  The PTE write is queued: the caller
# commits (mmu_commit).  va must not be mapped yet (no TLB flush is done).
map_page:
        enter
        mov     s0, a2
        mov     s1, a3
        li      a2, 1
        call    walk
        beqz    a0, 1f
        mov     s2, a0
        mov     a0, s0
        ori     a1, s1, PTE_P
        call    pte_make
        mov     a1, a0
        mov     a0, s2
        call    pte_write
        mov     a0, zero
        leave
1:      li      a0, -1
        leave

# uvm_create() -> a0 = kva of a new page directory with the kernel PDEs and no user
# mapping, or 0 when out of memory.
uvm_create:
        enter
        call    kalloc
        beqz    a0, 2f
        mov     s0, a0
        la      t0, kpgdir
        lw      t0, 0(t0)
        li      t1, KPDX * 4            # copy the kernel PDEs (a fresh frame: plain stores)
1:      add     t2, t0, t1
        lw      t2, 0(t2)
        add     t3, s0, t1
        sw      t2, 0(t3)
        addi    t1, t1, 4
        li      t2, PGSIZE
        bne     t1, t2, 1b
        mov     a0, s0
        li      a1, LEVEL_L2
        call    pt_prepare
        bnez    a0, 3f
        mov     a0, s0
2:      leave
3:      mov     a0, s0
        call    kfree
        mov     a0, zero
        leave

# uvm_destroy(a0 = pgdir): free every user frame, every user L1 table and the directory.
# The directory must not be the current address space.
uvm_destroy:
        enter
        mov     s0, a0
        li      a1, LEVEL_L2
        call    pt_release
        mov     s3, a0                  # a companion frame, freed last
        mov     s1, zero                # pass 1: the user frames; release the L1s
1:      mov     a0, s0
        mov     a1, s1
        call    user_l1
        beqz    a0, 2f
        mov     s2, a0
        call    free_leaves
        mov     a0, s2
        li      a1, LEVEL_L1
        call    pt_release
2:      addi    s1, s1, 1
        li      t0, UPDX_END
        bne     s1, t0, 1b
        call    mmu_commit              # the released tables are writable again
        call    tlb_flush_all
        mov     s1, zero                # pass 2: free the L1s
3:      mov     a0, s0
        mov     a1, s1
        call    user_l1
        beqz    a0, 4f
        call    kfree
4:      addi    s1, s1, 1
        li      t0, UPDX_END
        bne     s1, t0, 3b
        mov     a0, s0
        call    kfree
        beqz    s3, 5f
        mov     a0, s3
        call    kfree
5:      leave

# user_l1(a0 = pgdir, a1 = PDE index) -> a0 = kva of the L1 table it points at, or 0.
user_l1:
        slli    a1, a1, 2
        add     a0, a0, a1
        lw      a0, 0(a0)
        andi    t0, a0, PTE_P
        beqz    t0, 1f
        push    ra
        call    pte_frame
        pop     ra
        li      t0, KERNBASE
        add     a0, a0, t0
        ret
1:      mov     a0, zero
        ret

# free_leaves(a0 = kva of an L1 table): kfree the frame of every present entry.  Leaves
# the entries as they are.
free_leaves:
        enter
        mov     s0, a0
        addi    s1, a0, PGSIZE
1:      lw      a0, 0(s0)
        andi    t0, a0, PTE_P
        beqz    t0, 2f
        call    pte_frame
        li      t0, KERNBASE
        add     a0, a0, t0
        call    kfree
2:      addi    s0, s0, 4
        bne     s0, s1, 1b
        leave

# uvm_unmap(a0 = pgdir, a1 = first va, a2 = end va; both page-aligned): unmap and free
# every mapped page in [a1, a2), then flush the TLB.
uvm_unmap:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     s2, a2
1:      bgeu    s1, s2, 3f
        mov     a0, s0
        mov     a1, s1
        mov     a2, zero
        call    walk
        beqz    a0, 2f
        mov     s3, a0
        lw      a0, 0(s3)
        andi    t0, a0, PTE_P
        beqz    t0, 2f
        call    pte_frame
        li      t0, KERNBASE
        add     a0, a0, t0
        call    kfree
        mov     a0, s3
        mov     a1, zero
        call    pte_write
2:      li      t0, PGSIZE
        add     s1, s1, t0
        j       1b
3:      call    mmu_commit
        call    tlb_flush_all
        leave

# uvm_demand(a0 = proc, a1 = user va) -> a0 = 0 after mapping a zeroed frame at va's
# page, or -1 if va is in no demand-zero region (heap [P_HEAP, P_BRK), stack
# [USTACK_TOP - USTACK_SIZE, USTACK_TOP)) or no frame is left.  va's page must be unmapped.
uvm_demand:
        enter
        mov     s0, a0
        srli    s1, a1, PGSHIFT
        slli    s1, s1, PGSHIFT
        lw      t0, P_HEAP(s0)
        bltu    a1, t0, 1f
        lw      t0, P_BRK(s0)
        bltu    a1, t0, 2f
1:      li      t0, USTACK_TOP - USTACK_SIZE
        bltu    a1, t0, 9f
        li      t0, USTACK_TOP
        bgeu    a1, t0, 9f
2:      call    kalloc
        beqz    a0, 9f
        mov     s2, a0
        lw      a0, P_PGDIR(s0)
        mov     a1, s1
        li      t0, KERNBASE
        sub     a2, s2, t0
        li      a3, PTE_U | PTE_W
        call    map_page
        bnez    a0, 8f
        call    mmu_commit
        mov     a0, zero
        leave
8:      mov     a0, s2
        call    kfree
9:      li      a0, -1
        leave

# user_check(a0 = va, a1 = len, a2 = write) -> a0 = 0 if the current process may access
# [va, va + len) (for writing if a2), mapping demand-zero pages on the way; else
# -EFAULT.  The range must lie below KERNBASE.
user_check:
        enter
        mov     s0, a0
        add     s1, a0, a1
        mov     s2, a2
        beq     s0, s1, 8f              # nothing to check
        bltu    s1, s0, 9f              # wraps around
        li      t0, KERNBASE
        bltu    t0, s1, 9f
        srli    s0, s0, PGSHIFT
        slli    s0, s0, PGSHIFT
1:      bgeu    s0, s1, 8f
        la      t0, cur_proc
        lw      t0, 0(t0)
        lw      a0, P_PGDIR(t0)
        mov     a1, s0
        mov     a2, zero
        call    walk
        beqz    a0, 3f
        lw      t0, 0(a0)
        andi    t1, t0, PTE_P
        beqz    t1, 3f
        andi    t1, t0, PTE_U
        beqz    t1, 9f
        beqz    s2, 2f
        andi    t1, t0, PTE_W
        beqz    t1, 9f
2:      li      t0, PGSIZE
        add     s0, s0, t0
        j       1b
3:      la      t0, cur_proc
        lw      a0, 0(t0)
        mov     a1, s0
        call    uvm_demand
        beqz    a0, 2b
9:      li      a0, -EFAULT
        leave
8:      mov     a0, zero
        leave

        .data
kpgdir: .word 0                         # kva of the boot page directory (kernel PDEs)

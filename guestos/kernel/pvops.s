# pvops.s: the pv-ops layer.  Every operation on the MMU, the interrupt state and the
# devices goes through here; `.ifdef PARAVIRT` selects the hypercall versions
# (docs/hypercalls.md), otherwise the native ones (docs/isa.md).  Nothing else in the
# kernel knows which build it is part of.
#
# Frame numbers: the rest of the kernel speaks guest-physical addresses ("pa").  A
# page-table entry holds whatever the hardware walks: natively the pa, in the PV build
# the MACHINE frame.  pte_make converts pa -> entry, pte_frame entry -> pa (p2m / m2p).
#
# PV rules this file enforces (Xen PV style): page tables are never written directly
# once pinned (pte_write queues mmu_update elements, mmu_commit sends the batch); a
# table frame's KERNBASE mapping is made read-only before it is pinned and made
# writable again after it is unpinned; every entry has U set, because the PV kernel
# runs in machine user mode; each page directory (the kernel root) has a companion
# user root holding only the user PDEs, whose pa is kept in the kernel root's last
# slot as a non-present entry (the validator allows anything in a non-present entry).
#
# Contracts: routines clobber a0-a3, t0-t3 and at only, unless they say otherwise.

        .include "kernel.inc"

        .ifdef PARAVIRT
        .include "../include/hypercall.inc"
        .equ BATCH_MAX, 128             # mmu_update elements queued before a forced commit
        .equ BATCH_SLOTS, 256           # pv_batch size (the boot batch may be longer)
        .equ UROOT_SLOT, (NPDENTRIES - 1) * 4   # where a kernel root keeps its user root's pa

        .macro hcall number
        li      a0, \number
        hypercall
        .endm

        .section .note.Kite, "", @note
        .word   5, 4, 1                 # namesz, descsz, NT_KITE_PAGING
        .ascii  "Kite\0\0\0\0"
        .word   1                       # KITE_PAGING_DIRECT
        .endif

        .text
        .globl early_pte, early_paging_on, pv_init, pv_boot_done
        .globl pte_make, pte_frame, pte_write, mmu_commit, tlb_flush_all, tlb_flush_page
        .globl pt_prepare, pt_release, pd_set_user, as_activate
        .globl trap_vector_set, timer_start, timer_ack, console_write, console_read, power_off
        .globl irq_save, irq_restore, phase_mark
        .globl disk_init, disk_transfer, disk_intr
        .globl trap_entry, trap_return, trap_cause, trap_badaddr

# ---------------------------------------------------------------------------------
# Boot: these run at the kernel's physical address (paging off natively, the VMM's
# gva = gpa bootstrap tables in the PV build).  They use no global variable.
# ---------------------------------------------------------------------------------

        .ifndef PARAVIRT

# early_pte(a0 = pa, a1 = flags, a2 = boot-info pa) -> a0 = the entry mapping pa.
early_pte:
        or      a0, a0, a1
        ret

# early_paging_on(a0 = page directory pa, a1 = end of the boot tables pa, a2 = boot-info
# pa) -> a0 = new end of the boot tables.  Maps the MMIO pages kernel-only (one more L1,
# at a1) and turns paging on with a0 as the page directory.
early_paging_on:
        mov     t0, a1
        addi    t1, a1, PGSIZE
1:      sw      zero, 0(t0)             # zero the MMIO L1
        addi    t0, t0, 4
        bne     t0, t1, 1b
        li      t2, UART_BASE | PTE_P | PTE_W
        li      t3, (UART_BASE >> PGSHIFT) & 0x3FF
        slli    t3, t3, 2
        add     t3, t3, a1
        li      t1, MMIO_PAGES
2:      sw      t2, 0(t3)
        addi    t2, t2, PGSIZE
        addi    t3, t3, 4
        addi    t1, t1, -1
        bnez    t1, 2b
        ori     t2, a1, PTE_P | PTE_W
        sw      t2, (UART_BASE >> PDXSHIFT) * 4(a0)
        ori     t2, a0, 1               # PTB_ENABLE
        mtcr    ptb, t2
        addi    a0, a1, PGSIZE
        ret

        .else

# early_pte(a0 = pa, a1 = flags, a2 = start-info pa) -> a0 = the entry mapping pa
# (its machine frame, U set).
early_pte:
        lw      t0, SI_P2M(a2)
        srli    a0, a0, PGSHIFT
        slli    a0, a0, 2
        add     t0, t0, a0
        lw      a0, 0(t0)
        slli    a0, a0, PGSHIFT
        or      a0, a0, a1
        ori     a0, a0, PTE_U
        ret

# early_mfn(a0 = pa, a1 = start-info pa) -> a0 = machine frame number of pa.  Leaf.
early_mfn:
        lw      t0, SI_P2M(a1)
        srli    a0, a0, PGSHIFT
        slli    a0, a0, 2
        add     t0, t0, a0
        lw      a0, 0(t0)
        ret

# early_paging_on(a0 = page directory pa, a1 = end of the boot tables pa, a2 = start-info
# pa) -> a0 = a1.  The boot tables (page directory, then the kernel L1s) lie in
# [a0, a1).  Makes every page-table frame read-only in the new kernel map (plain
# stores: not pinned yet) and the new tables read-only in the bootstrap map (one
# mmu_update batch), pins the L1s and the directory and loads it as both bases.
# Any refusal shuts the VM down with PANIC_STATUS (nothing can be printed yet).
early_paging_on:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     s2, a2
        mov     a0, s0                  # the boot tables ...
        mov     a1, s1
        call    early_readonly
        lw      a0, SI_PT_FIRST_GFN(s2) # ... and the bootstrap tables
        lw      a1, SI_PT_COUNT(s2)
        add     a1, a1, a0
        slli    a0, a0, PGSHIFT
        slli    a1, a1, PGSHIFT
        call    early_readonly
        la      s3, pv_batch
        li      t0, KERNBASE
        sub     s3, s3, t0
        mov     a3, s0
1:      lw      t0, SI_PT_FIRST_GFN(s2) # element: the bootstrap PTE of frame a3 := read-only
        srli    t1, a3, PDXSHIFT
        add     a0, t0, t1
        addi    a0, a0, 1
        slli    a0, a0, PGSHIFT
        mov     a1, s2
        call    early_mfn
        slli    a0, a0, PGSHIFT
        srli    t1, a3, PGSHIFT
        andi    t1, t1, NPDENTRIES - 1
        slli    t1, t1, 2
        or      a0, a0, t1
        sw      a0, 0(s3)
        mov     a0, a3
        li      a1, PTE_P | PTE_U
        mov     a2, s2
        call    early_pte
        sw      a0, 4(s3)
        addi    s3, s3, 8
        addi    a3, a3, PGSIZE
        bne     a3, s1, 1b
        la      a1, pv_batch
        li      t0, KERNBASE
        sub     a1, a1, t0
        sub     a2, s3, a1
        srli    a2, a2, 3
        hcall   HC_MMU_UPDATE
        bnez    a0, early_fail
        hcall   HC_TLB_FLUSH
        addi    s3, s0, PGSIZE          # pin the L1s, then the directory
2:      mov     a0, s3
        mov     a1, s2
        call    early_mfn
        mov     a1, a0
        li      a2, LEVEL_L1
        hcall   HC_PIN_TABLE
        bnez    a0, early_fail
        addi    s3, s3, PGSIZE
        bne     s3, s1, 2b
        mov     a0, s0
        mov     a1, s2
        call    early_mfn
        mov     s3, a0
        mov     a1, a0
        li      a2, LEVEL_L2
        hcall   HC_PIN_TABLE
        bnez    a0, early_fail
        mov     a1, s3
        mov     a2, s3
        hcall   HC_SET_BASE
        bnez    a0, early_fail
        mov     a0, s1
        leave

# early_readonly(a0 = first pa, a1 = end pa): clear W in the new kernel map's entries of
# the frames in [a0, a1); the kernel L1s follow the directory at s0 (caller's).  Leaf.
early_readonly:
        beq     a0, a1, 2f
1:      srli    t0, a0, PGSHIFT
        slli    t0, t0, 2
        add     t0, t0, s0
        lw      t1, PGSIZE(t0)
        andi    t1, t1, ~PTE_W
        sw      t1, PGSIZE(t0)
        addi    a0, a0, PGSIZE
        bne     a0, a1, 1b
2:      ret

early_fail:
        li      a1, PANIC_STATUS
        hcall   HC_SHUTDOWN

        .endif

# ---------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------

        .ifndef PARAVIRT

# pv_init(a0 = boot-info kva, a1 = first free pa) -> a0 = first free pa (unchanged).
pv_init:
        mov     a0, a1
        ret

# pv_boot_done(a0 = boot-info kva): nothing to release natively.
pv_boot_done:
        ret

# pte_make(a0 = pa, a1 = flags) -> a0 = the entry mapping the page at pa with flags.
pte_make:
        or      a0, a0, a1
        ret

# pte_frame(a0 = present entry) -> a0 = pa of the frame it maps.
pte_frame:
        li      t0, ~PTE_FLAGS
        and     a0, a0, t0
        ret

# pte_write(a0 = kva of a page-table entry, a1 = new value).  Not seen by the MMU until
# mmu_commit; does not flush the TLB.
pte_write:
        sw      a1, 0(a0)
        ret

# mmu_commit(): make every pte_write so far visible (natively they already are).
mmu_commit:
        ret

# tlb_flush_all() / tlb_flush_page(a0 = va).
tlb_flush_all:
        tlbflush
        ret
tlb_flush_page:
        tlbinv  a0
        ret

# pt_prepare(a0 = kva of a zeroed frame, a1 = LEVEL_L1 or LEVEL_L2) -> a0 = 0, or -1 if out
# of memory.  Makes the frame usable as a page table of that level.
pt_prepare:
        mov     a0, zero
        ret

# pt_release(a0 = kva, a1 = level) -> a0 = kva of a companion frame to free too, or 0.
# The frame stops being a page table; the caller must mmu_commit and tlb_flush_all
# before writing to it.
pt_release:
        mov     a0, zero
        ret

# pd_set_user(a0 = page directory kva, a1 = PDE index below KPDX, a2 = entry).
# Queued like pte_write.
pd_set_user:
        slli    a1, a1, 2
        add     a0, a0, a1
        mov     a1, a2
        j       pte_write

# as_activate(a0 = page directory kva): switch to that address space (flushes the TLB).
as_activate:
        li      t0, KERNBASE
        sub     a0, a0, t0
        ori     a0, a0, 1               # PTB_ENABLE
        mtcr    ptb, a0
        ret

# trap_vector_set(a0 = handler kva).
trap_vector_set:
        mtcr    tvec, a0
        ret

# timer_start(a0 = interval): periodic timer interrupts every a0 instructions.
timer_start:
        li      t0, TIMER_BASE
        sw      a0, TIMER_INTERVAL(t0)
        li      t1, TIMER_ENABLE_PERIODIC
        sw      t1, TIMER_CTRL(t0)
        ret

# console_write(a0 = buf va, a1 = len): write the bytes to the console, contiguously
# (interrupts held off).  buf must be readable.
console_write:
        enter
        mov     s0, a0
        add     s1, a0, a1
        call    irq_save
        mov     s2, a0
        li      t0, UART_BASE
1:      beq     s0, s1, 2f
        lbu     t1, 0(s0)
        sw      t1, UART_TX(t0)
        addi    s0, s0, 1
        j       1b
2:      mov     a0, s2
        call    irq_restore
        leave

# console_read(a0 = buf va, a1 = len > 0) -> a0 = bytes read: waits (polling the UART)
# for at least one byte unless the input has ended; 0 at end of input.  buf must be
# writable.
console_read:
        mov     t3, zero
        li      t0, UART_BASE
1:      lw      t1, UART_STATUS(t0)
        andi    t2, t1, UART_RX_READY
        bnez    t2, 2f
        bnez    t3, 3f                  # got some: do not wait for more
        andi    t2, t1, UART_RX_EOF
        bnez    t2, 3f
        j       1b
2:      lw      t1, UART_RX(t0)
        add     t2, a0, t3
        sb      t1, 0(t2)
        addi    t3, t3, 1
        bne     t3, a1, 1b
3:      mov     a0, t3
        ret

# power_off(a0 = exit code): stop the machine.  Does not return.
power_off:
        li      t0, POWER_BASE
        sw      a0, 0(t0)
        halt

# timer_ack(): deassert the timer interrupt line.
timer_ack:
        li      t0, TIMER_BASE
        sw      zero, TIMER_ACK(t0)
        ret

# disk_init(a0 = kva of the bounce buffer, DISK_IO_MAX sectors, physically contiguous)
# -> a0 = the disk's size in sectors, 0 without a disk.  Probes CAPACITY with a
# borrowed trap vector: without a disk the load is a bus error, which disk_probe_fault
# turns into 0.  With a disk, the two registers that never change are written once:
# DMA_ADDR (the buffer's physical address) and CTRL (IRQ_ENABLE).  Interrupts are off.
disk_init:
        mfcr    t3, tvec
        la      t0, disk_probe_fault
        mtcr    tvec, t0
        li      t0, DISK_BASE
        lw      a1, DISK_CAPACITY(t0)   # a bus error without a disk: a1 = 0
        mtcr    tvec, t3
        beqz    a1, 1f
        li      t0, DISK_BASE
        li      t1, KERNBASE
        sub     t1, a0, t1
        sw      t1, DISK_DMA_ADDR(t0)
        li      t1, DISK_CTRL_IRQ_ENABLE
        sw      t1, DISK_CTRL(t0)
1:      mov     a0, a1
        ret

# disk_probe_fault: the trap vector while disk_init probes: the probing load faulted
# (no disk).  a1 = 0, resume after the load in kernel mode (rfe: KM = PKM = 1, IE =
# PIE = 0).  Clobbers t0.
disk_probe_fault:
        mov     a1, zero
        mfcr    t0, epc
        addi    t0, t0, 4
        mtcr    epc, t0
        rfe

# disk_transfer(a0 = DISK_CMD_READ or DISK_CMD_WRITE, a1 = first sector, a2 = count,
# 1..DISK_IO_MAX, the range checked against the disk) -> a0 = 0, or -EIO if the device
# reported an error; a1 = 1 if a timer tick was acknowledged while waiting (the caller
# owes the scheduler a turn), else 0.  Moves the sectors between the disk and the
# buffer of disk_init with ONE command, then waits with wfi (interrupts are off, so
# wfi only waits: the completion raises IRQ 2, which is never taken) until STATUS has
# DONE, and acknowledges it.  MMIO per request: 3 stores (SECTOR, COUNT, CMD), 1 load
# (STATUS), 1 store (ACK); a timer tick during the wait adds a STATUS load and a
# TIMER_ACK store.
disk_transfer:
        li      t0, DISK_BASE
        sw      a1, DISK_SECTOR(t0)
        sw      a2, DISK_COUNT(t0)
        sw      a0, DISK_CMD(t0)        # completes DISK_LATENCY_TICKS later
        mov     a1, zero
1:      wfi                             # until a line is asserted
        lw      t1, DISK_STATUS(t0)
        andi    t2, t1, DISK_STATUS_DONE
        bnez    t2, 2f
        li      t2, TIMER_BASE          # not the disk: the timer (the only other line)
        sw      zero, TIMER_ACK(t2)
        li      a1, 1
        j       1b
2:      sw      zero, DISK_ACK(t0)      # clear DONE, deassert IRQ 2
        mov     a0, zero
        andi    t1, t1, DISK_STATUS_ERROR
        beqz    t1, 3f
        li      a0, -EIO
3:      ret

# disk_intr(): a disk interrupt was taken (never expected: disk_transfer acknowledges
# its completion with interrupts off).  Deassert the line.
disk_intr:
        li      t0, DISK_BASE
        sw      zero, DISK_ACK(t0)
        ret

# trap_entry: the trap vector.  Saves every register of the interrupted code, epc and
# status (as trap entry left it: PKM, PIE, the user flags) into *cur_tf, handles the
# trap, and returns through cur_tf (which may now be another process's).  `scratch`
# parks the interrupted sp while the registers are saved.
trap_entry:
        mtcr    scratch, sp
        lui     sp, %hi(cur_tf)
        lw      sp, %lo(cur_tf)(sp)
        tf_save
        mfcr    t0, scratch
        sw      t0, TF_SP(sp)
        mfcr    t0, epc
        sw      t0, TF_EPC(sp)
        mfcr    t0, status
        sw      t0, TF_STATUS(sp)
        mov     a0, sp
        la      sp, kstack_top
        call    trap
        j       trap_return

# trap_return: restore the process of cur_tf and drop to user mode with interrupts on
# (and the user flags it had).  Does not return.
trap_return:
        lui     sp, %hi(cur_tf)
        lw      sp, %lo(cur_tf)(sp)
        lw      t0, TF_STATUS(sp)
        li      t1, STATUS_UF
        and     t0, t0, t1
        ori     t0, t0, STATUS_TO_USER
        mtcr    status, t0
        lw      t0, TF_EPC(sp)
        mtcr    epc, t0
        tf_restore
        lw      a0, TF_A0(sp)
        lw      sp, TF_SP(sp)
        rfe

# trap_cause() / trap_badaddr() -> a0 = the cause / badaddr of the trap being handled.
trap_cause:
        mfcr    a0, cause
        ret
trap_badaddr:
        mfcr    a0, badaddr
        ret

        .else

# pv_init(a0 = start-info kva, a1 = first free pa) -> a0 = first free pa after the m2p
# table it puts there.  Records the p2m list and builds the m2p table (machine frame ->
# guest frame) that pte_frame reads.
pv_init:
        lw      t0, SI_P2M(a0)
        li      t1, KERNBASE
        add     t0, t0, t1              # the p2m list's kva
        la      t2, pv_p2m
        sw      t0, 0(t2)
        lw      t3, SI_NR_FRAMES(a0)
        slli    t3, t3, 2
        add     t3, t3, t0              # its end
        mov     a2, zero                # the largest machine frame number
        mov     a3, t0
1:      lw      t2, 0(a3)
        bgeu    a2, t2, 2f
        mov     a2, t2
2:      addi    a3, a3, 4
        bne     a3, t3, 1b
        add     a3, a1, t1              # the m2p table, at first free
        la      t2, pv_m2p
        sw      a3, 0(t2)
        mov     a0, zero                # gfn
3:      lw      t2, 0(t0)               # m2p[p2m[gfn]] = gfn
        slli    t2, t2, 2
        add     t2, t2, a3
        sw      a0, 0(t2)
        addi    a0, a0, 1
        addi    t0, t0, 4
        bne     t0, t3, 3b
        addi    a2, a2, 1               # (largest + 1) words, rounded up to pages
        slli    a2, a2, 2
        addi    a2, a2, PGSIZE - 1
        srli    a2, a2, PGSHIFT
        slli    a2, a2, PGSHIFT
        add     a0, a1, a2
        ret

# pv_boot_done(a0 = start-info kva): register the per-vCPU page, then unpin the VMM's
# bootstrap tables (the directory first).  They map every frame writable at gva = gpa,
# so no frame could be pinned as a page table while they are.  Call after switching
# away from them (early_paging_on), before anything can trap.
pv_boot_done:
        enter
        lw      s0, SI_PT_FIRST_GFN(a0)
        lw      s1, SI_PT_COUNT(a0)
        add     s1, s1, s0
        la      a1, pv_vcpu
        hcall   HC_SET_VCPU_PAGE
        bnez    a0, pv_refused
1:      slli    a0, s0, PGSHIFT
        call    pa_mfn
        mov     a1, a0
        hcall   HC_UNPIN_TABLE
        bnez    a0, pv_refused
        addi    s0, s0, 1
        bne     s0, s1, 1b
        leave

# pa_mfn(a0 = pa) -> a0 = its machine frame number.  Leaf.
pa_mfn:
        la      t0, pv_p2m
        lw      t0, 0(t0)
        srli    a0, a0, PGSHIFT
        slli    a0, a0, 2
        add     t0, t0, a0
        lw      a0, 0(t0)
        ret

# pte_make(a0 = pa, a1 = flags) -> a0 = the entry mapping the page at pa with flags
# (its machine frame, U set).
pte_make:
        la      t0, pv_p2m
        lw      t0, 0(t0)
        srli    a0, a0, PGSHIFT
        slli    a0, a0, 2
        add     t0, t0, a0
        lw      a0, 0(t0)
        slli    a0, a0, PGSHIFT
        or      a0, a0, a1
        ori     a0, a0, PTE_U
        ret

# pte_frame(a0 = present entry) -> a0 = pa of the frame it maps (through the m2p table).
pte_frame:
        la      t0, pv_m2p
        lw      t0, 0(t0)
        srli    a0, a0, PGSHIFT
        slli    a0, a0, 2
        add     t0, t0, a0
        lw      a0, 0(t0)
        slli    a0, a0, PGSHIFT
        ret

# pte_write(a0 = kva of a page-table entry, a1 = new value): queue an mmu_update element
# (machine address of the entry, value); commits when BATCH_MAX are queued.  Not seen
# by the MMU until mmu_commit; does not flush the TLB.
pte_write:
        li      t0, KERNBASE
        sub     t1, a0, t0
        la      t0, pv_p2m
        lw      t0, 0(t0)
        srli    t2, t1, PGSHIFT
        slli    t2, t2, 2
        add     t0, t0, t2
        lw      t0, 0(t0)
        slli    t0, t0, PGSHIFT
        andi    t1, a0, PGSIZE - 1
        or      t0, t0, t1              # the entry's machine address
        la      t1, pv_batch_n
        lw      t3, 0(t1)
        la      t2, pv_batch
        slli    a0, t3, 3
        add     t2, t2, a0
        sw      t0, 0(t2)
        sw      a1, 4(t2)
        addi    t3, t3, 1
        sw      t3, 0(t1)
        li      t0, BATCH_MAX
        beq     t3, t0, mmu_commit
        ret

# mmu_commit(): send the queued elements as one mmu_update batch.  A refusal is a
# kernel bug: panic.
mmu_commit:
        la      t0, pv_batch_n
        lw      a2, 0(t0)
        beqz    a2, 1f
        sw      zero, 0(t0)
        la      a1, pv_batch
        hcall   HC_MMU_UPDATE
        bnez    a0, pv_refused
1:      ret

# pv_refused(): a hypercall the kernel relies on was refused.  Does not return.
pv_refused:
        la      a0, msg_pvops
        la      a1, msg_refused
        j       panic

# tlb_flush_all() / tlb_flush_page(a0 = va).
tlb_flush_all:
        hcall   HC_TLB_FLUSH
        ret
tlb_flush_page:
        mov     a1, a0
        hcall   HC_TLB_INVLPG
        ret

# kmap_set_writable(a0 = kva of RAM, a1 = PTE_W or 0): queue the change of W in the
# kernel map's entry for that page.
kmap_set_writable:
        la      t0, kpgdir
        lw      t0, 0(t0)
        srli    t1, a0, PDXSHIFT
        slli    t1, t1, 2
        add     t0, t0, t1
        lw      t1, 0(t0)               # the kernel PDE (machine frame of a kernel L1)
        la      t0, pv_m2p
        lw      t0, 0(t0)
        srli    t1, t1, PGSHIFT
        slli    t1, t1, 2
        add     t0, t0, t1
        lw      t0, 0(t0)
        slli    t0, t0, PGSHIFT
        li      t1, KERNBASE
        add     t0, t0, t1              # the kernel L1's kva
        srli    t1, a0, PGSHIFT
        andi    t1, t1, NPDENTRIES - 1
        slli    t1, t1, 2
        add     a0, t0, t1              # the entry's kva
        lw      t1, 0(a0)
        andi    t1, t1, ~PTE_W
        or      a1, t1, a1
        j       pte_write

# pin_fresh(a0 = kva of a zeroed frame, a1 = level): map it read-only in the kernel map,
# then pin it as a page table of that level.
pin_fresh:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     a1, zero
        call    kmap_set_writable
        call    mmu_commit
        mov     a0, s0
        call    tlb_flush_page
        li      t0, KERNBASE
        sub     a0, s0, t0
        call    pa_mfn
        mov     a1, a0
        mov     a2, s1
        hcall   HC_PIN_TABLE
        bnez    a0, pv_refused
        leave

# pt_prepare(a0 = kva of a zeroed frame, a1 = LEVEL_L1 or LEVEL_L2) -> a0 = 0, or -1 if out
# of memory.  Pins the frame as a page table of that level; a directory (LEVEL_L2, its
# kernel PDEs already stored) also gets its user root, an empty pinned directory.
pt_prepare:
        enter
        mov     s0, a0
        mov     s1, a1
        li      t0, LEVEL_L2
        bne     s1, t0, 1f
        call    kalloc
        beqz    a0, 2f
        mov     s2, a0
        li      t0, KERNBASE
        sub     t1, a0, t0
        sw      t1, UROOT_SLOT(s0)      # a non-present entry: the user root's pa
        mov     a0, s2
        li      a1, LEVEL_L2
        call    pin_fresh
1:      mov     a0, s0
        mov     a1, s1
        call    pin_fresh
        mov     a0, zero
        leave
2:      li      a0, -1
        leave

# pt_release(a0 = kva, a1 = level) -> a0 = kva of a companion frame to free too (a
# directory's user root), or 0.  Unpins the table (and its companion) and queues making
# them writable again in the kernel map; the caller must mmu_commit and tlb_flush_all
# before writing to them.  The table must not be the current address space.
pt_release:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     s2, zero
        call    unpin_queue
        li      t0, LEVEL_L2
        bne     s1, t0, 1f
        lw      t0, UROOT_SLOT(s0)
        beqz    t0, 1f
        li      t1, KERNBASE
        add     s2, t0, t1
        mov     a0, s2
        call    unpin_queue
1:      mov     a0, s2
        leave

# unpin_queue(a0 = kva of a pinned table): unpin it; queue its kernel-map entry writable.
unpin_queue:
        enter
        mov     s0, a0
        li      t0, KERNBASE
        sub     a0, a0, t0
        call    pa_mfn
        mov     a1, a0
        hcall   HC_UNPIN_TABLE
        bnez    a0, pv_refused
        mov     a0, s0
        li      a1, PTE_W
        call    kmap_set_writable
        leave

# pd_set_user(a0 = page directory kva, a1 = PDE index below KPDX, a2 = entry): queue the
# PDE in the directory and in its user root.
pd_set_user:
        enter
        mov     s0, a0
        slli    s1, a1, 2
        mov     s2, a2
        add     a0, s0, s1
        mov     a1, s2
        call    pte_write
        lw      t0, UROOT_SLOT(s0)
        li      t1, KERNBASE
        add     a0, t0, t1
        add     a0, a0, s1
        mov     a1, s2
        call    pte_write
        leave

# as_activate(a0 = page directory kva): set_base with it as the kernel root and its user
# root (itself if it has none: the boot directory).  The VMM flushes the TLB.
as_activate:
        enter
        mov     s0, a0
        li      t0, KERNBASE
        sub     a0, s0, t0
        call    pa_mfn
        mov     s1, a0
        mov     s2, a0
        lw      a0, UROOT_SLOT(s0)
        beqz    a0, 1f
        call    pa_mfn
        mov     s2, a0
1:      mov     a1, s1
        mov     a2, s2
        hcall   HC_SET_BASE
        bnez    a0, pv_refused
        leave

# trap_vector_set(a0 = handler kva).
trap_vector_set:
        mov     a1, a0
        hcall   HC_SET_TRAP_VECTOR
        ret

# timer_start(a0 = interval): periodic timer interrupts every a0 instructions.
timer_start:
        mov     a1, a0
        li      a2, TIMER_PERIODIC
        hcall   HC_SET_TIMER
        ret

# console_write(a0 = buf va, a1 = len): console_write hypercalls of at most
# CONSOLE_WRITE_MAX bytes, interrupts held off.  buf must be readable.
console_write:
        enter
        mov     s0, a0
        add     s1, a0, a1
        call    irq_save
        mov     s2, a0
1:      sub     a2, s1, s0
        beqz    a2, 3f
        li      t0, CONSOLE_WRITE_MAX
        bgeu    t0, a2, 2f
        mov     a2, t0
2:      mov     a1, s0
        add     s0, s0, a2
        hcall   HC_CONSOLE_WRITE
        j       1b
3:      mov     a0, s2
        call    irq_restore
        leave

# console_read(a0 = buf va, a1 = len > 0) -> a0 = bytes read (the VMM waits for at least
# one unless the input has ended; 0 at end of input).  buf must be writable.
console_read:
        mov     a2, a1
        mov     a1, a0
        hcall   HC_CONSOLE_READ
        ret

# power_off(a0 = exit code): shut the VM down.  Does not return.
power_off:
        mov     a1, a0
        hcall   HC_SHUTDOWN

# timer_ack(): nothing to do: the VMM's delivery of the timer interrupt through the
# per-vCPU page acknowledged it (docs/hypercalls.md "The per-vCPU page").
timer_ack:
        ret

# disk_init(a0 = kva of the bounce buffer, DISK_IO_MAX sectors, page-aligned) -> a0 =
# the disk's size in sectors, 0 without a disk (blk_setup refused it: -ENODEV).
# Registers pv_ring, empty (req_prod = rsp_prod = 0), as the block ring.
disk_init:
        la      t0, pv_disk_buf
        sw      a0, 0(t0)
        la      a1, pv_ring
        sw      zero, BLK_REQ_PROD(a1)
        sw      zero, BLK_RSP_PROD(a1)
        hcall   HC_BLK_SETUP            # a1 = the disk's sectors
        bnez    a0, 1f
        mov     a0, a1
        ret
1:      mov     a0, zero
        ret

# disk_transfer(a0 = DISK_CMD_READ or DISK_CMD_WRITE (= BLK_OP_READ, BLK_OP_WRITE), a1 =
# first sector, a2 = count, 1..DISK_IO_MAX, the range checked against the disk) -> a0 =
# 0, or -EIO if a request failed (or blk_notify refused the batch); a1 = 1 if a timer
# tick was acknowledged while waiting (the caller owes the scheduler a turn), else 0.
# One ring request per page of the buffer of disk_init (BLK_MAX_SECTORS sectors), all
# of them ONE batch: one blk_notify.  Then waits with wfi (an exit; interrupts are
# masked, so it only waits) until rsp_prod catches up, and checks every status.  The
# virtual disk interrupt stays pending and is delivered when the process resumes
# (disk_intr).  Every call waits for its responses, so the ring holds at most
# DISK_IO_MAX / BLK_MAX_SECTORS requests (< BLK_RING_SIZE) and req_prod = rsp_prod at entry.
disk_transfer:
        enter
        la      s3, pv_ring
        lw      s0, BLK_REQ_PROD(s3)    # the batch's first request number
        mov     s1, s0                  # the next request number
        la      t1, pv_disk_buf
        lw      t1, 0(t1)               # the next request's buffer
1:      andi    t2, s1, BLK_RING_SIZE - 1
        li      t3, BLK_SLOT_SIZE
        mul     t2, t2, t3
        add     t2, t2, s3
        addi    t2, t2, BLK_SLOTS_OFFSET
        sw      a0, BLK_OP(t2)
        sw      a1, BLK_SECTOR(t2)
        li      t3, BLK_MAX_SECTORS
        bgeu    a2, t3, 2f
        mov     t3, a2
2:      sw      t3, BLK_COUNT(t2)
        sw      t1, BLK_BUFFER(t2)
        sub     t0, s1, s0
        sw      t0, BLK_ID(t2)          # the id: the request's index in the batch
        add     a1, a1, t3
        sub     a2, a2, t3
        addi    t1, t1, PGSIZE
        addi    s1, s1, 1
        bnez    a2, 1b
        sw      s1, BLK_REQ_PROD(s3)    # publish the batch (after its slots) ...
        hcall   HC_BLK_NOTIFY           # ... and notify once
        bnez    a0, 8f
        mov     s2, zero
3:      lw      t0, BLK_RSP_PROD(s3)
        beq     t0, s1, 4f
        wfi                             # until a virtual line is asserted
        lw      t0, BLK_RSP_PROD(s3)
        beq     t0, s1, 4f
        li      t0, TIMER_BASE          # not the disk: the timer, which stays asserted while
        sw      zero, TIMER_ACK(t0)     # masked; acknowledge it (an emulated store)
        li      s2, 1
        j       3b
4:      mov     a0, zero                # every response is in: check the statuses
5:      andi    t2, s0, BLK_RING_SIZE - 1
        li      t3, BLK_SLOT_SIZE
        mul     t2, t2, t3
        add     t2, t2, s3
        lw      t0, BLK_SLOTS_OFFSET + BLK_STATUS(t2)
        beqz    t0, 6f
        li      a0, -EIO
6:      addi    s0, s0, 1
        bne     s0, s1, 5b
        mov     a1, s2
        leave
8:      sw      s0, BLK_REQ_PROD(s3)    # refused: nothing was queued; take the batch back
        li      a0, -EIO
        mov     a1, zero
        leave

# disk_intr(): the virtual disk interrupt of a batch disk_transfer already waited for,
# delivered when interrupts were unmasked; its delivery acknowledged it.
disk_intr:
        ret

# trap_entry: the trap vector.  The VMM delivered the trap through pv_vcpu: cause, epc,
# badaddr, the interrupted status and sp are in its frame, sp itself is the
# interrupted one.  Saves every register of the interrupted code, epc and status (as
# the native trap entry would have left it: PKM, PIE, the user flags) into *cur_tf,
# handles the trap, and returns through cur_tf.  No privileged instruction: no exit.
trap_entry:
        lui     sp, %hi(cur_tf)
        lw      sp, %lo(cur_tf)(sp)
        tf_save
        la      t0, pv_vcpu
        lw      t1, VCPU_SP(t0)
        sw      t1, TF_SP(sp)
        lw      t1, VCPU_EPC(t0)
        sw      t1, TF_EPC(sp)
        lw      t1, VCPU_STATUS(t0)     # the interrupted KM and IE ...
        andi    t2, t1, STATUS_KM | STATUS_IE
        slli    t2, t2, 2               # ... as PKM and PIE
        li      t3, STATUS_UF
        and     t1, t1, t3
        or      t1, t1, t2
        ori     t1, t1, STATUS_KM
        sw      t1, TF_STATUS(sp)
        mov     a0, sp
        la      sp, kstack_top
        call    trap
        j       trap_return

# trap_return: restore the process of cur_tf and drop to user mode with interrupts on
# (and the user flags it had), with one iret hypercall.  Does not return.
trap_return:
        lui     sp, %hi(cur_tf)
        lw      sp, %lo(cur_tf)(sp)
        la      t1, pv_vcpu
        lw      t0, TF_EPC(sp)
        sw      t0, VCPU_EPC(t1)
        lw      t0, TF_STATUS(sp)
        li      t2, STATUS_UF
        and     t0, t0, t2
        ori     t0, t0, STATUS_IE       # user mode (KM 0), interrupts on
        sw      t0, VCPU_STATUS(t1)
        lw      t0, TF_SP(sp)
        sw      t0, VCPU_SP(t1)
        lw      t0, TF_A0(sp)
        sw      t0, VCPU_A0(t1)
        tf_restore
        li      a0, HC_IRET
        hypercall

# trap_cause() / trap_badaddr() -> a0 = the cause / badaddr of the trap being handled,
# from pv_vcpu's frame.
trap_cause:
        la      t0, pv_vcpu
        lw      a0, VCPU_CAUSE(t0)
        ret
trap_badaddr:
        la      t0, pv_vcpu
        lw      a0, VCPU_BADADDR(t0)
        ret

        .endif

# phase_mark(a0 = marker): record a phase mark (docs/isa.md "Marker"): the same store in
# both builds, as timer_ack.
phase_mark:
        li      t0, MARKER_BASE
        sw      a0, MARKER_MARK(t0)
        ret

# irq_save() -> a0 = the interrupt state; interrupts off.  irq_restore(a0 = state).
# With USE_SENSITIVE_FLAGS: rdsr / di ... wrsr, the classic save-status idiom.  It is
# off by default because rdsr and wrsr are sensitive but not privileged: run
# deprivileged under trap-and-emulate, rdsr reads the real status (KM = 0, the VMM's IE)
# and wrsr silently cannot change IE, so the VMM never sees the guest's interrupt
# state change (docs/isa.md, "rdsr and wrsr").
        .ifdef USE_SENSITIVE_FLAGS
irq_save:
        rdsr    a0
        di
        ret
irq_restore:
        wrsr    a0
        ret
        .else
        .ifndef PARAVIRT
irq_save:
        la      t0, irq_enabled         # native: di, and a software copy of IE
        lw      a0, 0(t0)
        di
        sw      zero, 0(t0)
        ret
irq_restore:
        la      t0, irq_enabled
        sw      a0, 0(t0)
        beqz    a0, 1f
        ei
1:      ret
        .else
irq_save:                               # PV: plain stores to the per-vCPU page
        la      t0, pv_vcpu
        lw      a0, VCPU_IRQ_ENABLE(t0)
        sw      zero, VCPU_IRQ_ENABLE(t0)
        ret
irq_restore:
        la      t0, pv_vcpu
        sw      a0, VCPU_IRQ_ENABLE(t0)
        beqz    a0, 1f
        lw      t1, VCPU_IRQ_PENDING(t0)
        beqz    t1, 1f
        mov     a1, a0                  # unmasked with an interrupt pending: let the VMM deliver it
        hcall   HC_SET_IRQ_ENABLE
1:      ret
        .endif
        .endif

        .data
        .ifndef PARAVIRT
        .ifndef USE_SENSITIVE_FLAGS
irq_enabled:    .word 0                 # the kernel runs with IE = 0; user mode with IE = 1
        .endif
        .else
        .section .rodata
msg_pvops:      .asciz "pvops"
msg_refused:    .asciz "hypercall refused"
        .data
pv_p2m:         .word 0                 # kva of the p2m list (guest frame -> machine frame)
pv_m2p:         .word 0                 # kva of the m2p table (machine frame -> guest frame)
pv_batch_n:     .word 0                 # queued mmu_update elements
pv_disk_buf:    .word 0                 # kva of the disk's bounce buffer (disk_init)
        .bss
        .balign 8
pv_batch:       .space BATCH_SLOTS * 8
        .balign PGSIZE
pv_vcpu:        .space PGSIZE           # the per-vCPU page (set_vcpu_page)
pv_ring:        .space PGSIZE           # the block ring (blk_setup), page-aligned after pv_vcpu
        .endif

# attack: one malicious request of a direct-mode guest per run, chosen by
# defining one ATTACK_* name (-D ATTACK_W_FLIP).  The guest prints the
# hypercall's result (and, for mmu_update, how many elements were done),
# then proves nothing was applied by reading
# the targeted entry back through the read-only bootstrap mapping of its
# tables ("entry unchanged"), or by showing its base is still current.  The
# VM then goes on: it prints a final line and shuts down with exit code 0.
#
# s1 = a free guest frame (first_free), mapped writable at gva = gpa;
# s2 = gva of the targeted entry, s3 = the entry's value before the attack.
        .include "pv.inc"

# The attacks:
#   ATTACK_OTHER_VM            map the next VM's first frame
#   ATTACK_VMM_FRAME           map machine frame 3 (the VMM's)
#   ATTACK_MMIO                map the UART page, frame 0xF0000
#   ATTACK_TABLE_WRITABLE      map the bootstrap L2 writable
#   ATTACK_PIN_WRITABLE        pin a writable-mapped page as an L1
#   ATTACK_W_FLIP              set only W in the entry mapping an L1 (XSA-182)
#   ATTACK_BASE_DATA           set_base on a writable data page
#   ATTACK_BASE_UNVALIDATED    set_base on a read-only page never pinned
#   ATTACK_PDE_NOT_TABLE       a PDE pointing at a data page
#   ATTACK_BEYOND_MEMORY       map frame 0x10000 (256 MiB)
#   ATTACK_BATCH_OUTSIDE       a batch whose 2nd element lies past guest RAM
#   ATTACK_MISALIGNED          ptr = an entry's address + 2
#   ATTACK_UNPIN_BASE          unpin the current base
#   ATTACK_USER_HYPERCALL      a hypercall from virtual user mode
#   ATTACK_VCPU_UNMAPPED       set_vcpu_page on an unmapped page
#   ATTACK_VCPU_READONLY       set_vcpu_page on the bootstrap L2 (mapped read-only: a page table)
#   ATTACK_VCPU_MISALIGNED     set_vcpu_page on a writable page + 4
#   ATTACK_VCPU_WRAP           set_vcpu_page on the last page of the address space (unmapped)
#   ATTACK_VCPU_THEN_PIN       register a page, make its mapping read-only, pin it as an L1

        .equ SHUTDOWN_MARK, 42          # a1 of the user-mode hypercall

        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        la      a1, trap_entry
        hcall   HC_SET_TRAP_VECTOR
        li      t0, START_INFO_ADDR
        lw      s1, SI_FIRST_FREE(t0)
        srli    s1, s1, PAGE_SHIFT
        call    attack
        say     msg_alive
        mov     a1, zero
        hcall   HC_SHUTDOWN

attack:
        push    ra
.ifdef ATTACK_OTHER_VM
        say     name_other_vm
        call    own_pte
        push    a0
        li      t0, START_INFO_ADDR
        lw      a0, SI_NR_FRAMES(t0)
        addi    a0, a0, -1
        call    mfn_of                  # this VM's last frame; the next VM's come after it
        addi    a1, a0, 1
        slli    a1, a1, PAGE_SHIFT
        ori     a1, a1, PTE_RW
        pop     a0
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_VMM_FRAME
        say     name_vmm_frame
        call    own_pte
        li      a1, (3 << PAGE_SHIFT) | PTE_RW
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_MMIO
        say     name_mmio
        call    own_pte
        li      a1, 0xF0000000 | PTE_RW
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_TABLE_WRITABLE
        say     name_table_writable
        call    own_pte
        li      t0, START_INFO_ADDR
        lw      a1, SI_KERNEL_ROOT_MFN(t0)
        slli    a1, a1, PAGE_SHIFT
        ori     a1, a1, PTE_RW
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_PIN_WRITABLE
        say     name_pin_writable
        call    own_pte
        mov     a0, s1
        call    mfn_of
        mov     a1, a0
        li      a2, PIN_L1
        hcall   HC_PIN_TABLE
        call    report_plain
        call    check_entry
        slli    t0, s1, PAGE_SHIFT      # still an ordinary page: store, load back
        li      t1, 0x5EC2E7
        sw      t1, 0(t0)
        lw      t2, 0(t0)
        bne     t1, t2, 1f
        say     msg_still_writable
1:
.endif
.ifdef ATTACK_W_FLIP
        say     name_w_flip
        li      t0, START_INFO_ADDR
        lw      a0, SI_PT_FIRST_GFN(t0)
        addi    a0, a0, 1               # the first bootstrap L1 ...
        call    boot_pte_gva            # ... and the entry that maps it read-only
        mov     s2, a0
        lw      s3, 0(s2)
        call    gva_to_ma
        ori     a1, s3, PTE_W
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_BASE_DATA
        say     name_base_data
        call    own_pte
        mov     a0, s1
        call    mfn_of
        mov     a1, a0
        mov     a2, a0
        hcall   HC_SET_BASE
        call    report_plain
        call    prove_base
.endif
.ifdef ATTACK_BASE_UNVALIDATED
        say     name_base_unvalidated
        call    own_pte                 # first, legitimately: the page read-only
        mov     a1, s3
        xori    a1, a1, PTE_W
        call    update
        call    report
        say     msg_then_set_base
        mov     a0, s1
        call    mfn_of
        mov     a1, a0
        mov     a2, a0
        hcall   HC_SET_BASE
        call    report_plain
        call    prove_base
.endif
.ifdef ATTACK_PDE_NOT_TABLE
        say     name_pde_not_table
        li      t0, START_INFO_ADDR
        lw      s2, SI_PT_FIRST_GFN(t0)
        slli    s2, s2, PAGE_SHIFT
        addi    s2, s2, (0x80000000 >> PDX_SHIFT) * 4   # the bootstrap L2's empty PDE of 0x80000000
        lw      s3, 0(s2)
        mov     a0, s1
        call    mfn_of
        slli    a0, a0, PAGE_SHIFT
        ori     a0, a0, PTE_RW
        push    a0
        mov     a0, s2
        call    gva_to_ma
        pop     a1
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_BEYOND_MEMORY
        say     name_beyond_memory
        call    own_pte
        li      a1, 0x10000000 | PTE_RW
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_BATCH_OUTSIDE
        say     name_batch_outside
        call    own_pte
        li      t0, START_INFO_ADDR
        lw      a1, SI_MEM_SIZE(t0)
        addi    a1, a1, -8              # element 0: the last 8 bytes of guest RAM
        sw      a0, 0(a1)
        sw      s3, 4(a1)               # rewrite the entry with its own value: valid
        li      a2, 2                   # element 1 would be past guest RAM
        hcall   HC_MMU_UPDATE
        call    report
        call    check_entry
.endif
.ifdef ATTACK_MISALIGNED
        say     name_misaligned
        call    own_pte
        addi    a0, a0, 2
        mov     a1, s3
        call    update
        call    report
        call    check_entry
.endif
.ifdef ATTACK_UNPIN_BASE
        say     name_unpin_base
        li      t0, START_INFO_ADDR
        lw      a1, SI_KERNEL_ROOT_MFN(t0)
        hcall   HC_UNPIN_TABLE
        call    report_plain
        call    prove_base
.endif
.ifdef ATTACK_VCPU_UNMAPPED
        say     name_vcpu_unmapped
        li      a1, 0xE0000000
        hcall   HC_SET_VCPU_PAGE
        call    report_plain
.endif
.ifdef ATTACK_VCPU_READONLY
        say     name_vcpu_readonly
        li      t0, START_INFO_ADDR
        lw      a1, SI_PT_FIRST_GFN(t0)
        slli    a1, a1, PAGE_SHIFT
        hcall   HC_SET_VCPU_PAGE
        call    report_plain
.endif
.ifdef ATTACK_VCPU_MISALIGNED
        say     name_vcpu_misaligned
        slli    a1, s1, PAGE_SHIFT
        addi    a1, a1, 4
        hcall   HC_SET_VCPU_PAGE
        call    report_plain
.endif
.ifdef ATTACK_VCPU_WRAP
        say     name_vcpu_wrap
        li      a1, 0xFFFFF000
        hcall   HC_SET_VCPU_PAGE
        call    report_plain
.endif
.ifdef ATTACK_VCPU_THEN_PIN
        say     name_vcpu_then_pin
        slli    a1, s1, PAGE_SHIFT      # frame s1, mapped writable at gva = gpa
        hcall   HC_SET_VCPU_PAGE
        call    report_plain
        say     msg_read_only
        call    own_pte                 # its only writable mapping made read-only ...
        mov     a1, s3
        xori    a1, a1, PTE_W
        call    update
        call    report
        say     msg_then_pin
        mov     a0, s1                  # ... still it cannot become a page table
        call    mfn_of
        mov     a1, a0
        li      a2, PIN_L1
        hcall   HC_PIN_TABLE
        call    report_plain
.endif
.ifdef ATTACK_USER_HYPERCALL
        say     name_user_hypercall
        la      t0, user_code
        mtcr    epc, t0
        li      t0, STATUS_KM
        mtcr    status, t0              # KM = 1, PKM = 0: rfe enters virtual user mode
        rfe
.endif
        pop     ra
        ret

# user_code: runs in virtual user mode.  Its hypercall must trap to the guest
# kernel (EXC_ILLEGAL) without changing a register; syscall then returns to
# the kernel for good.
user_code:
        li      a0, HC_SHUTDOWN
        li      a1, SHUTDOWN_MARK
user_hypercall:
        hypercall
        syscall

# own_pte: s2 = gva of the bootstrap PTE mapping frame s1, s3 = its value;
# returns a0 = its machine address.
own_pte:
        push    ra
        mov     a0, s1
        call    boot_pte_gva
        mov     s2, a0
        lw      s3, 0(s2)
        call    gva_to_ma
        pop     ra
        ret

# update(a0 = ptr, a1 = val): a one-element mmu_update; returns its a0, a1.
update:
        la      a2, batch
        sw      a0, 0(a2)
        sw      a1, 4(a2)
        mov     a1, a2
        li      a2, 1
        hcall   HC_MMU_UPDATE
        ret

# report(a0 = result, a1 = elements done): " -> R (done D)\n".
report:
        push    ra
        push    a1
        push    a0
        say     msg_arrow
        pop     a0
        call    putint
        say     msg_done
        pop     a0
        call    putint
        say     msg_close
        pop     ra
        ret

# report_plain(a0 = result): " -> R\n".
report_plain:
        push    ra
        push    a0
        say     msg_arrow
        pop     a0
        call    putint
        say     msg_newline
        pop     ra
        ret

# check_entry: the entry at s2 read back and compared with s3.
check_entry:
        push    ra
        lw      t0, 0(s2)
        bne     t0, s3, 1f
        say     msg_unchanged
        pop     ra
        ret
1:      say     msg_changed
        pop     ra
        ret

# prove_base: the bootstrap L2 is still the current base (unpinning it is -EBUSY).
prove_base:
        push    ra
        say     msg_base
        li      t0, START_INFO_ADDR
        lw      a1, SI_KERNEL_ROOT_MFN(t0)
        hcall   HC_UNPIN_TABLE
        call    putint
        say     msg_newline
        pop     ra
        ret

# trap_entry: EXC_ILLEGAL at user_hypercall with a0, a1 intact: report, skip
# it; EXC_SYSCALL: report and shut down with 0; anything else: report, 99.
trap_entry:
        trap_save
        mfcr    t0, cause
        li      t1, EXC_SYSCALL
        beq     t0, t1, on_syscall
        li      t1, EXC_ILLEGAL
        bne     t0, t1, unexpected
        say     msg_illegal
        mfcr    t0, epc
        la      t1, user_hypercall
        bne     t0, t1, unexpected
        lw      t0, TRAP_FRAME - 4(sp)  # the interrupted a0 and a1
        lw      t1, 8(sp)
        li      t2, HC_SHUTDOWN
        bne     t0, t2, 1f
        li      t2, SHUTDOWN_MARK
        bne     t1, t2, 1f
        say     msg_intact
1:      mfcr    t0, epc
        addi    t0, t0, 4
        mtcr    epc, t0
        trap_return
on_syscall:
        say     msg_syscall
        say     msg_alive
        mov     a1, zero
        hcall   HC_SHUTDOWN

        .include "pvlib.inc"

        .rodata
name_other_vm:          .asciz "attack other_vm_frame: mmu_update"
name_vmm_frame:         .asciz "attack vmm_frame: mmu_update"
name_mmio:              .asciz "attack mmio_page: mmu_update"
name_table_writable:    .asciz "attack table_writable: mmu_update"
name_pin_writable:      .asciz "attack pin_writable_page: pin_table"
name_w_flip:            .asciz "attack w_bit_flip: mmu_update"
name_base_data:         .asciz "attack base_data_page: set_base"
name_base_unvalidated:  .asciz "attack base_unvalidated: mmu_update read-only"
name_pde_not_table:     .asciz "attack pde_not_a_table: mmu_update"
name_beyond_memory:     .asciz "attack beyond_memory: mmu_update"
name_batch_outside:     .asciz "attack batch_outside: mmu_update"
name_misaligned:        .asciz "attack misaligned_ptr: mmu_update"
name_unpin_base:        .asciz "attack unpin_base: unpin_table"
name_user_hypercall:    .asciz "attack user_hypercall: entering user mode\n"
name_vcpu_unmapped:     .asciz "attack vcpu_unmapped: set_vcpu_page"
name_vcpu_readonly:     .asciz "attack vcpu_page_table: set_vcpu_page"
name_vcpu_misaligned:   .asciz "attack vcpu_misaligned: set_vcpu_page"
name_vcpu_wrap:         .asciz "attack vcpu_top_of_memory: set_vcpu_page"
name_vcpu_then_pin:     .asciz "attack vcpu_then_pin: set_vcpu_page"
msg_read_only:  .asciz "  mmu_update read-only"
msg_then_pin:   .asciz "  then pin_table"
msg_arrow:      .asciz " -> "
msg_then_set_base: .asciz "  then set_base on it"
msg_done:       .asciz " (done "
msg_close:      .asciz ")\n"
msg_unchanged:  .asciz "  entry unchanged\n"
msg_changed:    .asciz "  ENTRY CHANGED\n"
msg_still_writable: .asciz "  frame still an ordinary writable page\n"
msg_base:       .asciz "  bootstrap L2 still the base: unpin_table -> "
msg_illegal:    .asciz "  trap: illegal instruction from user mode\n"
msg_intact:     .asciz "  a0 and a1 unchanged\n"
msg_syscall:    .asciz "  back in the kernel by syscall\n"
msg_alive:      .asciz "attack guest still running\n"

        .data
batch:          .space 8

        .bss
        .balign 16
stack:          .space 1024
stack_top:

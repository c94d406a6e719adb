# exec.s: loading a boot module (an ELF executable) into a fresh address space.

        .include "kernel.inc"

        .equ EHDR_SIZE, 52
        .equ PHDR_SIZE, 32
        .equ SEGMENT_LIMIT, USTACK_TOP - USTACK_SIZE - PGSIZE

        .text
        .globl elf_load

# elf_load(a0 = proc with an empty page directory, a1 = boot-module entry kva) -> a0 = 0,
# -EINVAL (not an ELF executable whose PT_LOAD segments lie in [USER_BASE,
# SEGMENT_LIMIT)) or -ENOMEM.  Maps every PT_LOAD segment (bytes copied from the
# module, bss zero-filled, writable only if PF_W), sets the heap to start at the page
# after the last segment, and the trap frame to enter e_entry with sp = USTACK_TOP.
elf_load:
        enter
        mov     s0, a0
        lw      s1, MOD_START(a1)
        li      t0, KERNBASE
        add     s1, s1, t0              # the image
        lw      s2, MOD_SIZE(a1)
        li      t0, EHDR_SIZE
        bltu    s2, t0, 9f
        lw      t0, 0(s1)
        li      t1, ELF_MAGIC
        bne     t0, t1, 9f
        lhu     t0, E_PHENTSIZE(s1)
        li      t1, PHDR_SIZE
        bne     t0, t1, 9f
        lhu     s3, E_PHNUM(s1)
        lw      t0, E_PHOFF(s1)
        slli    t1, s3, 5               # the program headers lie inside the module
        add     t1, t1, t0
        bltu    t1, t0, 9f
        bltu    s2, t1, 9f
        li      t1, USER_BASE
        sw      t1, P_HEAP(s0)
        add     t0, t0, s1
        push    t0
1:      beqz    s3, 2f
        lw      a1, 0(sp)
        lw      t0, P_TYPE(a1)
        li      t1, PT_LOAD
        bne     t0, t1, 3f
        mov     a0, s0
        mov     a2, s1
        mov     a3, s2
        call    load_segment
        bnez    a0, 4f
3:      lw      t0, 0(sp)
        addi    t0, t0, PHDR_SIZE
        sw      t0, 0(sp)
        addi    s3, s3, -1
        j       1b
2:      lw      t0, P_HEAP(s0)
        sw      t0, P_BRK(s0)
        lw      t0, E_ENTRY(s1)
        sw      t0, P_TF + TF_EPC(s0)
        li      t0, USTACK_TOP
        sw      t0, P_TF + TF_SP(s0)
        mov     a0, zero
4:      addi    sp, sp, 4
        leave
9:      li      a0, -EINVAL
        leave

# load_segment(a0 = proc, a1 = program header kva, a2 = image kva, a3 = image size) ->
# a0 = 0, -EINVAL or -ENOMEM.  Maps the segment's pages (batched: one commit at the
# end) and raises P_HEAP past it.
load_segment:
        enter
        mov     s0, a0
        mov     s1, a1
        lw      t0, P_OFFSET(s1)        # file bytes inside the image
        lw      t1, P_FILESZ(s1)
        add     t2, t0, t1
        bltu    t2, t0, 9f
        bltu    a3, t2, 9f
        add     t0, t0, a2
        push    t0                      # 0(sp): the file bytes
        lw      t0, P_VADDR(s1)
        lw      t2, P_MEMSZ(s1)
        bltu    t2, t1, 8f
        li      t3, USER_BASE
        bltu    t0, t3, 8f
        add     t2, t2, t0              # end of the segment
        bltu    t2, t0, 8f
        li      t3, SEGMENT_LIMIT
        bltu    t3, t2, 8f
        srli    s2, t0, PGSHIFT         # s2: page va; s3: end
        slli    s2, s2, PGSHIFT
        mov     s3, t2
1:      bgeu    s2, s3, 2f
        mov     a0, s0
        mov     a1, s1
        mov     a2, s2
        lw      a3, 0(sp)
        call    load_page
        bnez    a0, 7f
        li      t0, PGSIZE
        add     s2, s2, t0
        j       1b
2:      lw      t0, P_HEAP(s0)
        bgeu    t0, s2, 3f
        sw      s2, P_HEAP(s0)
3:      call    mmu_commit
        mov     a0, zero
7:      addi    sp, sp, 4
        leave
8:      addi    sp, sp, 4
9:      li      a0, -EINVAL
        leave

# load_page(a0 = proc, a1 = program header, a2 = page va, a3 = the segment's file
# bytes) -> a0 = 0 or -ENOMEM.  A zeroed frame with the file bytes that fall in this
# page, mapped at a2.
load_page:
        enter
        mov     s0, a0
        mov     s1, a1
        mov     s2, a2
        mov     s3, a3
        call    kalloc
        beqz    a0, 9f
        push    a0
        lw      t0, P_VADDR(s1)         # copy [max(page, vaddr), min(page + 4K, vaddr + filesz))
        lw      t1, P_FILESZ(s1)
        add     t1, t1, t0
        mov     t2, s2
        bgeu    t2, t0, 1f
        mov     t2, t0
1:      li      t3, PGSIZE
        add     t3, t3, s2
        bgeu    t1, t3, 2f
        mov     t3, t1
2:      bgeu    t2, t3, 3f
        sub     a2, t3, t2
        sub     a1, t2, t0
        add     a1, a1, s3
        sub     a0, t2, s2
        lw      t0, 0(sp)
        add     a0, a0, t0
        call    memcpy
3:      lw      t0, P_FLAGS(s1)
        andi    t0, t0, PF_W            # PF_W (2) is PTE_W (2)
        ori     a3, t0, PTE_U
        lw      a0, P_PGDIR(s0)
        mov     a1, s2
        lw      a2, 0(sp)
        li      t0, KERNBASE
        sub     a2, a2, t0
        call    map_page
        bnez    a0, 8f
        addi    sp, sp, 4
        leave
8:      pop     a0
        call    kfree
9:      li      a0, -ENOMEM
        leave

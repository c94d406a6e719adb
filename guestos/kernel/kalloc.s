# kalloc.s: the physical-frame allocator, a free list of 4 KiB frames threaded through
# the frames themselves (reached at KERNBASE + pa).  free_frames counts them (printed at
# power-off and at each reap when the command line contains "debug").

        .include "kernel.inc"

        .text
        .globl kinit, kalloc, kfree, free_frames

# kinit(a0 = first free pa, a1 = end of RAM pa): put every frame in [a0, a1) on the free
# list.  Both page-aligned.
kinit:
        enter
        li      t0, KERNBASE
        add     s0, a0, t0
        add     s1, a1, t0
1:      beq     s0, s1, 2f
        mov     a0, s0
        call    kfree
        addi    s0, s0, PGSIZE
        j       1b
2:      leave

# kalloc() -> a0 = kva of a zeroed frame, or 0 when none is left.
kalloc:
        la      t0, freelist
        lw      a0, 0(t0)
        beqz    a0, 2f
        lw      t1, 0(a0)
        sw      t1, 0(t0)
        la      t0, free_frames
        lw      t1, 0(t0)
        addi    t1, t1, -1
        sw      t1, 0(t0)
        addi    t0, a0, PGSIZE
        mov     t1, a0
1:      sw      zero, 0(t1)
        addi    t1, t1, 4
        bne     t1, t0, 1b
2:      ret

# kfree(a0 = kva of a frame from kalloc or kinit): give it back.  The frame must be
# writable in the kernel map.  Panics on an address that is not a page of RAM.
kfree:
        andi    t0, a0, PGSIZE - 1
        bnez    t0, 1f
        li      t0, KERNBASE
        bltu    a0, t0, 1f
        la      t0, freelist
        lw      t1, 0(t0)
        sw      t1, 0(a0)
        sw      a0, 0(t0)
        la      t0, free_frames
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        ret
1:      la      a0, msg_kfree
        la      a1, msg_bad
        j       panic

        .rodata
msg_kfree:      .asciz "kfree"
msg_bad:        .asciz "not a frame"

        .data
freelist:       .word 0                 # kva of the first free frame, 0 if none
free_frames:    .word 0

# hog: a shadow-mode guest (mem=8M) that fills the VMM's shared pool of
# shadow-table frames, then stays alive holding it.
#
# With paging off it builds a PD at gpa 0x200000 whose PDE 0 identity-maps
# 0..4 MiB (PT at 0x201000) and whose PDEs 1..REGIONS name distinct guest
# frames 0x401.. as page tables, each with entry 0 present.  With paging on it
# touches gva r << 22 for every r: each touch is one hidden fault that costs
# the VMM one pool frame (a shadow PT).  It then spins, and finally turns
# paging off and powers off with exit code 0.
        .ifndef REGIONS
        .equ REGIONS, 1019
        .endif
        .equ PD, 0x200000
        .equ PT0, 0x201000
        .equ PTS, 0x400000
        .text
        .globl _start
_start:
        li      s0, PD
        li      t0, PT0 | 7             # PDE 0 -> PT0, P W U
        sw      t0, 0(s0)
        li      t1, PT0 + (0x100 << 2)  # PT0 maps only the code page 0x100000
        li      t2, 0x100000 | 7
        sw      t2, 0(t1)
        li      a0, 0x1000
        li      t0, (PTS + 0x1000) | 7  # PDE r -> PT frame PTS + r * 4096
        addi    t2, s0, 4
        li      t3, PTS + 0x1000
        li      t1, 0x3FF000 | 7        # entry 0 of every such PT
        li      s2, REGIONS
2:      sw      t0, 0(t2)
        sw      t1, 0(t3)
        add     t0, t0, a0
        addi    t2, t2, 4
        add     t3, t3, a0
        addi    s2, s2, -1
        bnez    s2, 2b
        ori     t0, s0, 1
        mtcr    ptb, t0                 # paging on
        li      t0, 0x400000            # gva of region 1
        mov     a1, t0
        li      s2, REGIONS
3:      lw      t1, 0(t0)               # one hidden fault, one shadow PT
        add     t0, t0, a1
        addi    s2, s2, -1
        bnez    s2, 3b
        li      s1, 100000              # stay alive, holding the pool
4:      addi    s1, s1, -1
        bnez    s1, 4b
        mtcr    ptb, zero
        li      t1, 0xF0003000
        sw      zero, 0(t1)
5:      j       5b

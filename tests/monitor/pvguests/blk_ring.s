# blk_ring: the paravirtual disk's ring (docs/hypercalls.md "The block ring"),
# good requests and every kind of bad one.  Interrupts stay masked: the guest
# waits for rsp_prod with plain loads.  Each line is "what: value" (decimal).
#
#   notify before setup, setup misaligned, setup on its bootstrap L2 (mapped
#   read-only), then setup (its result and a1, the disk's sectors; without a
#   disk the result is -ENODEV and the guest stops there with exit code 3);
#   a batch of one read (sector 0 into buf: its text is printed), a batch of
#   six bad requests (bad op, count 0, count over the maximum, sectors beyond
#   the disk, a buffer at an unmapped address, a buffer that is a page table),
#   a write of buf to sector 3, then notifies with req_prod too far ahead and
#   behind; shutdown 0.
        .include "pv.inc"

        .equ UNMAPPED, 0x40000000

# report label: print the string at `label`, then a0 in decimal and a newline.
        .macro report label
        addi    sp, sp, -4
        sw      a0, 0(sp)
        say     \label
        lw      a0, 0(sp)
        addi    sp, sp, 4
        call    show
        .endm

        kite_note
        .text
        .globl _start
_start:
        la      sp, stack_top
        hcall   HC_BLK_NOTIFY
        report  msg_early
        la      a1, ring + 4
        hcall   HC_BLK_SETUP
        report  msg_misaligned
        li      t0, START_INFO_ADDR
        lw      a1, SI_PT_FIRST_GFN(t0)
        slli    a1, a1, 12                      # the bootstrap L2, at gva = gpa
        mov     s1, a1
        hcall   HC_BLK_SETUP
        report  msg_on_table
        la      t0, ring
        sw      zero, BLK_REQ_PROD(t0)
        sw      zero, BLK_RSP_PROD(t0)
        mov     a1, t0
        hcall   HC_BLK_SETUP
        mov     s0, a1                          # the disk's sectors
        mov     s2, a0
        report  msg_setup
        li      t0, -ENODEV & 0xFFFFFFFF
        bne     s2, t0, 1f
        li      a1, 3
        hcall   HC_SHUTDOWN
1:      mov     a0, s0
        report  msg_sectors

        li      a0, 0                           # request 0: read sector 0 into buf
        li      a1, BLK_OP_READ
        li      a2, 0
        li      a3, 1
        la      t3, buf
        call    request
        li      a0, 1
        call    submit
        li      a0, 0
        call    status
        la      a0, buf
        call    puts
        say     msg_newline

        li      a0, 1                           # requests 1-6: each refused alone
        li      a1, 9                           # an unknown op
        li      a2, 0
        li      a3, 1
        la      t3, buf
        call    request
        li      a0, 2
        li      a1, BLK_OP_READ
        li      a2, 0
        li      a3, 0                           # count 0
        la      t3, buf
        call    request
        li      a0, 3
        li      a1, BLK_OP_READ
        li      a2, 0
        li      a3, BLK_MAX_SECTORS + 1         # count over the maximum
        la      t3, buf
        call    request
        li      a0, 4
        li      a1, BLK_OP_READ
        mov     a2, s0                          # the sector after the last
        li      a3, 1
        la      t3, buf
        call    request
        li      a0, 5
        li      a1, BLK_OP_READ
        li      a2, 0
        li      a3, 1
        li      t3, UNMAPPED                    # nothing mapped there
        call    request
        li      a0, 6
        li      a1, BLK_OP_READ
        li      a2, 0
        li      a3, 1
        mov     t3, s1                          # a page table: never written for the guest
        call    request
        li      a0, 7
        call    submit
        li      s2, 1
2:      mov     a0, s2
        call    status
        addi    s2, s2, 1
        li      t0, 7
        bne     s2, t0, 2b

        li      a0, 7                           # request 7: write buf to sector 3
        li      a1, BLK_OP_WRITE
        li      a2, 3
        li      a3, 1
        la      t3, buf
        call    request
        li      a0, 8
        call    submit
        li      a0, 7
        call    status

        la      t0, ring                        # req_prod 33 past the responses
        li      t1, 8 + BLK_RING_SIZE + 1
        sw      t1, BLK_REQ_PROD(t0)
        hcall   HC_BLK_NOTIFY
        report  msg_ahead
        la      t0, ring                        # req_prod behind the requests queued
        li      t1, 5
        sw      t1, BLK_REQ_PROD(t0)
        hcall   HC_BLK_NOTIFY
        report  msg_behind
        li      a1, 0
        hcall   HC_SHUTDOWN

# request(a0 = number, a1 = op, a2 = sector, a3 = count, t3 = buffer): fill its slot.
request:
        andi    a0, a0, BLK_RING_SIZE - 1
        slli    a0, a0, 5                       # * BLK_SLOT_SIZE
        la      t0, ring + BLK_SLOTS_OFFSET
        add     t0, t0, a0
        sw      a1, BLK_OP(t0)
        sw      a2, BLK_SECTOR(t0)
        sw      a3, BLK_COUNT(t0)
        sw      t3, BLK_BUFFER(t0)
        li      t1, -1
        sw      t1, BLK_STATUS(t0)
        ret

# submit(a0 = new req_prod): publish it, notify (its result printed), wait for the responses.
submit:
        addi    sp, sp, -8
        sw      ra, 0(sp)
        sw      a0, 4(sp)
        la      t0, ring
        sw      a0, BLK_REQ_PROD(t0)
        hcall   HC_BLK_NOTIFY
        report  msg_notify
        lw      t2, 4(sp)
        la      t0, ring
1:      lw      t1, BLK_RSP_PROD(t0)
        bne     t1, t2, 1b
        lw      ra, 0(sp)
        addi    sp, sp, 8
        ret

# status(a0 = number): print "status: <its slot's status>".
status:
        addi    sp, sp, -4
        sw      ra, 0(sp)
        andi    a0, a0, BLK_RING_SIZE - 1
        slli    a0, a0, 5
        la      t0, ring + BLK_SLOTS_OFFSET
        add     t0, t0, a0
        lw      a0, BLK_STATUS(t0)
        report  msg_status
        lw      ra, 0(sp)
        addi    sp, sp, 4
        ret

# show(a0 = value): print it in decimal and a newline.
show:
        addi    sp, sp, -4
        sw      ra, 0(sp)
        call    putint
        say     msg_newline
        lw      ra, 0(sp)
        addi    sp, sp, 4
        ret

        .include "pvlib.inc"

        .data
msg_early:      .asciz "notify before setup: "
msg_misaligned: .asciz "setup misaligned: "
msg_on_table:   .asciz "setup on a page table: "
msg_setup:      .asciz "setup: "
msg_sectors:    .asciz "sectors: "
msg_notify:     .asciz "notify: "
msg_status:     .asciz "status: "
msg_ahead:      .asciz "notify ahead: "
msg_behind:     .asciz "notify behind: "
        .bss
        .balign 4096
ring:   .space 4096
buf:    .space 512
        .space 1024
stack_top:

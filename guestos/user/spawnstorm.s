# spawnstorm.s (user-spawnstorm): dominated by address-space setup and
# teardown.  Spawns SERIAL user-nop children one at a time (spawn, then wait
# for that pid), then BATCHES batches of BATCH children alive together, reaped
# with wait(-1) in whatever order they exit.  Every child must exit with
# status pid & 0x7F (see nop.s) and be reaped exactly once; afterwards
# wait(-1) must report -ECHILD.  Prints the count and exits 0, or names the
# failure and exits 1.

        .include "../include/syscall.inc"

        .equ SERIAL,  32
        .equ BATCHES, 4
        .equ BATCH,   4

        .text
        .globl  main
main:
        push    ra
        push    s0
        li      s0, SERIAL
1:      call    spawn_one
        bnez    a0, 3f
        addi    s0, s0, -1
        bnez    s0, 1b
        li      s0, BATCHES
2:      call    spawn_batch
        bnez    a0, 3f
        addi    s0, s0, -1
        bnez    s0, 2b
        li      a0, -1
        li      a1, 0
        call    wait
        li      t0, -ECHILD
        mov     t1, a0
        la      a0, children_left
        bne     t1, t0, 3f
        la      a0, summary_head
        call    print_str
        li      a0, SERIAL + BATCHES * BATCH
        call    print_dec
        la      a0, summary_tail
        call    print_str
        li      a0, 0
        j       4f
3:      call    print_str               # a0: the failure message
        li      a0, 1
4:      pop     s0
        pop     ra
        ret

# spawn_one() -> 0, or a failure message: spawn user-nop and wait for it.
spawn_one:
        addi    sp, sp, -12
        sw      ra, 8(sp)
        sw      s0, 4(sp)               # 0(sp): the child's status
        la      a0, nop_name
        call    spawn
        mov     s0, a0
        la      t0, spawn_failed
        blez    s0, 9f
        mov     a0, s0
        mov     a1, sp
        call    wait
        la      t0, wrong_pid
        bne     a0, s0, 9f
        lw      a0, 0(sp)
        mov     a1, s0
        call    check_status
        mov     t0, a0
9:      mov     a0, t0
        lw      s0, 4(sp)
        lw      ra, 8(sp)
        addi    sp, sp, 12
        ret

# spawn_batch() -> 0, or a failure message: spawn BATCH user-nop children,
# then reap BATCH children with wait(-1), each one of those spawned.
spawn_batch:
        addi    sp, sp, -16 - BATCH * 4
        sw      ra, 12 + BATCH * 4(sp)
        sw      s0, 8 + BATCH * 4(sp)
        sw      s1, 4 + BATCH * 4(sp)   # 4(sp) .. : the pids not reaped yet; 0(sp): a status
        li      s0, 0                   # s0: index
1:      la      a0, nop_name
        call    spawn
        la      t0, spawn_failed
        blez    a0, 9f
        slli    t1, s0, 2
        add     t1, sp, t1
        sw      a0, 4(t1)
        addi    s0, s0, 1
        slti    t1, s0, BATCH
        bnez    t1, 1b
        li      s0, BATCH               # s0: children left to reap
2:      li      a0, -1
        mov     a1, sp
        call    wait
        mov     s1, a0
        addi    a0, sp, 4
        mov     a1, s1
        call    take_pid
        la      t0, wrong_pid
        bnez    a0, 9f
        lw      a0, 0(sp)
        mov     a1, s1
        call    check_status
        mov     t0, a0
        bnez    t0, 9f
        addi    s0, s0, -1
        bnez    s0, 2b
9:      mov     a0, t0
        lw      s1, 4 + BATCH * 4(sp)
        lw      s0, 8 + BATCH * 4(sp)
        lw      ra, 12 + BATCH * 4(sp)
        addi    sp, sp, 16 + BATCH * 4
        ret

# take_pid(pids, pid) -> 0 if pid is one of the BATCH words at pids (that
# word is then cleared, so a pid is taken once), else 1.  pid must be > 0.
take_pid:
        li      t0, BATCH
1:      lw      t1, 0(a0)
        beq     t1, a1, 2f
        addi    a0, a0, 4
        addi    t0, t0, -1
        bnez    t0, 1b
        li      a0, 1
        ret
2:      sw      zero, 0(a0)
        li      a0, 0
        ret

# check_status(status, pid) -> 0 if status == pid & 0x7F, else a failure message.
check_status:
        andi    a1, a1, 0x7F
        la      t0, wrong_status
        bne     a0, a1, 1f
        li      t0, 0
1:      mov     a0, t0
        ret

        .rodata
nop_name:       .asciz  "user-nop"
summary_head:   .asciz  "spawnstorm: "
summary_tail:   .asciz  " children spawned and reaped, every exit status ok\n"
spawn_failed:   .asciz  "spawnstorm: spawn failed\n"
wrong_pid:      .asciz  "spawnstorm: wait returned a pid that was not a waiting child\n"
wrong_status:   .asciz  "spawnstorm: a child's exit status is not its pid & 0x7F\n"
children_left:  .asciz  "spawnstorm: wait(-1) after reaping every child did not report -ECHILD\n"

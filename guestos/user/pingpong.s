# pingpong.s (user-pingpong): dominated by context switches.  Spawns user-pong
# and yields ROUNDS times while the partner does the same, so with the two
# alone runnable control goes back and forth ROUNDS times.  Only this parent
# prints, after waiting for the partner: the round trips it made (yields that
# returned 0) and the partner's count (its exit status).  Exits 0, or names
# the failure and exits 1.

        .equ ROUNDS, 100                # the same as pong.s

        .text
        .globl  main
main:
        addi    sp, sp, -20
        sw      ra, 16(sp)
        sw      s0, 12(sp)
        sw      s1, 8(sp)
        sw      s2, 4(sp)               # 0(sp): the partner's status
        la      a0, pong_name
        call    spawn
        mov     s0, a0                  # s0: the partner's pid
        la      a0, spawn_failed
        blez    s0, 3f
        li      s1, 0                   # s1: yields that returned 0
        li      s2, ROUNDS              # s2: yields left
1:      call    yield
        sltiu   t0, a0, 1
        add     s1, s1, t0
        addi    s2, s2, -1
        bnez    s2, 1b
        mov     a0, s0
        mov     a1, sp
        call    wait
        mov     t0, a0
        la      a0, wait_failed
        bne     t0, s0, 3f
        la      a0, summary_head
        call    print_str
        mov     a0, s1
        call    print_dec
        la      a0, summary_middle
        call    print_str
        lw      a0, 0(sp)
        call    print_dec
        la      a0, summary_tail
        call    print_str
        li      a0, 0
        j       4f
3:      call    print_str               # a0: the failure message
        li      a0, 1
4:      lw      s2, 4(sp)
        lw      s1, 8(sp)
        lw      s0, 12(sp)
        lw      ra, 16(sp)
        addi    sp, sp, 20
        ret

        .rodata
pong_name:      .asciz  "user-pong"
summary_head:   .asciz  "pingpong: "
summary_middle: .asciz  " round trips; the partner yielded "
summary_tail:   .asciz  " times\n"
spawn_failed:   .asciz  "pingpong: spawn user-pong failed\n"
wait_failed:    .asciz  "pingpong: wait for user-pong failed\n"

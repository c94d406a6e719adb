# spawner: init spawns `child` three times and waits for each; wait on no child fails.
# modules: child
# expect-exit: 0
# expect: child 2 running
# expect: reaped 2 status 12
# expect: child 3 running
# expect: reaped 3 status 13
# expect: child 4 running
# expect: reaped 4 status 14
# expect: spawn nosuch: -2
# expect: wait with no child: -10
        .include "ulib.inc"
        .text
        .globl _start
_start:
        li      s0, 3
1:      la      a1, name
        sys     SYS_SPAWN
        mov     s1, a0
        mov     a1, s1
        sys     SYS_WAIT
        mov     s2, a1
        la      a0, msg_reaped
        call    puts
        mov     a0, s1
        call    putdec
        la      a0, msg_status
        call    puts
        mov     a0, s2
        call    putdec
        la      a0, msg_nl
        call    puts
        addi    s0, s0, -1
        bnez    s0, 1b
        la      a0, msg_nosuch
        call    puts
        la      a1, nosuch
        sys     SYS_SPAWN
        call    putdec
        la      a0, msg_nl
        call    puts
        la      a0, msg_nochild
        call    puts
        li      a1, -1
        sys     SYS_WAIT
        call    putdec
        la      a0, msg_nl
        call    puts
        mov     a1, zero
        sys     SYS_EXIT

        .rodata
name:           .asciz "child"
nosuch:         .asciz "nosuch"
msg_reaped:     .asciz "reaped "
msg_status:     .asciz " status "
msg_nosuch:     .asciz "spawn nosuch: "
msg_nochild:    .asciz "wait with no child: "
msg_nl:         .asciz "\n"

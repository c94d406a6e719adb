# preempt: init spawns `spinner`, which never yields; only the timer brings init back.
# modules: spinner
# expect-exit: 0
# expect: spinner: spinning
# expect: init: back after preemption
        .include "ulib.inc"
        .text
        .globl _start
_start:
        la      a1, name
        sys     SYS_SPAWN
        sys     SYS_YIELD               # the spinner runs until the timer preempts it
        la      a0, msg_back
        call    puts
        mov     a1, zero
        sys     SYS_EXIT

        .rodata
name:           .asciz "spinner"
msg_back:       .asciz "init: back after preemption\n"

# child: print its pid, exit with status pid + 10 (spawned by other programs).
        .include "ulib.inc"
        .text
        .globl _start
_start:
        la      a0, msg_child
        call    puts
        sys     SYS_GETPID
        mov     s0, a0
        call    putdec
        la      a0, msg_running
        call    puts
        addi    a1, s0, 10
        sys     SYS_EXIT

        .rodata
msg_child:      .asciz "child "
msg_running:    .asciz " running\n"

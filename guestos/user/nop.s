# nop.s (user-nop): a short-lived child for spawnstorm and usertests.  Exits
# with status getpid() & 0x7F, which its parent can predict from the pid spawn
# returned (and which is never STATUS_KILLED).

        .text
        .globl  main
main:
        push    ra
        call    getpid
        andi    a0, a0, 0x7F
        pop     ra
        ret

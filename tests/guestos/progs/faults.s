# faults: bad pointers give -EFAULT; bad accesses and instructions kill the child.
# modules: nullwrite, privileged, badsys
# expect-exit: 0
# expect: write from null: -14
# expect: write from kernel space: -14
# expect: read into read-only text: -14
# expect: kernel: pid 2 (nullwrite) killed: page fault at 0x00000010
# expect: nullwrite status 255
# expect: kernel: pid 3 (privileged) killed: privileged instruction at 0x00400000
# expect: privileged status 255
# expect: kernel: pid 4 (badsys) killed: bad syscall 0x00000063
# expect: badsys status 255
        .include "ulib.inc"
        .text
        .globl _start
_start:
        la      a0, msg_null
        call    puts
        li      a1, 0
        li      a2, 4
        sys     SYS_WRITE
        call    report
        la      a0, msg_kernel
        call    puts
        li      a1, 0xC0100000
        li      a2, 4
        sys     SYS_WRITE
        call    report
        la      a0, msg_text
        call    puts
        la      a1, _start
        li      a2, 4
        sys     SYS_READ
        call    report
        la      a0, name1
        call    run
        la      a0, name2
        call    run
        la      a0, name3
        call    run
        mov     a1, zero
        sys     SYS_EXIT

report:
        push    ra
        call    putdec
        la      a0, msg_nl
        call    puts
        pop     ra
        ret

# run(a0 = module name): spawn it, wait, print "NAME status S".
run:
        push    ra
        push    s0
        mov     s0, a0
        mov     a1, a0
        sys     SYS_SPAWN
        mov     a1, a0
        sys     SYS_WAIT
        push    a1
        mov     a0, s0
        call    puts
        la      a0, msg_status
        call    puts
        pop     a0
        call    report
        pop     s0
        pop     ra
        ret

        .rodata
name1:          .asciz "nullwrite"
name2:          .asciz "privileged"
name3:          .asciz "badsys"
msg_null:       .asciz "write from null: "
msg_kernel:     .asciz "write from kernel space: "
msg_text:       .asciz "read into read-only text: "
msg_status:     .asciz " status "
msg_nl:         .asciz "\n"

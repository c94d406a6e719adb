# nullcall.s (user-nullcall): the cost of a system call, as lmbench's lat_syscall
# null.  CALLS getpid system calls in a loop, the region of interest; then prints
# "nullcall: CALLS getpid calls, pid P".  Exits 0, or 1 if a call returned another pid.

        .equ CALLS, 10000

        .text
        .globl  main
main:
        push    ra
        push    s0
        push    s1
        push    s2
        call    getpid
        mov     s2, a0                  # s2: the pid every call must return
        call    roi_begin
        li      s0, CALLS
        li      s1, 0                   # s1: calls that returned another pid
1:      call    getpid
        beq     a0, s2, 2f
        addi    s1, s1, 1
2:      addi    s0, s0, -1
        bnez    s0, 1b
        call    roi_end
        la      a0, text
        call    print_str
        li      a0, CALLS
        call    print_dec
        la      a0, pid_text
        call    print_str
        mov     a0, s2
        call    print_dec
        la      a0, newline
        call    print_str
        sltu    a0, zero, s1            # 1 if any call failed
        pop     s2
        pop     s1
        pop     s0
        pop     ra
        ret

        .rodata
text:           .asciz  "nullcall: "
pid_text:       .asciz  " getpid calls, pid "
newline:        .asciz  "\n"

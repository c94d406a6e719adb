# hello.s (user-hello): the smallest user program.  Prints one line with one
# write and exits 0.

        .text
        .globl  main
main:
        push    ra
        la      a0, greeting
        call    print_str
        li      a0, 0
        pop     ra
        ret

        .rodata
greeting:
        .asciz  "hello from user space\n"

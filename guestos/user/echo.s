# echo.s (user-echo): copies the console input to the console output until
# end of input (read returns 0), then exits 0; exits 1 if read or write fails.

        .equ BUFSIZE, 64

        .text
        .globl  main
main:
        push    ra
        push    s0
1:      la      a0, buffer
        li      a1, BUFSIZE
        call    read
        mov     s0, a0                  # s0: bytes read
        li      a0, 0
        beqz    s0, 3f                  # end of input
        bltz    s0, 2f
        la      a0, buffer
        mov     a1, s0
        call    write
        beq     a0, s0, 1b
2:      li      a0, 1
3:      pop     s0
        pop     ra
        ret

        .bss
buffer: .space  BUFSIZE

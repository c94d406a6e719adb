# Golden test: directives.  The expected object (section bytes, symbols, relocations)
# is in isa_directives.expect, worked out by hand:
#   .text: la a0, greeting -> lui a0, 0 (0x65000000) + ori a0, a0, 0 (0x49100000) with
#          R_KITE_HI20 / R_KITE_LO12 against .data (greeting is local), addend 0;
#          call puts -> jal ra, 0 (0xa0400000) + R_KITE_JUMP22 puts;
#          j far -> jal zero, 0 (0xa0000000) + R_KITE_JUMP22 .init (another section).
#   .data: "hi\n\0" 01 ff 41, .align 2 pads 1 byte to 8 = words; .word: 0x11223344, then
#          greeting + 2 (R_KITE_32 .data+2), main (global: R_KITE_32 main+0), puts;
#          .half 0x1234, -2 at 24; .balign 8 pads 28 -> 32; .space 3, 0xAA; size 35.
    .globl main
    .weak maybe
    .text
main:
    la a0, greeting
    call puts
    j far
    .type main, @function
    .size main, . - main
    .data
greeting:
    .asciz "hi\n"
    .byte 1, -1, 'A'
    .align 2
words:
    .word 0x11223344, greeting + 2, main, puts
    .half 0x1234, -2
    .balign 8
    .space 3, 0xAA
    .type words, @object
    .size words, 16
    .rodata
    .ascii "ab", "c"
    .bss
buf: .space 64
    .section .init, "ax"
far: ret
    .section .mysec, "aw"
    .equ ANSWER, 42
    .globl ANSWER
    .set COUNT, 1
    .set COUNT, COUNT + 1
    .word 7, COUNT

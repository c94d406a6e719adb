# memory: sbrk and demand-zero pages (heap and deep stack), then shrinking the heap.
# expect-exit: 0
# expect: heap reads zero: 0
# expect: heap keeps a value: 12345
# expect: stack 512 KiB down reads zero: 0
# expect: sbrk too far: -12
# expect: sbrk below the heap: -12
# expect: sbrk shrink then grow reads zero: 0
        .include "ulib.inc"
        .text
        .globl _start
_start:
        li      a1, 8192
        sys     SYS_SBRK
        mov     s0, a0                  # the old break: the heap start
        la      a0, msg_zero
        call    puts
        lw      a0, 4096(s0)            # second page: demand-zero
        call    putdec
        call    newline
        li      t0, 12345
        sw      t0, 0(s0)
        la      a0, msg_keep
        call    puts
        lw      a0, 0(s0)
        call    putdec
        call    newline
        la      a0, msg_stack
        call    puts
        li      t0, 0x80000
        sub     t0, sp, t0
        lw      a0, 0(t0)
        call    putdec
        call    newline
        la      a0, msg_far
        call    puts
        li      a1, 0x7FF00000
        sys     SYS_SBRK
        call    putdec
        call    newline
        la      a0, msg_below
        call    puts
        li      a1, -16384
        sys     SYS_SBRK
        call    putdec
        call    newline
        li      a1, -8192               # give both pages back, then take them again
        sys     SYS_SBRK
        li      a1, 8192
        sys     SYS_SBRK
        la      a0, msg_again
        call    puts
        lw      a0, 0(s0)
        call    putdec
        call    newline
        mov     a1, zero
        sys     SYS_EXIT

newline:
        la      a0, msg_nl
        j       puts

        .rodata
msg_zero:       .asciz "heap reads zero: "
msg_keep:       .asciz "heap keeps a value: "
msg_stack:      .asciz "stack 512 KiB down reads zero: "
msg_far:        .asciz "sbrk too far: "
msg_below:      .asciz "sbrk below the heap: "
msg_again:      .asciz "sbrk shrink then grow reads zero: "
msg_nl:         .asciz "\n"

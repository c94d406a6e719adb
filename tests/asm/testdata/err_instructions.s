# Error golden test: each line marked ERROR must produce an error containing that text,
# and no other line may produce one.  All of them are reported by one run.
    frob a0                      # ERROR: unknown mnemonic 'frob'
    .frob 1                      # ERROR: unknown directive '.frob'
    add a0, a1                   # ERROR: 'add' takes 3 operands (rd, rs1, rs2), got 2
    add a0, a1, 5                # ERROR: operand 3 of 'add' must be a register, got '5'
    addi a0, 5, a1               # ERROR: operand 2 of 'addi' must be a register, got '5'
    addi a0, a0, a1              # ERROR: operand 3 of 'addi' must be an expression, got 'a1'
    lw a0, a1                    # ERROR: operand 2 of 'lw' must be a memory operand like 8(sp), got 'a1'
    mfcr a0, flags               # ERROR: operand 2 of 'mfcr' must be a control register
    ret a0                       # ERROR: 'ret' takes 0 operands (no operands), got 1
    addi a0, a0, 200000          # ERROR: immediate 200000 out of range [-131072, 131071]
    addi a0, a0, 0x100000000     # ERROR: number 0x100000000 does not fit in 32 bits (at most 0xFFFFFFFF)
    addi a0, a0, 4294967296      # ERROR: number 4294967296 does not fit in 32 bits
    li a0, 0x1FFFFFFFF           # ERROR: number 0x1FFFFFFFF does not fit in 32 bits
    addi a0, a0, 0x80000000      # ERROR: immediate -2147483648 out of range [-131072, 131071]
    lui a0, 0x100000             # ERROR: immediate 1048576 out of range [0, 1048575]
    lui a0, -1                   # ERROR: immediate -1 out of range [0, 1048575]
    beq a0, a1, . + 2            # ERROR: branch target offset 2 is not a multiple of 4
    beq a0, a1, . + 0x80000      # ERROR: branch target out of range: offset 524288 bytes, must be within [-524288, 524284]
    j 0x1000                     # ERROR: branch target 4096 is a number, not an address
    addi a0, a0, somewhere       # ERROR: immediate must be a constant, not the address 'somewhere'
    .word 1, 2 +                 # ERROR: syntax error
    li a0, (1                    # ERROR: syntax error
    add a0 a1                    # ERROR: syntax error: unexpected 'a1'
ok: nop
ok: nop                          # ERROR: duplicate symbol 'ok' (first defined at
    .equ ok, 3                   # ERROR: duplicate symbol 'ok'
    .equ X, missing + 1          # ERROR: undefined symbol 'missing'
    .if NOPE                     # ERROR: undefined symbol 'NOPE'
    .endif
    .space NOPE2                 # ERROR: undefined symbol 'NOPE2'
    .else                        # ERROR: .else without .if
    .endif                       # ERROR: .endif without .if
    .endm                        # ERROR: .endm without .macro
    .include "no_such_file.s"    # ERROR: cannot find file 'no_such_file.s'
2:  nop
    beq a0, a0, 3b               # ERROR: no local label '3:' before '3b'
    bne a0, a0, 4f               # ERROR: no local label '4:' after '4f'
    .ascii "bad \q"              # ERROR: unknown escape sequence '\q'
    .align 40                    # ERROR: .align 40 out of range [0, 16]
    nop
    .data
    .byte 256                    # ERROR: .byte value 256 out of range [-128, 255]
    .half 0x18000                # ERROR: .half value 98304 out of range [-32768, 65535]
    .word 0x100000000            # ERROR: number 0x100000000 does not fit in 32 bits

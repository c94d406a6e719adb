# Error golden test: macro definitions and uses.  An error inside an expansion is
# reported at the line that uses the macro.
    .macro pair a, b=2
    addi \a, \a, \b
    .endm
    .macro bad x
    addi \x, \y, 0               # ERROR: unknown macro argument '\y' in macro 'bad'
    .endm
    pair t0
    pair t0, 1, 2                # ERROR: macro 'pair' takes 2 arguments, got 3
    pair t0, c=1                 # ERROR: macro 'pair' has no argument 'c'
    pair b=1                     # ERROR: macro 'pair': missing value for argument 'a'
    pair t0, 200000              # ERROR: immediate 200000 out of range [-131072, 131071] (in expansion of macro 'pair')
    pair 7                       # ERROR: must be a register, got '7' (in expansion of macro 'pair')
    pair t0, 0x100000000         # ERROR: number 0x100000000 does not fit in 32 bits (at most 0xFFFFFFFF)
    .macro forever
    forever
    .endm
    forever                      # ERROR: macro expansion nested too deeply (is 'forever' recursive?) (in expansion of macro 'forever' (64 levels))
    .macro quoted
    .ascii "\q is not a parameter here, and no escape"
    .endm
    quoted                       # ERROR: unknown escape sequence '\q' (in expansion of macro 'quoted')
    .macro unfinished            # ERROR: missing .endm for macro 'unfinished'
    nop

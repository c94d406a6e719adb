# Error golden test: conditionals that are never closed are reported at their .if line.
    .if 1                        # ERROR: unterminated .if (missing .endif)
    nop
    .ifdef FOO                   # ERROR: unterminated .ifdef (missing .endif)
    .else
    .else                        # ERROR: .else after .else
    nop

# User mode, a privileged instruction and the sensitive pair (docs/isa.md "rdsr and wrsr",
# "Privileged instructions").  Enter user mode with rfe; in user mode rdsr shows KM = 0 and
# wrsr changes only the user-flag byte; ei traps with the privileged-instruction exception.
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        la      t0, user
        mtcr    epc, t0
        li      t0, 1                   # KM = 1, PKM = 0: rfe drops to user mode
        mtcr    status, t0
        rfe
user:   rdsr    a0                      # every status bit is 0 in user mode here
        li      t1, 0xFFFF
        wrsr    t1                      # silently keeps KM, IE, PKM, PIE
        rdsr    a1
privileged:
        ei
        halt
handler:
        mfcr    s0, cause
        mfcr    s1, epc
        rdsr    s2                      # KM = 1, PKM = 0 (came from user), user flags kept
        halt
# EXPECT a0 = 0
# EXPECT a1 = 0xFF00
# EXPECT s0 = 2
# EXPECT s1 = privileged
# EXPECT s2 = 0xFF01

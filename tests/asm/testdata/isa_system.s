# Golden test: docs/isa.md "System": N format, only the opcode is set.
#   syscall: 0x2A<<26 = 0xa8000000; break: 0x2B<<26 = 0xac000000; hypercall: 0x2C<<26 = 0xb0000000
    syscall                           # 0xa8000000
    break                             # 0xac000000
    hypercall                         # 0xb0000000

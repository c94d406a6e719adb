# Golden test: docs/isa.md "Privileged instructions".  mfcr rd, cr: rd in A, cr number in imm18;
# mtcr cr, rs1: rs1 in B, cr in imm18; tlbinv rs1: rs1 in B; the rest N format.
#   mfcr t0, tvec: 0x30<<26 = 0xc0000000, t0=8 -> 0x02000000, tvec=1; 0xc2000001
#   mtcr ptb, a1: 0x31<<26 = 0xc4000000, a1=5 -> 0x00140000, ptb=6; 0xc4140006
    mfcr a0, status                   # 0xc1000000
    mfcr t0, tvec                     # 0xc2000001
    mfcr t1, cause                    # 0xc2400002
    mfcr t2, badaddr                  # 0xc2800003
    mfcr s0, epc                      # 0xc3000004
    mtcr scratch, sp                  # 0xc4080005
    mtcr ptb, a1                      # 0xc4140006
    mtcr timer, a2                    # 0xc4180007
    rfe                               # 0xc8000000
    halt                              # 0xcc000000
    wfi                               # 0xd0000000
    ei                                # 0xd4000000
    di                                # 0xd8000000
    tlbflush                          # 0xdc000000
    tlbinv a0                         # 0xe0100000

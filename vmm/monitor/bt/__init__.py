"""Binary translation of the guest kernel (`kite run --paging shadow --cpu bt`),
VMware's answer to the sensitive-instruction problem (docs/vmm.md "Binary
translation").

    layout.py      the VMM window: where the translation cache and the virtual
                   CPU page sit in the guest's address space
    translator.py  one guest basic block -> Kite32 code for the translation
                   cache, with the map from every word back to the guest
    cache.py       the translation cache: placement, lookup, chaining,
                   invalidation when the guest writes its translated code
    runner.py      the VMM side: entering translated code, mapping its exits
                   back to guest state, the callouts, exact virtual time
"""

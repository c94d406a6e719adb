"""Random differential testing: random Kite32 programs run on the bare machine,
the machine simulator and the VMM (shadow paging), all architectural state compared.

    layout.py      the memory map every program shares, the page-table model, the trap handler
    encodings.py   mnemonic classes, interesting values, hand-encoded and illegal words
    generator.py   generate(seed) -> Program: a random kernel body and user snippets, as assembly
    harness.py     build (in-process assembler and linker), run on the four engines, compare
    reduce.py      shrink a diverging program to the operations it needs (delta debugging)
    repro/         hand-reduced reproducers, one per divergence found, each naming the rule broken
    test_differential.py   a few hundred fixed seeds and the reproducers, in `make test`

bench/fuzz.py (`make fuzz`) runs thousands of seeds, saves every diverging
program as a .s file, and replays (--replay) or shrinks (--reduce) saved ones.
"""

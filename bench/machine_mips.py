"""Machine speed: guest instructions per host second on the real Machine/CPU.

Two programs built with isa.encode (tests/machine/cpuprog.py), each run
twice, the faster run reported (the first also warms the block cache):

    alu-loop            eight register ALU instructions and a branch per iteration
    paged-memory-loop   paging on; load, add, store over 8 data pages mapped at
                        a virtual address different from their physical one

Prints one line per program, e.g. `alu-loop: 6.1 MIPS`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asm.isa import PTB_ENABLE, PTE_P, PTE_W   # noqa: E402
from tests.machine.cpuprog import CODE_BASE, li, machine_with   # noqa: E402

ALU_ITERATIONS = 200_000
PAGE_DIR, PAGE_TABLE = 0x20000, 0x21000
DATA_PHYS, DATA_VIRT, DATA_PAGES = 0x40000, 0x00400000, 8
MEMORY_PASSES = 60

ALU_LOOP = li("t0", ALU_ITERATIONS) + [
    "loop:",
    ("add", "t1", "t1", "t0"),
    ("xor", "t2", "t2", "t1"),
    ("slli", "t3", "t1", 3),
    ("sub", "s0", "t3", "t2"),
    ("and", "s1", "s0", "t1"),
    ("or", "s2", "s1", "t2"),
    ("sltu", "s3", "s2", "t0"),
    ("addi", "t0", "t0", -1),
    ("bne", "t0", "zero", "loop"),
    ("halt",),
]

PAGED_MEMORY_LOOP = li("t0", PAGE_DIR | PTB_ENABLE) + [("mtcr", "ptb", "t0")] + li(
    "a1", MEMORY_PASSES) + [
    "pass:",
] + li("t1", DATA_VIRT) + li("t2", DATA_PAGES * 1024) + [
    "inner:",
    ("lw", "t3", 0, "t1"),
    ("add", "t3", "t3", "t2"),
    ("sw", "t3", 0, "t1"),
    ("addi", "t1", "t1", 4),
    ("addi", "t2", "t2", -1),
    ("bne", "t2", "zero", "inner"),
    ("addi", "a1", "a1", -1),
    ("bne", "a1", "zero", "pass"),
    ("halt",),
]


def map_pages(memory) -> None:
    """Page tables at PAGE_DIR: the code page identity-mapped, the data pages at DATA_VIRT."""
    entries = {CODE_BASE: CODE_BASE}
    entries.update({DATA_VIRT + 4096 * page: DATA_PHYS + 4096 * page for page in range(DATA_PAGES)})
    for va, pa in entries.items():
        table = PAGE_TABLE + 4096 * (va >> 22)
        memory.write(PAGE_DIR + 4 * (va >> 22), 4, table | PTE_P | PTE_W)
        memory.write(table + 4 * ((va >> 12) & 0x3FF), 4, pa | PTE_P | PTE_W)


def mips(items: list, setup=lambda memory: None) -> float:
    """Best of two runs of `items` to halt: millions of instructions per second."""
    best = 0.0
    for _ in range(2):
        machine = machine_with(items, mem_size=1 << 20)
        setup(machine.memory)
        start = time.perf_counter()
        result = machine.run()
        elapsed = time.perf_counter() - start
        assert result.reason == "halt", result.message
        best = max(best, machine.cpu.counters.instructions / elapsed / 1e6)
    return best


def main() -> None:
    print(f"alu-loop: {mips(ALU_LOOP):.1f} MIPS")
    print(f"paged-memory-loop: {mips(PAGED_MEMORY_LOOP, map_pages):.1f} MIPS")


if __name__ == "__main__":
    main()

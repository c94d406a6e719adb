"""Assembler throughput: a generated 50,000-line source of typical
instructions, labels and directives, assembled end to end (source text in,
ELF object bytes out), and the start-up time of `kite-as --version`.

Prints `assembler: N lines/s` and `startup: X.XX s`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

LINES = 50_000
ROOT = Path(__file__).resolve().parent.parent

# one block of typical code: 20 lines, two labels, a loop, a call, data
BLOCK = """\
func{n}:
    addi sp, sp, -16
    sw ra, 12(sp)
    sw s0, 8(sp)
    li s0, {n}
    la a0, table{n}
1:  lw t0, 0(a0)
    add t1, t1, t0
    addi a0, a0, 4
    addi s0, s0, -1
    bnez s0, 1b
    slli t2, t1, 2        # scale
    beq t2, zero, .+8
    call helper
    lw s0, 8(sp)
    lw ra, 12(sp)
    addi sp, sp, 16
    ret
table{n}:
    .word {n}, {n} + 1, 0x1000
"""


def generate(lines: int) -> str:
    """A source of about `lines` lines made of numbered copies of BLOCK."""
    per_block = BLOCK.count("\n")
    return "    .text\n" + "".join(BLOCK.format(n=n) for n in range(lines // per_block))


def throughput(text: str) -> float:
    """Lines per second for assembling `text` and writing the ELF object (best of 3)."""
    from asm.assembler import assemble
    from asm.elf import write_object
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        write_object(assemble(text, "bench.s"))
        best = min(best, time.perf_counter() - start)
    return text.count("\n") / best


def startup() -> float:
    """Seconds for `kite-as --version` (best of 5)."""
    script = Path(sys.executable).with_name("kite-as")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "asm"]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(command + ["--version"], check=True, capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    sys.path.insert(0, str(ROOT))
    print(f"assembler: {throughput(generate(LINES)):.0f} lines/s")
    print(f"startup: {startup():.2f} s")


if __name__ == "__main__":
    main()

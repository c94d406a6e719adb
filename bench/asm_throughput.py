"""Assembler throughput: a generated 50,000-line source of typical
instructions, labels and directives, assembled end to end (source text in,
ELF object bytes out, in this process), and the start-up time of
`kite-as --version`.

The same text is also valid RISC-V assembly (the block below uses only
mnemonics, pseudo-instructions, registers, local labels and directives both
ISAs share), so when GNU riscv64 binutils are installed it is assembled with
`riscv64-linux-gnu-as -march=rv32i` too (a subprocess, best of 3, start-up
included) and the ratio printed; without them that line says it is skipped.

Prints `assembler: N lines/s`, `gnu as: N lines/s, kite-as takes Rx as
long (goal <= 20x)` and `startup: X.XXX s (goal < 0.05 s)`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINES = 50_000
ROOT = Path(__file__).resolve().parent.parent
GNU_AS = "riscv64-linux-gnu-as"
ROUNDS = 3

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
    """Lines per second for assembling `text` and writing the ELF object (best of ROUNDS)."""
    from asm import parser
    from asm.assembler import assemble
    from asm.elf import write_object
    best = float("inf")
    for _ in range(ROUNDS):
        getattr(parser, "PARSED", {}).clear()      # each round parses afresh, as one kite-as run does
        start = time.perf_counter()
        write_object(assemble(text, "bench.s"))
        best = min(best, time.perf_counter() - start)
    return text.count("\n") / best


def gnu_throughput(text: str) -> float | None:
    """Lines per second of GNU as (RV32I) on `text` (best of ROUNDS); None if it is not installed."""
    gnu = shutil.which(GNU_AS)
    if gnu is None:
        return None
    best = float("inf")
    with tempfile.TemporaryDirectory() as scratch:
        source, output = Path(scratch) / "bench.s", Path(scratch) / "bench.o"
        source.write_text(text)
        for _ in range(ROUNDS):
            start = time.perf_counter()
            subprocess.run([gnu, "-march=rv32i", "-mabi=ilp32", "-o", str(output), str(source)], check=True)
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
    text = generate(LINES)
    kite = throughput(text)
    print(f"assembler: {kite:.0f} lines/s")
    gnu = gnu_throughput(text)
    if gnu is None:
        print(f"gnu as: skipped ({GNU_AS} is not installed)")
    else:
        print(f"gnu as: {gnu:.0f} lines/s, kite-as takes {gnu / kite:.1f}x as long (goal <= 20x)")
    print(f"startup: {startup():.3f} s (goal < 0.05 s)")


if __name__ == "__main__":
    main()

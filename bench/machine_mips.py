"""Machine speed: guest instructions per host second on the real Machine/CPU,
against a minimal reference interpreter measured in the same process.

Two programs built with isa.encode (tests/machine/cpuprog.py):

    alu-loop            eight register ALU instructions and a branch per iteration
    paged-memory-loop   paging on; load, add, store over 8 data pages mapped at
                        a virtual address different from their physical one

Each round runs every program on a fresh Kite machine and on a fresh
`Reference` (below), interleaved, so both see the same load on a shared host;
the best of ROUNDS rounds is kept.  The reference must end with the same
registers and instruction count as Kite (checked every round).  Prints, per
program, Kite's MIPS, the reference's, and Kite / reference (goal: >= 1.0).

The reference is the toy the issue measures Kite against: basic blocks
compiled to Python with exec() and chained (each block returns its
successor's function and length; the loop only adds to the tick count).  It
has no TLB, no exact ticks, no interrupts, no devices and no traps; it knows
only the instructions of these two programs.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asm.isa import NUM_REGS, PTB_ENABLE, PTE_P, PTE_W, decode   # noqa: E402
from tests.machine.cpuprog import CODE_BASE, li, machine_with   # noqa: E402

ROUNDS = 5
MEM_SIZE = 1 << 20
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


# --- the reference: chained exec() blocks --------------------------------------------------

ALU = {"add": "({a} + {b}) & 0xFFFFFFFF", "sub": "({a} - {b}) & 0xFFFFFFFF", "and": "{a} & {b}",
       "or": "{a} | {b}", "xor": "{a} ^ {b}", "sltu": "1 if {a} < {b} else 0"}
IMM = {"addi": "({a} + {i}) & 0xFFFFFFFF", "ori": "{a} | {i}", "slli": "({a} << {i}) & 0xFFFFFFFF"}
BRANCH = {"bne": "!=", "beq": "=="}


class Pages(dict):
    """Virtual page number -> physical minus virtual page base, walked on a miss."""

    def __init__(self, ram: bytearray):
        super().__init__()
        self.ram, self.root = ram, None

    def __missing__(self, vpn: int) -> int:
        if self.root is None:
            return 0
        word = struct.Struct("<I").unpack_from
        table = word(self.ram, self.root + 4 * (vpn >> 10))[0] & ~0xFFF
        frame = word(self.ram, table + 4 * (vpn & 0x3FF))[0] & ~0xFFF
        self[vpn] = frame - (vpn << 12)
        return self[vpn]


class Reference:
    """The toy: registers in a list, blocks compiled per virtual pc and chained."""

    def __init__(self, ram: bytearray):
        self.ram, self.regs = ram, [0] * NUM_REGS
        self.pages = Pages(ram)
        self.blocks: dict[int, tuple] = {}
        self.namespace = {"R": self.regs, "ram": ram, "M": self.pages, "PTB": self._ptb,
                          "U32": struct.Struct("<I").unpack_from, "P32": struct.Struct("<I").pack_into}

    def _ptb(self, value: int) -> None:
        self.pages.clear()
        self.pages.root = value & ~0xFFF if value & PTB_ENABLE else None

    def run(self, pc: int) -> int:
        """Run from `pc` to halt; the instructions executed."""
        ticks, (fn, n) = 0, self.block(pc)
        while fn is not None:
            ticks += n
            fn, n = fn()
        return ticks

    def block(self, pc: int) -> tuple:
        """(function, length) of the block at `pc`, compiled on first use."""
        if pc not in self.blocks:
            self.blocks[pc] = self._compile(pc)
        return self.blocks[pc]

    def _compile(self, start: int) -> tuple:
        body, pc, count, exits, condition = [], start, 0, [], ""
        while not exits:
            paddr = pc + self.pages[pc >> 12]
            insn, ops = decode(int.from_bytes(self.ram[paddr:paddr + 4], "little"))
            name, pc, count = insn.mnemonic, pc + 4, count + 1
            a, b, rd = (f"R[{ops.get(role, 0)}]" for role in ("rs1", "rs2", "rd"))
            if name in ALU:
                body.append(f"{rd} = {ALU[name].format(a=a, b=b)}")
            elif name in IMM:
                body.append(f"{rd} = {IMM[name].format(a=a, i=ops['imm'])}")
            elif name == "lui":
                body.append(f"{rd} = {ops['imm'] << 12}")
            elif name == "lw":
                body += [f"x = ({a} + {ops['imm']}) & 0xFFFFFFFF", f"{rd} = U32(ram, x + M[x >> 12])[0]"]
            elif name == "sw":
                body += [f"x = ({a} + {ops['imm']}) & 0xFFFFFFFF", f"P32(ram, x + M[x >> 12], {b})"]
            elif name == "mtcr":
                body.append(f"PTB({a})")
                exits = [pc]
            elif name == "halt":
                exits = [None]
            else:
                exits, condition = [(pc - 4 + 4 * ops["target"]) & 0xFFFFFFFF, pc], f"{a} {BRANCH[name]} {b}"
        if exits == [None]:
            exits, body = [], body + ["return None, 0"]
        else:
            body.append(f"return S0 if {condition} else S1" if condition else "return S0")
        names = [f"S{index}" for index in range(len(exits))]
        source = (f"def make({', '.join(names)}):\n    def block(R=R, ram=ram, M=M, U32=U32, P32=P32):\n"
                  + "".join(f"        {line}\n" for line in body) + "    return block\n")
        namespace = dict(self.namespace)
        exec(source, namespace)
        fn = namespace["make"](*[None] * len(exits))
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            self._chain(cell, exits[int(name[1:])])
        return fn, count

    def _chain(self, cell, pc: int) -> None:
        """Point `cell` at a stub that compiles the block at `pc`, then chains the cell to it."""
        def resolve():
            cell.cell_contents = self.block(pc)
            return cell.cell_contents
        cell.cell_contents = (resolve, 0)


# --- measuring ------------------------------------------------------------------------------

def run_kite(items: list, setup) -> tuple[float, list[int], int]:
    """One Kite run to halt: (seconds, registers, instructions)."""
    machine = machine_with(items, mem_size=MEM_SIZE)
    setup(machine.memory)
    start = time.perf_counter()
    result = machine.run()
    elapsed = time.perf_counter() - start
    assert result.reason == "halt", result.message
    return elapsed, list(machine.cpu.regs), machine.cpu.counters.instructions


def run_reference(items: list, setup) -> tuple[float, list[int], int]:
    """One reference run to halt: (seconds, registers, instructions)."""
    machine = machine_with(items, mem_size=MEM_SIZE)    # only for its memory, set up alike
    setup(machine.memory)
    reference = Reference(machine.memory.ram)
    start = time.perf_counter()
    ticks = reference.run(CODE_BASE)
    return time.perf_counter() - start, list(reference.regs), ticks


PROGRAMS = {"alu-loop": (ALU_LOOP, lambda memory: None),
            "paged-memory-loop": (PAGED_MEMORY_LOOP, map_pages)}


def measure(rounds: int = ROUNDS) -> dict[str, tuple[float, float]]:
    """{program: (Kite MIPS, reference MIPS)}, best of `rounds` interleaved rounds."""
    best = {name: [0.0, 0.0] for name in PROGRAMS}
    for _ in range(rounds):
        for name, (items, setup) in PROGRAMS.items():
            kite_time, kite_regs, count = run_kite(items, setup)
            ref_time, ref_regs, ref_count = run_reference(items, setup)
            assert (kite_regs, count) == (ref_regs, ref_count), f"{name}: the reference disagrees"
            best[name][0] = max(best[name][0], count / kite_time / 1e6)
            best[name][1] = max(best[name][1], count / ref_time / 1e6)
    return {name: (kite, ref) for name, (kite, ref) in best.items()}


def main() -> None:
    for name, (kite, ref) in measure().items():
        print(f"{name}: kite {kite:.1f} MIPS, reference {ref:.1f} MIPS, ratio {kite / ref:.2f} (goal >= 1.0)")


if __name__ == "__main__":
    main()

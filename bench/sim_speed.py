"""Machine simulation speed: guest instructions per host second of the
simulator (vmm/monitor/simulate.py, `kite run --sim`).

Programs, each on a fresh Simulator, best of ROUNDS interleaved rounds:

    alu-loop, paged-memory-loop   bench/machine_mips.py's two loops (paging off, on)
    sort, fib                     the guest OS (kernel-native) running the user program,
                                  first GUEST_INSTRUCTIONS instructions: paging on, every
                                  fetch, load and store a counted walk, system calls, the timer

Prints one line per program, e.g. `sim sort: 2.1 MIPS (goal >= 2.0)`, with the
walks and walk references counted, which must not depend on the simulator's speed.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import machine_mips   # noqa: E402
from asm.isa import CR_STATUS, STATUS_KM   # noqa: E402
from tests.machine.cpuprog import CODE_BASE, program   # noqa: E402

ROUNDS = 5
LOOP_INSTRUCTIONS = 600_000
GUEST_INSTRUCTIONS = 1_000_000
BUILD = ROOT / "guestos" / "build"


def loop(items, setup):
    """A Simulator with `items` at CODE_BASE in the boot state, `setup(memory)` done."""
    from vmm.monitor.simulate import Simulator
    simulator = Simulator(1 << 20, console_out=io.BytesIO())
    simulator.memory.write_bytes(CODE_BASE, program(items))
    setup(simulator.memory)
    simulator.pc, simulator.cr[CR_STATUS] = CODE_BASE, STATUS_KM      # the boot state
    return simulator, LOOP_INSTRUCTIONS


def guest(module: str):
    """A Simulator booting the guest OS with the user program `module`."""
    from vmm.monitor.simulate import Simulator
    simulator = Simulator(16 << 20, console_out=io.BytesIO())
    simulator.load(str(BUILD / "kernel-native.elf"), [str(BUILD / module)])
    return simulator, GUEST_INSTRUCTIONS


PROGRAMS = {
    "alu-loop": lambda: loop(machine_mips.ALU_LOOP, lambda memory: None),
    "paged-memory-loop": lambda: loop(machine_mips.PAGED_MEMORY_LOOP, machine_mips.map_pages),
    "sort": lambda: guest("user-sort.elf"),
    "fib": lambda: guest("user-fib.elf"),
}


def measure(rounds: int = ROUNDS) -> dict[str, tuple[float, int, int]]:
    """{program: (best MIPS, walks, walk references)}."""
    best: dict[str, tuple[float, int, int]] = {}
    names = [name for name in PROGRAMS if name in ("alu-loop", "paged-memory-loop")
             or (BUILD / "kernel-native.elf").exists()]
    for _ in range(rounds):
        for name in names:
            simulator, count = PROGRAMS[name]()
            start = time.perf_counter()
            result = simulator.run(count)
            elapsed = time.perf_counter() - start
            figures = result.stats
            mips = figures.instructions / elapsed / 1e6
            if mips > best.get(name, (0.0,))[0]:
                best[name] = (mips, figures.page_walks, figures.walk_refs)
    return best


def main() -> None:
    for name, (mips, walks, refs) in measure().items():
        print(f"sim {name}: {mips:.2f} MIPS (goal >= 2.0; {walks} walks, {refs} walk refs)")
    if not (BUILD / "kernel-native.elf").exists():
        print("sim sort, fib: skipped (run `make build` first)")


if __name__ == "__main__":
    main()

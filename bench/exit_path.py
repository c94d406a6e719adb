"""Exit path: host microseconds per VM exit under shadow paging.

Two small guest kernels (built here with the in-process toolchain and the
test guests' kernel.inc), each run on the bare machine and under
`--paging shadow` in this process, interleaved, best of ROUNDS:

    mfcr           a loop of `mfcr t1, epc`: under the VMM every one is a
                   privileged-instruction exit, emulated
    hidden-fault   paging on over REGION_PAGES pages; each round touches every
                   page once and then `tlbflush`es, so each touch is a hidden
                   page fault (the VMM builds the shadow entry)

µs per exit = (shadow wall time - bare wall time) / exits of that kind: what
an exit adds over running the same guest natively.  Goal: mfcr <= 10 µs.
Then the guest OS workload spawnstorm, bare and shadow, with the production
shadow techniques (the default) and without them (`shadow-basic`, every
guest page-table write an exit: the configuration the goal was set for);
the ratio's goal: <= 2.5x.  Last, spawnstorm under `--cpu bt` (binary
translation, docs/vmm.md), whose host cost has no goal yet.

Prints, e.g., `exit mfcr: 12.3 us/exit (20000 exits)`.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asm.assembler import assemble   # noqa: E402
from asm.linker import LinkOptions, link   # noqa: E402

ROUNDS = 5
MFCR_EXITS = 20_000
REGION_PAGES, FAULT_ROUNDS = 1000, 4
GUEST_INCLUDE = ROOT / "tests" / "monitor" / "guests"
BUILD = ROOT / "guestos" / "build"

MFCR_GUEST = f"""
        .include "kernel.inc"
        .text
        .globl _start
_start:
        li      t0, {MFCR_EXITS}
1:      mfcr    t1, epc
        addi    t0, t0, -1
        bnez    t0, 1b
        li      a0, 0
        j       power_off
"""

FAULT_GUEST = f"""
        .include "kernel.inc"
        .equ REGION, 0x00800000
        .text
        .globl _start
_start:
        fill_table pt_low, PTE_P | PTE_W, 1024
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        fill_table pt_region, 0x00400000 | PTE_P | PTE_W, {REGION_PAGES}
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)
        la      t1, pt_region
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, (REGION >> 22) * 4(t0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        li      s0, {FAULT_ROUNDS}
2:      li      t0, REGION
        li      t2, {REGION_PAGES}
1:      lw      t1, 0(t0)
        li      t3, PAGE_SIZE
        add     t0, t0, t3
        addi    t2, t2, -1
        bnez    t2, 1b
        tlbflush
        addi    s0, s0, -1
        bnez    s0, 2b
        li      a0, 0
        j       power_off
        .bss
        .balign 4096
page_dir:  .space 4096
pt_low:    .space 4096
pt_mmio:   .space 4096
pt_region: .space 4096
"""


def build(name: str, source: str, out: Path) -> str:
    """Assemble and link `source` at 0x00100000; the image's path."""
    image = out / f"{name}.elf"
    obj = assemble(source, f"{name}.s", {}, [str(GUEST_INCLUDE)])
    image.write_bytes(link([obj], LinkOptions(text_address=0x00100000)))
    return str(image)


def run(image: str, modules: tuple[str, ...], paging: str | None, basic: bool = False,
        cpu: str = "trap") -> tuple[float, dict]:
    """Boot `image` bare (paging None) or under the VMM (`basic`: with none of
    the production shadow techniques; `cpu` as --cpu); (wall seconds, the VM's
    figures or {})."""
    from vmm.launch import Boot, Console, Options, run_bare, run_vmm
    from vmm.machine import translate
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.monitor.shadow import ShadowOptions
    from vmm.monitor.vm import VmConfig
    console = Console(ConsoleInput(b""), io.BytesIO())
    getattr(translate, "COMPILED", {}).clear()      # every run starts cold, as `kite run` does
    start = time.perf_counter()
    if paging is None:
        finished = run_bare(Boot(image, modules), console, Options())
        figures = {}
    else:
        options = ShadowOptions.parse("none" if basic else "all")
        finished = run_vmm([VmConfig(image, paging, 16 << 20, modules=modules, shadow=options, cpu=cpu)], console,
                           Options())
        figures = finished.stats.only_vm().as_dict()
    elapsed = time.perf_counter() - start
    assert finished.exit_code == 0, (image, paging, finished.result.message)
    return elapsed, figures


def best(image: str, modules: tuple[str, ...] = (), basic: bool = False,
         cpu: str = "trap") -> tuple[float, float, dict]:
    """(best bare seconds, best shadow seconds, the shadow run's VM figures), interleaved rounds."""
    bare = shadow = float("inf")
    figures: dict = {}
    for _ in range(ROUNDS):
        bare = min(bare, run(image, modules, None)[0])
        elapsed, figures = run(image, modules, "shadow", basic, cpu)
        shadow = min(shadow, elapsed)
    return bare, shadow, figures


def exits_of(figures: dict, kind: str) -> int:
    return figures["exits"].get(kind, 0)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for name, source, kind in (("mfcr", MFCR_GUEST, "privileged: mfcr"),
                                   ("hidden-fault", FAULT_GUEST, "hidden page fault")):
            bare, shadow, figures = best(build(name, source, out))
            exits = exits_of(figures, kind)
            goal = " (goal <= 10 us)" if name == "mfcr" else ""
            print(f"exit {name}: {(shadow - bare) / exits * 1e6:.1f} us/exit ({exits} exits, "
                  f"{figures['vm_exits']} in all; bare {bare:.2f} s, shadow {shadow:.2f} s){goal}")
    kernel = BUILD / "kernel-native.elf"
    modules = (str(BUILD / "user-spawnstorm.elf"), str(BUILD / "user-nop.elf"))
    if not kernel.exists():
        print("spawnstorm: skipped (run `make build` first)")
        return
    for label, basic in (("shadow", False), ("shadow-basic", True)):
        bare, shadow, figures = best(str(kernel), modules, basic)
        print(f"spawnstorm {label}: bare {bare:.2f} s, {label} {shadow:.2f} s, {label}/bare {shadow / bare:.2f}x "
              f"(goal <= 2.5x; {figures['vm_exits']} exits)")
    bare, bt, figures = best(str(kernel), modules, cpu="bt")
    print(f"spawnstorm bt: bare {bare:.2f} s, bt {bt:.2f} s, bt/bare {bt / bare:.2f}x ({figures['vm_exits']} exits, "
          f"{figures['counters']['bt_callouts']} callouts; no goal: --cpu bt's host cost)")

if __name__ == "__main__":
    main()

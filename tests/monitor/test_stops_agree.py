"""The machine, the VMM and the simulator stop the same way for the same
unhandleable trap (docs/isa.md "Trap entry and rfe"), with the same message
(asm.arch), and the trace reports the address a trap reports."""

from __future__ import annotations

import pytest

from tests.monitor.test_monitor import image, kite_run

MACHINES = (["--bare"], ["--sim"], ["--paging", "shadow"])

# Paging on, a misaligned trap vector, then a page fault: taking it means fetching at tvec.
MISALIGNED_VECTOR_AT = """
        .equ PTE_P, 1
        .equ PTE_W, 2
        .text
        .globl _start
_start: la      t0, pt_low              # identity-map the first 4 MiB
        li      t1, PTE_P | PTE_W
        li      t2, 1024
1:      sw      t1, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, 4096
        addi    t2, t2, -1
        bnez    t2, 1b
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)
        ori     t0, t0, 1
        mtcr    ptb, t0
        la      t0, {vector}         # misaligned
        mtcr    tvec, t0
        li      t0, 0x00800000          # not mapped
        lw      t1, 0(t0)
        halt
handler:
        halt
        .bss
        .balign 4096
page_dir:       .space 4096
pt_low:         .space 4096
"""
MISALIGNED_VECTOR = MISALIGNED_VECTOR_AT.format(vector="handler + 2")

# The handler's first instruction is illegal.
ILLEGAL_HANDLER = """
        .text
        .globl _start
_start: la      t0, handler
        mtcr    tvec, t0
        syscall
        halt
handler:
        .word   0
"""


def stop_message(stderr: str) -> str:
    """The stop message of a run, without the machine's ' (pc ...)' context."""
    line = next(line for line in stderr.splitlines() if "triple fault" in line)
    return line.split("stopped: ", 1)[1].split(" (pc ")[0]


@pytest.mark.parametrize("source, message", [
    # 23 words before handler (0x5c): the vector is 0x0010005e
    (MISALIGNED_VECTOR, "triple fault: misaligned access fetching the trap vector at 0x0010005e "
                        "badaddr 0x0010005e"),
    # la (2 words), mtcr, syscall, halt: the handler's zero word is at 0x00100014
    (ILLEGAL_HANDLER, "triple fault: illegal instruction in the first instruction of the trap handler "
                      "at 0x00100014"),
])
def test_a_triple_fault_stops_every_machine_with_one_message(tmp_path, source, message):
    guest = image(tmp_path, source)
    for machine in MACHINES:
        result = kite_run(*machine, guest)
        assert result.exit_code == 125, (machine, result.stderr)
        assert stop_message(result.stderr) == message, machine


def test_a_misaligned_trap_vector_sets_no_accessed_bit_in_the_simulator(tmp_path):
    """The machine checks a fetch's alignment before translating it, so the
    PTE of a misaligned vector's page keeps A clear when nothing else touched
    that page; the simulator once walked the vector (setting A) at trap entry."""
    import io

    from elftools.elf.elffile import ELFFile

    from asm.isa import PTE_A
    from vmm.machine.machine import Machine
    from vmm.monitor.simulate import Simulator
    guest = image(tmp_path, MISALIGNED_VECTOR_AT.format(vector="0x00101002"))   # a page nothing else uses
    with open(guest, "rb") as file:
        pt_low = ELFFile(file).get_section_by_name(".symtab").get_symbol_by_name("pt_low")[0]["st_value"]
    vector_pte = pt_low + 4 * (0x00101002 >> 12)        # identity-mapped, so the address is physical
    for engine in (Machine(2 << 20, console_out=io.BytesIO()), Simulator(2 << 20, console_out=io.BytesIO())):
        engine.load(guest)
        engine.run(10_000)
        assert not engine.memory.read(vector_pte, 4) & PTE_A, type(engine).__name__


def test_the_trace_under_shadow_paging_shows_the_faulting_address(tmp_path):
    guest = image(tmp_path, MISALIGNED_VECTOR)
    traces = {}
    for machine in (["--bare"], ["--paging", "shadow"]):
        path = tmp_path / f"trace{len(traces)}.txt"
        kite_run(*machine, guest, "--trace", path)
        traces[machine[-1]] = [line for line in path.read_text().splitlines()
                               if line.startswith("trap: page fault") and "epc=0x00100054" in line]
    # the lw at word 21 (0x54) faults on 0x00800000, which pt_low does not map
    assert traces["--bare"] == ["trap: page fault epc=0x00100054 badaddr=0x00800000"]
    assert traces["shadow"][-1] == traces["--bare"][0]     # the last one, after the hidden faults that fill the shadow

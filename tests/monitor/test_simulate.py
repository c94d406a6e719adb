"""Machine simulation (`kite run --sim`) is an independent implementation of the
architecture: every program must behave on it exactly as on the machine."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from kite.build import GUESTOS, build_all
from vmm.cli import run
from vmm.machine.machine import Machine
from vmm.monitor.simulate import Simulator

PROGRAMS = sorted((Path(__file__).parents[1] / "machine" / "testdata").glob("*.s"))


def linked(tmp_path: Path, program: Path) -> str:
    path = tmp_path / f"{program.stem}.elf"
    path.write_bytes(link([assemble(program.read_text(), program.name)], LinkOptions(text_address=0x100000)))
    return str(path)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda path: path.stem)
def test_simulated_registers_and_control_registers_equal_the_machines(tmp_path, program):
    image = linked(tmp_path, program)
    machine = Machine(4 << 20, console_out=io.BytesIO())
    machine.load(image)
    machine_result = machine.run(10_000)
    simulator = Simulator(4 << 20, console_out=io.BytesIO())
    simulator.load(image)
    sim_result = simulator.run(10_000)
    assert (sim_result.reason, sim_result.exit_code) == (machine_result.reason, machine_result.exit_code)
    assert simulator.regs == machine.cpu.regs
    assert simulator.cr == machine.cpu.cr
    assert simulator.pc == machine.cpu.pc
    assert sim_result.stats.instructions == machine_result.stats.instructions


@pytest.mark.parametrize("name", ["hello", "boot_demo"])
def test_examples_give_the_bare_output_exit_code_and_ticks_and_walk_on_every_access(tmp_path, name):
    build_all()
    image = str(GUESTOS / "build" / f"{name}.elf")
    figures = {}
    for machine in ("--bare", "--sim"):
        stats = tmp_path / f"{machine[2:]}.json"
        result = CliRunner().invoke(run, [image, machine, "--stats-json", str(stats)])
        figures[machine] = (result.stdout_bytes, result.exit_code, json.loads(stats.read_text()))
    (bare_out, bare_code, bare), (sim_out, sim_code, sim) = figures["--bare"], figures["--sim"]
    assert (sim_out, sim_code) == (bare_out, bare_code)
    assert (sim["instructions"], sim["ticks"]) == (bare["instructions"], bare["ticks"])
    assert sim["tlb_hits"] == 0                              # no TLB: every translation walks
    assert sim["page_walks"] >= bare["page_walks"]
    assert sim["modeled_cycles"] > bare["modeled_cycles"]


def test_a_fault_with_no_trap_vector_stops_the_simulation_with_exit_125(tmp_path):
    source = ".text\n.globl _start\n_start: li t0, 0xE0000000\n lw t1, 0(t0)\n halt\n"
    image = tmp_path / "fault.elf"
    image.write_bytes(link([assemble(source, "fault.s")], LinkOptions(text_address=0x100000)))
    result = CliRunner().invoke(run, [str(image), "--sim"])
    assert result.exit_code == 125
    assert "kite: stopped: unhandled bus error at pc 0x00100004 badaddr 0xe0000000 (tvec is 0)" in result.stderr

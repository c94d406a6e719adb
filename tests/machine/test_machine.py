"""The Machine's run loop, driven by a scripted stand-in CPU that follows the
CPU contract (ticks, states, request_stop, interrupts checked before every
instruction).  These pin down the loop's timing without depending on the real
CPU; tests/machine/test_machine.py boots real images end to end."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.isa import IRQ_DISK, IRQ_TIMER, POWER_BASE, TIMER_BASE, DISK_BASE
from vmm.cli import run as run_command
from vmm.machine.costs import DEFAULT_COST_MODEL, CostModel, load_cost_model, modeled_cycles
from vmm.machine.devices import disk as disk_regs
from vmm.machine.devices import timer as timer_regs
from vmm.machine.devices.disk import DISK_LATENCY_TICKS, DiskImage
from vmm.machine.errors import KiteError
from vmm.machine.counters import Counters
from vmm.machine.machine import Machine
from vmm.machine.outcome import EXIT_FAULT, EXIT_INSTRUCTION_LIMIT, CpuState, EndReason


class ScriptedCPU:
    """Runs `program`: a list of steps, each a callable(cpu), "wfi" or "halt".
    Interrupts (IE always on) are recorded as (tick, irq) and handed to
    `on_interrupt(cpu, irq)`, which plays the guest's handler.  With
    `loop=True` the program repeats forever."""

    def __init__(self, memory, bus, irq, program, on_interrupt=None, loop=False):
        self.memory, self.bus, self.irq = memory, bus, irq
        self.program, self.on_interrupt, self.loop = program, on_interrupt, loop
        self.regs, self.cr, self.pc, self.ticks = [0] * 16, [0] * 8, 0, 0
        self.state, self.stop_reason = CpuState.RUNNING, None
        self.counters = Counters()
        self.taken: list[tuple[int, int]] = []
        self.trace = None

    def reset(self, pc, a0):
        self.pc, self.regs[4] = pc, a0

    def request_stop(self, reason=None):
        self.state, self.stop_reason = CpuState.STOPPED, reason

    def run(self, until_tick):
        while self.ticks < until_tick and self.state is CpuState.RUNNING:
            if self.irq.pending:
                irq = (self.irq.pending & -self.irq.pending).bit_length() - 1
                self.taken.append((self.ticks, irq))
                self.counters.interrupts[irq] = self.counters.interrupts.get(irq, 0) + 1
                if self.on_interrupt:
                    self.on_interrupt(self, irq)
            if self.pc >= len(self.program):
                if not self.loop:
                    raise AssertionError("program ran off its end")
                self.pc = 0
            step = self.program[self.pc]
            self.pc += 1
            if step == "halt":
                self.state = CpuState.HALTED
            elif step == "wfi":
                if not self.irq.pending:
                    self.state = CpuState.WAITING
            elif step is not None:
                step(self)
            self.ticks += 1
            self.counters.instructions += 1


def store(address, value):
    return lambda cpu: cpu.bus.write(address, 4, value)


def ack_timer(cpu, irq):
    cpu.bus.write(TIMER_BASE + timer_regs.TIMER_ACK, 4, 0)


def machine_with(program, on_interrupt=None, loop=False, physical_memory=None, **options):
    machine = Machine(0x10000, console_out=io.BytesIO(), memory_factory=physical_memory,
                      cpu_factory=lambda memory, bus, irq: ScriptedCPU(memory, bus, irq, program,
                                                                       on_interrupt, loop),
                      **options)
    return machine


START_TIMER = [store(TIMER_BASE + timer_regs.TIMER_INTERVAL, 100),
               store(TIMER_BASE + timer_regs.TIMER_CTRL, timer_regs.CTRL_ENABLE)]


def test_timer_programmed_mid_run_interrupts_at_exactly_its_tick(physical_memory):
    machine = machine_with(START_TIMER + [None] * 300 + ["halt"], ack_timer,
                           physical_memory=physical_memory)
    result = machine.run()
    # CTRL stored by the instruction that starts at tick 1: expiry at tick 101, taken before insn 101
    assert machine.cpu.taken == [(101, IRQ_TIMER)]
    assert (result.reason, result.exit_code) == (EndReason.HALT, 0)


def test_periodic_timer_interrupts_every_interval(physical_memory):
    periodic = [store(TIMER_BASE + timer_regs.TIMER_INTERVAL, 50),
                store(TIMER_BASE + timer_regs.TIMER_CTRL,
                      timer_regs.CTRL_ENABLE | timer_regs.CTRL_PERIODIC)]
    machine = machine_with(periodic + [None] * 200 + ["halt"], ack_timer, physical_memory=physical_memory)
    machine.run()
    assert machine.cpu.taken == [(51, IRQ_TIMER), (101, IRQ_TIMER), (151, IRQ_TIMER), (201, IRQ_TIMER)]


def test_wfi_skips_idle_time_to_the_next_device_event(physical_memory):
    machine = machine_with(START_TIMER + ["wfi", "halt"], ack_timer, physical_memory=physical_memory)
    result = machine.run()
    cpu = machine.cpu
    assert cpu.taken == [(101, IRQ_TIMER)]
    assert cpu.counters.instructions == 4
    assert cpu.counters.ticks_idle == 101 - 3
    assert result.stats.ticks == 102


def test_wfi_with_no_interrupt_source_stops_the_machine(physical_memory):
    result = machine_with([None, "wfi", "halt"], physical_memory=physical_memory).run()
    assert result.reason == EndReason.NO_INTERRUPT_SOURCE
    assert result.exit_code == EXIT_FAULT
    assert "wfi with no interrupt source" in result.message


def test_instruction_limit_stops_after_exactly_that_many_instructions(physical_memory):
    machine = machine_with([None] * 10, loop=True, physical_memory=physical_memory)
    result = machine.run(max_instructions=1234)
    assert machine.cpu.counters.instructions == 1234
    assert (result.reason, result.exit_code) == (EndReason.INSTRUCTION_LIMIT, EXIT_INSTRUCTION_LIMIT)
    assert result.message.startswith("instruction limit 1234 reached at pc ")


def test_power_exit_stops_after_the_store_with_the_low_byte_as_exit_code(physical_memory):
    machine = machine_with([None, store(POWER_BASE, 0x1FF), None, "halt"], physical_memory=physical_memory)
    result = machine.run()
    assert (result.reason, result.exit_code) == (EndReason.POWER_OFF, 0xFF)
    assert machine.cpu.counters.instructions == 2


def test_disk_completion_wakes_a_waiting_cpu_with_the_data_in_memory(physical_memory, tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\x42" * 512)
    program = [store(DISK_BASE + disk_regs.DISK_DMA_ADDR, 0x8000),
               store(DISK_BASE + disk_regs.DISK_COUNT, 1),
               store(DISK_BASE + disk_regs.DISK_CTRL, disk_regs.CTRL_IRQ_ENABLE),
               store(DISK_BASE + disk_regs.DISK_CMD, disk_regs.CMD_READ),
               "wfi", "halt"]
    ack = lambda cpu, irq: cpu.bus.write(DISK_BASE + disk_regs.DISK_ACK, 4, 0)
    machine = machine_with(program, ack, disk=str(path), physical_memory=physical_memory)
    machine.run()
    assert machine.cpu.taken == [(3 + DISK_LATENCY_TICKS, IRQ_DISK)]
    assert machine.memory.read_bytes(0x8000, 512) == b"\x42" * 512
    assert path.read_bytes() == b"\x42" * 512


def test_disk_writes_reach_the_file_only_at_the_end_of_the_run(physical_memory, tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(1024))
    seen_during_run = []
    program = [lambda cpu: cpu.memory.write_bytes(0x8000, b"\x99" * 512),
               store(DISK_BASE + disk_regs.DISK_SECTOR, 1),
               store(DISK_BASE + disk_regs.DISK_DMA_ADDR, 0x8000),
               store(DISK_BASE + disk_regs.DISK_COUNT, 1),
               store(DISK_BASE + disk_regs.DISK_CMD, disk_regs.CMD_WRITE)] + [None] * DISK_LATENCY_TICKS + [
               lambda cpu: seen_during_run.append(path.read_bytes()), "halt"]
    machine_with(program, disk=DiskImage.open(str(path)), physical_memory=physical_memory).run()
    assert seen_during_run == [bytes(1024)]
    assert path.read_bytes() == bytes(512) + b"\x99" * 512


def test_register_dump_names_every_register_and_control_register(physical_memory):
    machine = machine_with(["halt"], physical_memory=physical_memory)
    cpu = machine.cpu
    cpu.regs = list(range(0, 16 * 0x11, 0x11))
    cpu.cr = [0x100 + n for n in range(8)]
    cpu.pc = 0x2000
    assert machine.register_dump() == "\n".join([
        "pc  0x00002000",
        "zero 0x00000000    ra 0x00000011    sp 0x00000022    at 0x00000033",
        "  a0 0x00000044    a1 0x00000055    a2 0x00000066    a3 0x00000077",
        "  t0 0x00000088    t1 0x00000099    t2 0x000000aa    t3 0x000000bb",
        "  s0 0x000000cc    s1 0x000000dd    s2 0x000000ee    s3 0x000000ff",
        " status 0x00000100     tvec 0x00000101    cause 0x00000102  badaddr 0x00000103",
        "    epc 0x00000104  scratch 0x00000105      ptb 0x00000106    timer 0x00000107",
    ])


def test_cost_model_file_overrides_only_the_fields_it_names(tmp_path):
    toml_file, json_file = tmp_path / "c.toml", tmp_path / "c.json"
    toml_file.write_text("walk_ref = 14\nvm_exit = 600\n")
    json_file.write_text('{"trap": 80}')
    assert load_cost_model(str(toml_file)) == CostModel(walk_ref=14, vm_exit=600)
    assert load_cost_model(str(json_file)) == CostModel(trap=80)


@pytest.mark.parametrize("text, message", [
    ("bogus = 3", "unknown cost 'bogus'"),
    ("trap = 1.5", "cost 'trap' must be a non-negative integer"),
    ("trap = true", "cost 'trap' must be a non-negative integer"),
    ("trap = ", "cannot parse cost model"),
])
def test_bad_cost_model_file_is_a_kite_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(KiteError, match=f"{path}: {message}"):
        load_cost_model(str(path))


def test_modeled_cycles_prices_each_kind_of_event():
    counters = {"instructions": 1000, "walk_refs": 10, "exceptions": {"4": 2}, "interrupts": {"0": 1},
                "vm_exits": 0}
    model = DEFAULT_COST_MODEL
    assert modeled_cycles(counters, {"reads": 4, "writes": 6}, model) == (
        1000 * model.instruction + 10 * model.walk_ref + 3 * model.trap + 10 * model.mmio)


def test_stats_count_device_accesses_and_price_them_with_the_cost_model(physical_memory):
    model = CostModel(instruction=2, mmio=10, trap=100, walk_ref=0)
    machine = machine_with(START_TIMER + ["wfi", "halt"], ack_timer, cost_model=model,
                           physical_memory=physical_memory)
    stats = machine.run().stats
    assert (stats.device_reads, stats.device_writes) == (0, 3)
    assert stats.interrupts == {"timer": 1}
    assert stats.modeled_cycles == 4 * 2 + 3 * 10 + 1 * 100
    assert stats.reason == "halt" and stats.exit_code == 0


# --- end to end: assembled and linked images booted with `kite run --bare` ------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "guestos" / "examples"
TOOLS = Path(sys.executable).parent


def build(tmp_path: Path, source: str, name: str = "prog") -> str:
    """Assemble and link `source` at 0x00100000 with `kite as` and `kite ld`; the image's path."""
    source_path = tmp_path / f"{name}.s"
    source_path.write_text(source)
    obj, image = tmp_path / f"{name}.o", tmp_path / f"{name}.elf"
    for command in ([TOOLS / "kite", "as", "-o", obj, source_path],
                    [TOOLS / "kite", "ld", "-Ttext", "0x100000", "-o", image, obj]):
        done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return str(image)


def kite_run(*args):
    return CliRunner().invoke(run_command, ["--bare", *map(str, args)])


@pytest.mark.slow
def test_boot_demo_turns_on_paging_takes_a_timer_interrupt_prints_and_exits_7(tmp_path):
    image = build(tmp_path, (EXAMPLES / "boot_demo.s").read_text(), "boot_demo")
    stats_path = tmp_path / "stats.json"
    result = kite_run(image, "--stats-json", stats_path, "--stats")
    assert result.stdout_bytes == (b"kite32: booting\nkite32: paging on\nkite32: tick\n"
                                   b"kite32: timer interrupt taken, exit code 7\n")
    assert result.exit_code == 7, result.stderr
    stats = json.loads(stats_path.read_text())
    assert stats["interrupts"] == {"timer": 1} and stats["exceptions"] == {}
    assert stats["page_walks"] > 0 and stats["tlb_misses"] > 0 and stats["tlb_hits"] > stats["tlb_misses"]
    printed = len(result.stdout_bytes)
    assert stats["device_writes"] == printed + 3 + 1      # UART bytes, timer INTERVAL/CTRL/ACK, power
    assert stats["ticks_idle"] > 0                         # it slept in wfi until the tick
    assert stats["modeled_cycles"] > stats["instructions"]
    assert (stats["reason"], stats["exit_code"]) == ("power off", 7)
    assert "kite: stats:" in result.stderr and "    timer: 1" in result.stderr


@pytest.mark.slow
def test_trace_has_one_symbolized_line_per_instruction(tmp_path):
    image = build(tmp_path, (EXAMPLES / "hello.s").read_text(), "hello")
    trace_path, stats_path = tmp_path / "trace.txt", tmp_path / "stats.json"
    result = kite_run(image, "--trace", trace_path, "--stats-json", stats_path)
    assert result.stdout_bytes == b"hello from kite32\n" and result.exit_code == 0, result.stderr
    lines = trace_path.read_text().splitlines()
    assert lines[0].startswith("0x00100000 <_start>  ")
    assert len(lines) == json.loads(stats_path.read_text())["instructions"]
    # the power-off store ends the run; since the trace shows file:line (docs/tracing.md), as a last comment
    assert lines[-1].endswith("sw zero, 0(t0)  # " + str(tmp_path / "hello.s") + ":17")
    assert any(line.split("  ", 1)[1].startswith("sw ") for line in lines)


@pytest.mark.slow
def test_instruction_limit_stops_with_exit_124_and_a_symbolized_pc(tmp_path):
    image = build(tmp_path, ".text\n.globl _start\n_start:\n        addi a0, a0, 1\nspin:   j spin\n")
    result = kite_run(image, "--max-instructions", 1000)
    assert result.exit_code == 124
    assert result.stderr.startswith("kite: stopped: instruction limit 1000 reached at pc 0x00100004 <spin>")


@pytest.mark.slow
def test_unhandled_kernel_fault_dumps_registers_with_a_symbolized_pc_and_exits_125(tmp_path):
    source = """
        .text
        .globl _start
_start:
        li      a0, 0x1234
        li      t0, 0xE0000000          # no RAM and no device here; tvec is 0
        lw      t1, 0(t0)
        halt
"""
    result = kite_run(build(tmp_path, source), "--trace", "-")
    assert result.exit_code == 125
    assert "kite: stopped: " in result.stderr and "Traceback" not in result.stderr
    assert "<_start+0x" in result.stderr
    assert "  a0 0x00001234" in result.stderr and "t0 0xe0000000" in result.stderr
    assert "\n status 0x" in result.stderr and "badaddr 0x" in result.stderr
    assert "trap: bus error epc=" in result.stderr


@pytest.mark.slow
def test_console_input_is_echoed_until_end_of_input(tmp_path):
    source = """
        .equ UART, 0xF0000000
        .equ POWER, 0xF0003000
        .text
        .globl _start
_start:
        li      t0, UART
poll:   lw      t1, 8(t0)               # STATUS
        andi    t2, t1, 4               # RX_EOF
        bnez    t2, done
        andi    t2, t1, 1               # RX_READY
        beqz    t2, poll
        lw      t3, 4(t0)               # RX
        sw      t3, 0(t0)               # TX
        j       poll
done:   li      t0, POWER
        li      t1, 3
        sw      t1, 0(t0)
        halt
"""
    result = kite_run(build(tmp_path, source), "--input-text", "echo me\n")
    assert result.stdout_bytes == b"echo me\n" and result.exit_code == 3, result.stderr

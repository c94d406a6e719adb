"""`kite run` option handling and error exits (through click's CliRunner).
Booting real images end to end is in test_machine.py."""

from __future__ import annotations

import json
import sys
import types

import pytest
from click.testing import CliRunner

from asm.isa import POWER_BASE, UART_BASE
from vmm.cli import MemSize, format_stats, run
from vmm.machine.counters import Counters
from vmm.machine.outcome import CpuState

def invoke(*args):
    return CliRunner().invoke(run, list(args))


@pytest.mark.parametrize("text, size", [("65536", 0x10000), ("64K", 0x10000), ("16M", 0x1000000),
                                        ("16m", 0x1000000), ("1G", 0x40000000)])
def test_mem_sizes_accept_k_m_g_suffixes(text, size):
    assert MemSize().convert(text, None, None) == size


@pytest.mark.parametrize("value, complaint", [
    ("lots", "is not a size"),
    ("12345", "not a positive multiple of 4 KiB"),
    ("0", "not a positive multiple of 4 KiB"),
    ("4G", "more than the 3840 MiB below the MMIO region"),
])
def test_bad_mem_size_is_a_usage_error(tmp_path, value, complaint):
    result = invoke(str(tmp_path / "k.elf"), "--bare", "--mem", value)
    assert result.exit_code == 2
    assert "Invalid value for '--mem'" in result.stderr and complaint in result.stderr


def test_run_without_a_machine_selected_is_a_usage_error(tmp_path):
    result = invoke(str(tmp_path / "k.elf"))
    assert result.exit_code == 2 and "choose one of --bare, --sim, --paging or --vm" in result.stderr


@pytest.mark.parametrize("arguments, complaint", [
    (["k.elf", "--bare", "--paging", "shadow"], "--bare and --paging cannot be combined"),
    (["--paging", "shadow"], "missing IMAGE"),
    (["k.elf", "--vm", "k.elf"], "--vm takes the images itself"),
    (["k.elf", "--paging", "shadow", "--disk-readonly"], "--disk-readonly needs --disk"),
    (["--vm", "k.elf", "--disk", "d.img"], "give each VM its modules, shadow options and disk in its spec"),
    (["--vm", "k.elf,disk-readonly"], "disk-readonly needs disk=FILE"),
    (["--vm", "k.elf,paging=fast"], "'paging=fast' in 'k.elf,paging=fast'"),
    (["--vm", "k.elf,name=a", "--vm", "k.elf,name=a"], "two VMs named alike"),
    (["k.elf", "--paging", "fast"], "Invalid value for '--paging'"),
    (["k.elf", "--sim", "--bare"], "--bare and --sim cannot be combined"),
    (["--vm", "k.elf", "--module", "m.elf"],
     "with --vm, give each VM its modules, shadow options and disk in its spec"),
    (["--vm", "k.elf", "--shadow-opt", "none"], "with --vm, give each VM its modules, shadow options and disk"),
])
def test_conflicting_or_bad_machine_options_are_usage_errors(tmp_path, arguments, complaint):
    result = invoke(*arguments)
    assert result.exit_code == 2 and complaint in result.stderr, result.stderr


def test_missing_disk_image_is_a_one_line_error_with_exit_2(tmp_path):
    result = invoke(str(tmp_path / "k.elf"), "--bare", "--disk", str(tmp_path / "none.img"))
    assert result.exit_code == 2
    assert result.stderr.startswith("kite: error: ") and "none.img: cannot read disk image" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_bad_cost_model_is_a_one_line_error_with_exit_2(tmp_path):
    model = tmp_path / "costs.toml"
    model.write_text("trap = -3\n")
    result = invoke(str(tmp_path / "k.elf"), "--bare", "--cost-model", str(model))
    assert result.exit_code == 2
    assert result.stderr == f"kite: error: {model}: cost 'trap' must be a non-negative integer, got -3\n"


def test_bad_image_is_a_one_line_error_with_exit_2(stand_in_cpu, tmp_path):
    image = tmp_path / "bad.elf"
    image.write_bytes(b"not an elf at all")
    result = invoke(str(image), "--bare")
    assert result.exit_code == 2
    assert result.stderr == f"kite: error: {image}: not an ELF file (bad magic)\n"


def test_stats_text_lists_every_figure_with_nested_tables_indented():
    text = format_stats({"instructions": 12, "exceptions": {}, "interrupts": {"timer": 2},
                         "modeled_cycles": 312})
    assert text == ("kite: stats:\n  instructions: 12\n  exceptions: none\n  interrupts:\n"
                    "    timer: 2\n  modeled_cycles: 312")


# --- the command's wiring, with a stand-in CPU ----------------------------------------------
# These run `kite run --bare` on a real image through the real loader, devices and Machine,
# with the CPU replaced by a stand-in that follows the CPU contract and plays one scripted
# behaviour.  They pin down what the command prints and returns for each way a run ends.


class StandInCPU:
    behaviour = None     # set by each test: behaviour(cpu, until_tick)

    def __init__(self, memory, bus, irq):
        self.memory, self.bus, self.irq = memory, bus, irq
        self.regs, self.cr, self.pc, self.ticks = [0] * 16, [0] * 8, 0, 0
        self.state, self.stop_reason, self.trace = CpuState.RUNNING, None, None
        self.counters = Counters()

    def reset(self, pc, a0):
        self.pc, self.regs[4] = pc, a0

    def request_stop(self, reason=None):
        self.state, self.stop_reason = CpuState.STOPPED, reason

    def run(self, until_tick):
        type(self).behaviour(self, until_tick)

    def step(self):
        self.ticks += 1
        self.counters.instructions += 1


def print_ok_and_power_off(cpu, until_tick):
    for byte in b"ok\n":
        cpu.bus.write(UART_BASE, 4, byte)
        cpu.step()
    cpu.bus.write(POWER_BASE, 4, 0x105)
    cpu.step()


def spin(cpu, until_tick):
    cpu.counters.instructions += until_tick - cpu.ticks
    cpu.ticks = until_tick


def fault_in_kernel(cpu, until_tick):
    cpu.step()
    cpu.pc += 8
    cpu.regs[4], cpu.cr[3] = 0x1234, 0xE0000000
    cpu.state, cpu.stop_reason = CpuState.STOPPED, "unhandled fault in kernel mode: bus error"


@pytest.fixture
def stand_in_cpu(monkeypatch, physical_memory):
    """Install StandInCPU (and the memory stand-in if PhysicalMemory is missing) for Machine."""
    monkeypatch.setitem(sys.modules, "vmm.machine.cpu", types.SimpleNamespace(CPU=StandInCPU))
    monkeypatch.setitem(sys.modules, "vmm.machine.memory",
                        types.SimpleNamespace(PhysicalMemory=physical_memory))
    return StandInCPU


@pytest.fixture
def image(make_elf, write_file):
    return write_file("k.elf", make_elf([dict(vaddr=0x100000, data=bytes(64))], 0x100000,
                                        symbols=[("_start", 0x100000, 2), ("fault_here", 0x100008, 2)]))


def test_power_off_exit_code_output_and_stats_json(stand_in_cpu, image, tmp_path):
    stand_in_cpu.behaviour = print_ok_and_power_off
    stats_path = tmp_path / "stats.json"
    result = invoke(image, "--bare", "--stats", "--stats-json", str(stats_path))
    assert (result.exit_code, result.stdout_bytes) == (5, b"ok\n")
    stats = json.loads(stats_path.read_text())
    assert stats["instructions"] == 4 and stats["device_writes"] == 4
    assert (stats["reason"], stats["exit_code"]) == ("power off", 5)
    assert stats["modeled_cycles"] == 4 * 1 + 4 * 100
    assert result.stderr.startswith("kite: stats:\n  instructions: 4\n")


def test_instruction_limit_exits_124_naming_the_symbolized_pc(stand_in_cpu, image):
    stand_in_cpu.behaviour = spin
    result = invoke(image, "--bare", "--max-instructions", "5000")
    assert result.exit_code == 124
    assert result.stderr == "kite: stopped: instruction limit 5000 reached at pc 0x00100000 <_start>\n"


def test_fault_exits_125_with_a_register_dump_and_symbolized_pc(stand_in_cpu, image):
    stand_in_cpu.behaviour = fault_in_kernel
    result = invoke(image, "--bare")
    assert result.exit_code == 125
    lines = result.stderr.splitlines()
    assert lines[0] == ("kite: stopped: unhandled fault in kernel mode: bus error "
                        "(pc 0x00100008 <fault_here>)")
    assert lines[1] == "pc  0x00100008 <fault_here>"
    assert "  a0 0x00001234" in lines[3] and "badaddr 0xe0000000" in lines[6]
    assert len(lines) == 8


def test_disk_is_written_back_after_the_run_and_a_read_only_one_is_not(stand_in_cpu, image, tmp_path):
    from vmm.machine.devices import disk as regs

    def write_sector_zero(cpu, until_tick):
        if cpu.ticks == 0:
            cpu.memory.write_bytes(0x8000, b"\x77" * 512)
            for offset, value in ((regs.DISK_DMA_ADDR, 0x8000), (regs.DISK_COUNT, 1),
                                  (regs.DISK_CMD, regs.CMD_WRITE)):
                cpu.bus.write(0xF0002000 + offset, 4, value)
                cpu.step()
            return
        spin(cpu, until_tick)
        if cpu.bus.read(0xF0002000 + regs.DISK_STATUS, 4) & regs.STATUS_DONE:
            cpu.state = CpuState.HALTED

    stand_in_cpu.behaviour = write_sector_zero
    for flags, expected in (((), b"\x77" * 512), (("--disk-readonly",), bytes(512))):
        disk = tmp_path / "disk.img"
        disk.write_bytes(bytes(512))
        result = invoke(image, "--bare", "--disk", str(disk), *flags)
        assert result.exit_code == 0, result.stderr
        assert disk.read_bytes() == expected


def test_a_user_program_booted_as_a_kernel_gets_a_hint_after_its_fault():
    from kite.build import GUESTOS, build_all
    build_all()
    program = GUESTOS / "build" / "user-hello.elf"
    result = invoke("--bare", str(program))
    assert result.exit_code == 125
    assert result.stderr.splitlines()[-1] == (
        f"hint: {program} starts at 0x00400000, where the guest OS links its user programs; a user program runs "
        f"under the guest kernel: kite run --bare guestos/build/kernel-native.elf --module {program}")

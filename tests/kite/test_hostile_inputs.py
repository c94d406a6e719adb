"""Hostile inputs to the command-line tools: each test reproduces one failure a review found of the standard

    "Bad input gets a clear error, not a traceback ... exit nonzero.  Lose nothing: never write
    half an output file, and never modify an input."

Each test failed before its fix; each names the root cause it had.  Inputs are built in tmp_path
with the in-process assembler and linker (no dependency on guestos/build).  Keep the whole file
fast (< 10 s): the hang tests use subprocess timeouts, the memory tests an address-space limit.
"""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.cli_as import main as as_main
from asm.cli_tools import ld_main
from asm.elf import write_object
from asm.linker import LinkOptions, link
from kite.build import build
from kite.compare import compare
from vmm.cli import run

BIN = Path(sys.executable).parent
HELLO = """\
        .text
        .globl _start
_start:
        li      t0, 0xF0000000
        li      t1, 'k'
        sw      t1, 0(t0)
        li      t0, 0xF0003000
        sw      zero, 0(t0)
        halt
"""
HUGE_DIGITS = "9" * 5000          # past CPython's 4300-digit int() limit
DEEP = 2000                       # nesting past the recursion limit of json / tomllib
ADDRESS_SPACE = 1 << 30           # RLIMIT_AS for the memory tests: plenty for a normal run


def write_object_file(path: Path, source: str) -> Path:
    path.write_bytes(write_object(assemble(source, str(path))))
    return path


def write_image(path: Path, source: str = HELLO) -> Path:
    path.write_bytes(link([assemble(source, str(path))], LinkOptions()))
    return path


def no_traceback(result) -> None:
    """A CliRunner result ended by SystemExit (a clear error), not by some other exception."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback: {type(result.exception).__name__}: {result.exception}"


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


# --- kite-as -----------------------------------------------------------------------------------


def test_as_decimal_literal_of_5000_digits_is_a_diagnostic_not_a_traceback(tmp_path):
    # asm/expr.py parse_number: int(text, 10) raises ValueError past 4300 digits, uncaught
    source = tmp_path / "big.s"
    source.write_text(f".data\n.word {HUGE_DIGITS}\n")
    result = CliRunner().invoke(as_main, ["-o", str(tmp_path / "big.o"), str(source)])
    no_traceback(result)
    assert result.exit_code == 1
    assert f"{source}:2:" in result.output
    assert not (tmp_path / "big.o").exists()


def test_as_space_of_2_gib_is_a_clear_error_under_a_memory_limit(tmp_path):
    # asm/directives.py space(): no upper bound; asm/encoder.py materialises bytes([fill]) * size
    # (MemoryError, uncaught in asm/cli_as.py); without a limit it writes a 2 GiB object
    source = tmp_path / "space.s"
    source.write_text(".data\n.space 0x7fffffff\n")
    done = subprocess.run([str(BIN / "kite-as"), "-o", str(tmp_path / "space.o"), str(source)],
                          capture_output=True, text=True, timeout=30, preexec_fn=limited_memory)
    assert "Traceback" not in done.stderr, done.stderr[-400:]
    assert done.returncode == 1
    assert f"{source}:2:" in done.stderr
    assert not (tmp_path / "space.o").exists()


# --- kite-ld -----------------------------------------------------------------------------------


def test_ld_refuses_to_write_its_output_over_an_input_object(tmp_path):
    # asm/cli_tools.py ld_main: no output == input check (kite-as has one)
    obj = write_object_file(tmp_path / "hello.o", HELLO)
    before = obj.read_bytes()
    result = CliRunner().invoke(ld_main, ["-o", str(obj), str(obj)])
    no_traceback(result)
    assert obj.read_bytes() == before, "kite-ld overwrote its input object"
    assert result.exit_code == 1


def test_ld_refuses_to_write_its_output_over_the_layout_file(tmp_path):
    obj = write_object_file(tmp_path / "hello.o", HELLO)
    layout = tmp_path / "layout.toml"
    layout.write_text('entry = "_start"\n')
    result = CliRunner().invoke(ld_main, ["-T", str(layout), "-o", str(layout), str(obj)])
    assert layout.read_bytes() == b'entry = "_start"\n', "kite-ld overwrote its layout file"
    assert result.exit_code == 1


def test_ld_layout_nested_too_deeply_is_a_clear_error(tmp_path):
    # asm/linker.py apply_layout catches only TOMLDecodeError; tomllib raises RecursionError
    obj = write_object_file(tmp_path / "hello.o", HELLO)
    layout = tmp_path / "deep.toml"
    layout.write_text("entry = " + "[" * DEEP + "]" * DEEP + "\n")
    result = CliRunner().invoke(ld_main, ["-T", str(layout), "-o", str(tmp_path / "a.elf"), str(obj)])
    no_traceback(result)
    assert result.exit_code == 1
    assert str(layout) in result.output


def test_ld_object_with_a_2_gib_section_alignment_is_a_clear_error(tmp_path):
    # asm/elf.py _read_sections accepts any sh_addralign; asm/linker.py OutputSection.add pads the
    # second piece to the alignment and fill() allocates it (MemoryError, uncaught in ld_main);
    # with 2**28 the link "succeeds" and writes a 256 MiB image from two 300-byte objects
    start = write_object_file(tmp_path / "start.o", HELLO)
    aligned = write_object_file(tmp_path / "aligned.o", ".text\nnop\n")
    data = bytearray(aligned.read_bytes())
    shoff, = struct.unpack_from("<I", data, 32)
    struct.pack_into("<I", data, shoff + 40 * 1 + 32, 0x80000000)    # section 1 (.text): sh_addralign
    aligned.write_bytes(bytes(data))
    output = tmp_path / "a.elf"
    done = subprocess.run([str(BIN / "kite-ld"), "-o", str(output), str(start), str(aligned)],
                          capture_output=True, text=True, timeout=30, preexec_fn=limited_memory)
    assert "Traceback" not in done.stderr, done.stderr[-400:]
    assert done.returncode == 1
    assert "aligned.o" in done.stderr
    assert not output.exists()


# --- kite run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--mem", "--vm"])
def test_run_size_of_5000_digits_is_a_usage_error_not_a_traceback(tmp_path, option):
    # vmm/cli.py MemSize.convert: int(match.group(1)) raises ValueError past 4300 digits
    image = write_image(tmp_path / "hello.elf")
    args = (["--bare", str(image), "--mem", HUGE_DIGITS] if option == "--mem"
            else ["--vm", f"{image},mem={HUGE_DIGITS}"])
    result = CliRunner().invoke(run, args)
    no_traceback(result)
    assert result.exit_code == 2


@pytest.mark.parametrize("option", ["--stats-json", "--trace"])
def test_run_refuses_to_write_stats_or_trace_over_the_image(tmp_path, option):
    # vmm/cli.py report() / open_trace(): the output path is never compared with the inputs
    image = write_image(tmp_path / "hello.elf")
    before = image.read_bytes()
    result = CliRunner().invoke(run, ["--bare", str(image), option, str(image)])
    assert image.read_bytes() == before, f"kite run {option} overwrote the image it booted"
    assert result.exit_code == 2


def test_run_refuses_to_write_stats_over_the_disk_image(tmp_path):
    image = write_image(tmp_path / "hello.elf")
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1024))
    result = CliRunner().invoke(run, ["--bare", str(image), "--disk", str(disk), "--stats-json", str(disk)])
    assert disk.read_bytes() == bytes(1024), "kite run --stats-json overwrote the disk image"
    assert result.exit_code == 2


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_run_cost_model_nested_too_deeply_is_a_clear_error(tmp_path, suffix):
    # vmm/machine/costs.py load_cost_model catches ValueError/UnicodeDecodeError, not RecursionError
    image = write_image(tmp_path / "hello.elf")
    model = tmp_path / f"costs{suffix}"
    nested = "[" * DEEP + "]" * DEEP
    model.write_text(nested if suffix == ".json" else f"instruction = {nested}\n")
    result = CliRunner().invoke(run, ["--bare", str(image), "--cost-model", str(model)])
    no_traceback(result)
    assert result.exit_code == 2
    assert str(model) in result.output


# A hostile guest: its trap handler's first instruction is illegal (zeroed RAM), so every trap
# raises another.  No instruction retires, so --max-instructions never triggers; the VMM stops
# this ("no progress"), the bare machine and the simulator spin forever.
TRAP_LOOP = """\
        .text
        .globl _start
_start:
        li      t0, 0x200000         # tvec -> zeroed RAM: opcode 0 is illegal
        mtcr    tvec, t0
        .word   0                    # illegal instruction -> trap -> illegal -> trap ...
"""


@pytest.mark.parametrize("mode", ["--bare", "--sim"])
def test_run_guest_whose_trap_handler_traps_stops_instead_of_hanging(tmp_path, mode):
    # vmm/machine/cpu.py CPU.run/_raise: the triple-fault stop needs trap.fetch, and a trap
    # retires no instruction nor tick; vmm/monitor/simulate.py Simulator.run: same, limit counts
    # retired instructions only
    image = write_image(tmp_path / "loop.elf", TRAP_LOOP)
    try:
        done = subprocess.run([str(BIN / "kite"), "run", mode, str(image), "--max-instructions", "1000"],
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kite run {mode} hangs on a trap loop despite --max-instructions 1000")
    assert done.returncode == 125, done.stderr
    assert "triple fault: illegal instruction in the first instruction of the trap handler" in done.stderr


# --- kite compare ------------------------------------------------------------------------------


def test_compare_workloads_file_nested_too_deeply_is_a_clear_error(tmp_path):
    # kite/runs.py read_workloads catches TOMLDecodeError/UnicodeDecodeError, not RecursionError
    workloads = tmp_path / "workloads.toml"
    workloads.write_text("a = " + "[" * DEEP + "]" * DEEP + "\n")
    result = CliRunner().invoke(compare, ["--workloads-file", str(workloads)])
    no_traceback(result)
    assert result.exit_code == 2
    assert str(workloads) in result.output


def test_compare_refuses_to_write_json_over_the_workloads_file(tmp_path):
    # kite/compare.py check_output_path checks only that the directory exists
    write_image(tmp_path / "hello.elf")
    workloads = tmp_path / "workloads.toml"
    text = '[workloads.hello]\nimage = "hello.elf"\nexit_code = 0\n'
    workloads.write_text(text)
    result = CliRunner().invoke(compare, ["--workloads-file", str(workloads), "--configs", "bare",
                                          "--json", str(workloads)])
    assert workloads.read_bytes() == text.encode(), "kite compare --json overwrote the workloads file"
    assert result.exit_code == 2


# --- kite build --------------------------------------------------------------------------------


def test_build_manifest_nested_too_deeply_is_a_clear_error(tmp_path):
    # kite/build.py read_manifest catches TOMLDecodeError/UnicodeDecodeError, not RecursionError
    manifest = tmp_path / "images.toml"
    manifest.write_text("a = " + "[" * DEEP + "]" * DEEP + "\n")
    result = CliRunner().invoke(build, ["--manifest", str(manifest), "-o", str(tmp_path / "out")])
    no_traceback(result)
    assert result.exit_code == 1
    assert str(manifest) in result.output


def test_compare_unwritable_json_path_loses_no_other_output(tmp_path):
    # kite/compare.py: check_output_path only checks that the directory exists, so an unwritable
    # --json is found after every run; write_outputs then stops at it and the good --csv is lost
    write_image(tmp_path / "hello.elf")
    workloads = tmp_path / "workloads.toml"
    workloads.write_text('[workloads.hello]\nimage = "hello.elf"\nexit_code = 0\n')
    table = tmp_path / "records.csv"
    result = CliRunner().invoke(compare, ["--workloads-file", str(workloads), "--configs", "bare",
                                          "--json", "/proc/self/records.json", "--csv", str(table)])
    no_traceback(result)
    assert result.exit_code == 2
    ran = "hello under bare" in result.output
    assert not ran or table.exists(), "the runs were made, then --csv was dropped because --json failed"

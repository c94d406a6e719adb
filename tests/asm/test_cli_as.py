"""`kite-as` (asm.cli_as.main): output naming, -D/-I, error exits that write
nothing and never touch the input, and `python -m asm`."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from asm.cli_as import main
from asm.elf import read_object


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_default_output_is_the_source_with_suffix_o(tmp_path):
    source = tmp_path / "prog.s"
    source.write_text(".globl start\nstart: addi a0, zero, 1\n")
    result = run(source)
    assert result.exit_code == 0, result.output
    obj = read_object((tmp_path / "prog.o").read_bytes(), "prog.o")
    assert bytes(obj.section(".text").data) == (0x41000001).to_bytes(4, "little")
    assert [s.name for s in obj.symbols if s.name == "start"] == ["start"]


def test_defines_and_include_dirs_reach_the_assembler(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "defs.s").write_text(".equ BASE, 0x10\n")
    source = tmp_path / "p.s"
    source.write_text('.include "defs.s"\n.ifdef FAST\naddi a0, zero, BASE + LEVEL\n.endif\n')
    result = run("-D", "FAST", "-D", "LEVEL=0x2", "-I", tmp_path / "lib", "-o", tmp_path / "out.o", source)
    assert result.exit_code == 0, result.output
    obj = read_object((tmp_path / "out.o").read_bytes(), "out.o")
    assert bytes(obj.section(".text").data) == (0x41000012).to_bytes(4, "little")


def test_errors_exit_1_with_diagnostics_and_leave_no_output(tmp_path):
    source = tmp_path / "bad.s"
    text = "nop\nfrob a0\naddi a0, a0, 200000\n"
    source.write_text(text)
    result = run(source)
    assert result.exit_code == 1
    assert f"{source}:2:1: error: unknown mnemonic 'frob'" in result.stderr
    assert f"{source}:3:1: error: immediate 200000 out of range [-131072, 131071]" in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [source] and source.read_text() == text


def test_failed_run_keeps_an_existing_output_file(tmp_path):
    source, output = tmp_path / "bad.s", tmp_path / "bad.o"
    source.write_text("frob\n")
    output.write_bytes(b"old")
    assert run("-o", output, source).exit_code == 1
    assert output.read_bytes() == b"old"


def test_non_utf8_source_is_an_error_with_its_position(tmp_path):
    source = tmp_path / "bin.s"
    source.write_bytes(b"nop\n  \xff\xfe junk\n")
    result = run(source)
    assert result.exit_code == 1
    assert f"{source}:2:3: error: not valid UTF-8 text (byte 0xff)" in result.stderr
    assert not (tmp_path / "bin.o").exists()


def test_missing_source_and_output_over_source_are_errors(tmp_path):
    result = run(tmp_path / "nope.s")
    assert result.exit_code == 1 and "cannot read" in result.stderr
    source = tmp_path / "same.s"
    source.write_text("nop\n")
    result = run("-o", source, source)
    assert result.exit_code == 1 and "would overwrite the source" in result.stderr
    assert source.read_text() == "nop\n"


def test_bad_define_is_a_usage_error(tmp_path):
    result = run("-D", "X=abc", tmp_path / "a.s")
    assert result.exit_code == 2 and "not an integer" in result.stderr


def test_define_beyond_32_bits_is_a_usage_error(tmp_path):
    result = run("-D", "X=0x100000000", tmp_path / "a.s")
    assert result.exit_code == 2 and "value of X does not fit in 32 bits" in result.stderr


def test_help_shows_an_example_and_version_prints_the_version():
    assert "Example:" in run("--help").output
    result = run("--version")
    assert result.exit_code == 0 and "kite-as" in result.output


def test_python_dash_m_asm_runs_the_same_command(tmp_path):
    source = tmp_path / "m.s"
    source.write_text("halt\n")
    subprocess.run([sys.executable, "-m", "asm", str(source)], check=True, capture_output=True)
    obj = read_object((tmp_path / "m.o").read_bytes(), "m.o")
    assert bytes(obj.section(".text").data) == (0x33 << 26).to_bytes(4, "little")


def test_version_alone_prints_what_click_prints_without_importing_click_or_lark():
    """`kite-as --version` is the console script's fast path (asm.lazycli.LazyCommand):
    the same line as the click command's --version, with neither click nor lark loaded."""
    import importlib.metadata
    script = ("import sys; sys.argv = ['kite-as', '--version']; from asm.cli_as import main; "
              "code = main(); print(code, 'click' in sys.modules, 'lark' in sys.modules)")
    fast = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    expected = f"kite-as, version {importlib.metadata.version('kite')}\n"
    assert fast == expected + "0 False False\n"
    assert run("--version").output == expected


def test_help_does_not_import_lark():
    script = ("import sys; sys.argv = ['kite-as', '--help']; from asm.cli_as import main\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\nprint('lark' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert "Example:" in done.stdout and done.stdout.endswith("False\n")

"""kite-ld, kite-objdump and kite-nm through click's CliRunner, plus the installed scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.cli_tools import ld_main, nm_main, objdump_main
from asm.elf import write_object
from tests.asm.helpers import assemble, lib_object, readelf, start_object

BIN = Path(sys.executable).parent


@pytest.fixture
def objects(tmp_path, monkeypatch):
    """start.o and lib.o written in a fresh working directory; returns their names."""
    monkeypatch.chdir(tmp_path)
    Path("start.o").write_bytes(write_object(start_object()))
    Path("lib.o").write_bytes(write_object(lib_object()))
    return ["start.o", "lib.o"]


def _run(command, args):
    return CliRunner().invoke(command, args, catch_exceptions=False)


# --- kite-ld -------------------------------------------------------------------------------------


def test_ld_writes_a_out_by_default(objects):
    result = _run(ld_main, objects)
    assert result.exit_code == 0, result.output
    assert Path("a.out").read_bytes()[:4] == b"\x7fELF"
    assert not list(Path(".").glob(".kite-ld-*"))


def test_ld_places_sections_from_the_command_line(objects):
    result = _run(ld_main, ["-o", "k.elf", "-Ttext", "0xC0100000", "--section-start", ".data=0xC0200000",
                            "--load-offset", "0xC0000000", "-e", "puts", *objects])
    assert result.exit_code == 0, result.output
    out, _ = readelf("k.elf", "-l", "-W")
    assert "Entry point 0xc0100018" in out
    assert "LOAD           0x003000 0xc0200000 0x00200000" in out


def test_ld_reads_a_layout_file_and_command_line_options_override_it(objects):
    Path("layout.toml").write_text('[load]\noffset = 0xC0000000\n[[section]]\nname = ".text"\nvma = 0xC0100000\n')
    result = _run(ld_main, ["-T", "layout.toml", "-Ttext", "0xC0400000", "-o", "k.elf", *objects])
    assert result.exit_code == 0, result.output
    out, _ = readelf("k.elf", "-l", "-W")
    assert "LOAD           0x001000 0xc0400000 0x00400000" in out


def test_ld_reports_every_link_error_and_writes_nothing(objects):
    result = CliRunner().invoke(ld_main, ["-o", "out.elf", "start.o"])
    assert result.exit_code == 1
    assert result.stderr == ("kite-ld: start.o: undefined symbol 'puts' (referenced from .text+0x4)\n"
                             "kite-ld: start.o: undefined symbol 'msg' (referenced from .text+0x10)\n")
    assert not Path("out.elf").exists()


def test_ld_warns_when_start_is_missing(objects):
    result = CliRunner().invoke(ld_main, ["lib.o"])
    assert result.exit_code == 0
    assert result.stderr == "kite-ld: warning: cannot find entry symbol '_start'; defaulting to 0x00100000\n"


@pytest.mark.parametrize("args, message", [
    (["missing.o"], "kite-ld: missing.o: cannot read: No such file or directory\n"),
    (["junk.o"], "kite-ld: junk.o: not an ELF file (bad magic)\n"),
    (["-T", "bad.toml", "start.o"], "kite-ld: bad.toml: unknown key 'sections' (known: entry, load, section)\n"),
])
def test_ld_bad_inputs_give_one_clear_line(objects, args, message):
    Path("junk.o").write_bytes(b"junk")
    Path("bad.toml").write_text("sections = 1\n")
    result = CliRunner().invoke(ld_main, args)
    assert (result.exit_code, result.stderr) == (1, message)


def test_ld_rejects_a_bad_address_with_a_usage_error(objects):
    result = _run(ld_main, ["-Ttext", "high", *objects])
    assert result.exit_code == 2 and "'high' is not a number" in result.output


# --- kite-objdump ------------------------------------------------------------------------------

OBJDUMP_IMAGE = """
a.out:     file format elf32-kite32

Sections:
Idx Name          Size      VMA       LMA       File off  Algn  Flags
  0 .text         0000001c  c0100000  00100000  00001000  2**2   AX
  1 .rodata       00000008  c0101000  00101000  00002000  2**2   A
  2 .data         00000008  c0102000  00102000  00003000  2**2   WA
  3 .bss          00000010  c0102008  00102008  00003008  2**2   WA

Disassembly of section .text:

c0100000 <_start>:
c0100000:\t41000005\taddi a0, zero, 5
c0100004:\ta0400005\tcall . + 20  # 0xc0100018 <puts>

c0100008 <after_call>:
c0100008:\t660c0102\tlui t0, 0xc0102
c010000c:\t4a200004\tori t0, t0, 4
c0100010:\t664c0101\tlui t1, 0xc0101
c0100014:\tcc000000\thalt

c0100018 <puts>:
c0100018:\ta4040000\tret
"""


def test_objdump_headers_and_disassembly_of_an_image(objects):
    assert _run(ld_main, ["-Ttext", "0xC0100000", "--load-offset", "0xC0000000", *objects]).exit_code == 0
    result = _run(objdump_main, ["-h", "-d", "a.out"])
    assert result.exit_code == 0
    assert result.output == OBJDUMP_IMAGE


OBJDUMP_OBJECT = """
start.o:     file format elf32-kite32

SYMBOL TABLE:
00000008 l       .text\t00000000 after_call
00000000 g     F .text\t00000018 _start
00000000 g     O .data\t00000008 table
00001234 g       *ABS*\t00000000 LIMIT
00000000 g       *UND*\t00000000 puts
00000000 g       *UND*\t00000000 msg

RELOCATION RECORDS FOR [.text]:
OFFSET   TYPE              VALUE
00000004 R_KITE_JUMP22     puts
00000008 R_KITE_HI20       .data+0x4
0000000c R_KITE_LO12       .data+0x4
00000010 R_KITE_HI20       msg

RELOCATION RECORDS FOR [.data]:
OFFSET   TYPE              VALUE
00000000 R_KITE_32         msg

Disassembly of section .text:

00000000 <_start>:
       0:\t41000005\taddi a0, zero, 5
       4:\ta0400000\tcall .  # 0x00000004 <_start+0x4>
\t\t\t4: R_KITE_JUMP22\tputs

00000008 <after_call>:
       8:\t66000000\tlui t0, 0x0
\t\t\t8: R_KITE_HI20\t.data+0x4
       c:\t4a200000\tori t0, t0, 0
\t\t\tc: R_KITE_LO12\t.data+0x4
      10:\t66400000\tlui t1, 0x0
\t\t\t10: R_KITE_HI20\tmsg
      14:\tcc000000\thalt
"""


def test_objdump_symbols_relocations_and_disassembly_of_an_object(objects):
    result = _run(objdump_main, ["-t", "-r", "-d", "start.o"])
    assert result.exit_code == 0
    assert result.output == OBJDUMP_OBJECT


def test_objdump_needs_something_to_show(objects):
    result = CliRunner().invoke(objdump_main, ["start.o"])
    assert (result.exit_code, result.stderr) == (1, "kite-objdump: nothing to show: give at least one of -d, -D, -S, -s, -f, -p, -h, -x, -t, -r\n")


def test_objdump_reports_a_corrupt_file_in_one_line_and_goes_on(objects):
    Path("cut.o").write_bytes(Path("start.o").read_bytes()[:300])
    result = CliRunner().invoke(objdump_main, ["-t", "cut.o", "lib.o"])
    assert result.exit_code == 1
    assert result.stderr.startswith("kite-objdump: cut.o: malformed ELF file (") and result.stderr.count("\n") == 1
    assert "00000000 g     F .text\t00000000 puts" in result.stdout


# --- kite-nm ------------------------------------------------------------------------------------


def test_nm_sorts_by_name_with_gnu_letters(objects):
    result = _run(nm_main, ["start.o"])
    assert result.output == ("00001234 A LIMIT\n"
                             "00000000 T _start\n"
                             "00000008 t after_call\n"
                             "         U msg\n"
                             "         U puts\n"
                             "00000000 D table\n")


def test_nm_numeric_sort_on_an_image_with_file_headers(objects):
    _run(ld_main, objects)
    result = _run(nm_main, ["-n", "a.out", "lib.o"])
    assert result.output == ("\na.out:\n"
                             "00001234 A LIMIT\n"
                             "00100000 T _start\n"
                             "00100008 t after_call\n"
                             "00100018 T puts\n"
                             "00101000 R msg\n"
                             "00102000 D table\n"
                             "\nlib.o:\n"
                             "00000000 R msg\n"
                             "00000000 T puts\n")


def test_nm_shows_bss_and_weak_letters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    item = assemble(".text\n.weak maybe\n.globl _start\n_start: call maybe\n.bss\nbuf: .space 8\n", "w.s")
    Path("w.o").write_bytes(write_object(item))
    result = _run(nm_main, ["w.o"])
    assert "00000000 b buf\n" in result.output and "         w maybe\n" in result.output


def test_nm_missing_file_is_one_line_and_exit_1(objects):
    result = CliRunner().invoke(nm_main, ["nope.o"])
    assert (result.exit_code, result.stderr) == (1, "kite-nm: nope.o: cannot read: No such file or directory\n")


# --- help and installed scripts -----------------------------------------------------------------


@pytest.mark.parametrize("command", [ld_main, objdump_main, nm_main])
def test_every_command_has_help_with_examples(command):
    result = _run(command, ["--help"])
    assert result.exit_code == 0 and "Examples:" in result.output


def test_installed_scripts_link_and_inspect(objects):
    subprocess.run([str(BIN / "kite-ld"), "-o", "s.elf", *objects], check=True)
    nm = subprocess.run([str(BIN / "kite-nm"), "s.elf"], capture_output=True, text=True, check=True)
    assert "00100018 T puts" in nm.stdout
    dump = subprocess.run([str(BIN / "kite"), "objdump", "-d", "s.elf"], capture_output=True, text=True, check=True)
    assert "  100004:\ta0400005\tcall . + 20  # 0x00100018 <puts>" in dump.stdout
    broken = subprocess.run([str(BIN / "kite-objdump"), "-h", "start.o.missing"], capture_output=True, text=True)
    assert broken.returncode == 1 and broken.stderr.count("\n") == 1 and "Traceback" not in broken.stderr

"""The binutils habits of issue 12: every kite-objdump, kite-nm and kite-ld flag a GNU user
types, --version on each tool, case-insensitive mnemonics with a "did you mean", and the
pseudo-instructions of isa.ALIASES printed by the disassembler.  GNU binutils is the reference
where it can read Kite32 files (objdump -s, nm)."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm import isa
from asm.assembler import assemble
from asm.cli_tools import ld_main, nm_main, objdump_main
from asm.diagnostics import AssemblyError
from asm.disasm import disassemble_word
from asm.elf import write_object

BIN = Path(sys.executable).parent
MAIN = """\
        .globl _start
        .type _start, @function
_start: li a0, 5
        call puts
        ret
        .size _start, . - _start
        .weak hook
        j hook
"""
LIB = """\
        .globl puts
puts:   mov a1, a0
        beqz a1, 1f
1:      ret
        .data
count:  .word 0x64636261
"""


@pytest.fixture
def built(tmp_path, monkeypatch):
    """main.o, lib.o and main.elf (linked at the default address) in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    for name, text in (("main", MAIN), ("lib", LIB)):
        Path(f"{name}.s").write_text(text)
        Path(f"{name}.o").write_bytes(write_object(assemble(text, f"{name}.s", {}, [])))
    assert _run(ld_main, ["-o", "main.elf", "main.o", "lib.o"]).exit_code == 0
    return tmp_path


def _run(command, args):
    return CliRunner().invoke(command, args)


# --- kite-objdump -------------------------------------------------------------------------------


def test_objdump_prints_pseudo_instructions_and_no_aliases_prints_real_ones(built):
    aliased = _run(objdump_main, ["-d", "main.elf"]).output
    raw = _run(objdump_main, ["-d", "-M", "no-aliases", "main.elf"]).output
    assert "\tret\n" in aliased and "\tmov a1, a0\n" in aliased and "\tbeqz a1, . + 4  #" in aliased
    assert "\tjalr zero, ra, 0\n" in raw and "\taddi a1, a0, 0\n" in raw and "\tbeq a1, zero, . + 4  #" in raw


def test_objdump_rejects_an_unknown_disassembler_option_with_a_usage_error(built):
    result = _run(objdump_main, ["-d", "-M", "intel", "main.elf"])
    assert result.exit_code == 2 and "unknown disassembler option 'intel' (known: no-aliases)" in result.output


def test_objdump_l_and_S_interleave_file_line_and_source(built):
    result = _run(objdump_main, ["-S", "-l", "main.elf"])
    assert result.exit_code == 0
    assert ("00100000 <_start>:\nmain.s:3\n        .globl _start\n        .type _start, @function\n"
            "_start: li a0, 5\n  100000:\t41000005\taddi a0, zero, 5\nmain.s:4\n        call puts\n") in result.output
    assert "lib.s:3\n        beqz a1, 1f\n" in result.output


def test_objdump_l_alone_with_d_names_lines_without_source(built):
    output = _run(objdump_main, ["-d", "-l", "main.o"]).output
    assert "\nmain.s:3\n       0:\t41000005\taddi a0, zero, 5\n" in output and "li a0, 5" not in output


def test_objdump_S_warns_once_when_the_source_is_missing_and_still_disassembles(built):
    Path("main.s").unlink()
    result = _run(objdump_main, ["-S", "main.elf"])
    assert result.exit_code == 0 and "100000:\t41000005" in result.stdout
    assert result.stderr == "kite-objdump: warning: cannot read source file 'main.s': No such file or directory\n"


def test_objdump_start_and_stop_address_limit_the_disassembly(built):
    output = _run(objdump_main, ["-d", "--start-address=0x100004", "--stop-address", "0x10000c", "main.elf"]).output
    words = [line.split(":")[0].strip() for line in output.splitlines() if line.startswith("  10")]
    assert words == ["100004", "100008"]


def test_objdump_D_disassembles_data_sections_too(built):
    output = _run(objdump_main, ["-D", "lib.o"]).output
    assert "Disassembly of section .data:" in output and "       0:\t64636261\t" in output
    assert "Disassembly of section .data:" not in _run(objdump_main, ["-d", "lib.o"]).output


def test_objdump_s_dumps_contents_as_gnu_objdump_does(built):
    ours = _run(objdump_main, ["-s", "main.elf"]).output
    assert "Contents of section .data:\n 101000 61626364                             abcd            \n" in ours
    if shutil.which("objdump"):
        gnu = subprocess.run(["objdump", "-s", "main.elf"], capture_output=True, text=True).stdout
        assert ours.split("\n", 3)[3] == gnu.split("\n", 3)[3]     # all but the file-format title


def test_objdump_s_honours_the_address_range(built):
    output = _run(objdump_main, ["-s", "--start-address=0x100004", "--stop-address=0x10000c", "main.elf"]).output
    assert "Contents of section .text:\n 100004 0a00a0 " not in output
    assert output.count("Contents of section") == 1 and " 100004 " in output


def test_objdump_x_shows_file_program_and_section_headers_symbols_and_relocations(built):
    image = _run(objdump_main, ["-x", "main.elf"]).output
    assert ("architecture: kite32, flags 0x00000112:\nEXEC_P, HAS_SYMS, D_PAGED\n"
            "start address 0x00100000\n") in image
    assert ("Program Header:\n    LOAD off    0x00001000 vaddr 0x00100000 paddr 0x00100000 align 2**12\n"
            "         filesz 0x0000001c memsz 0x0000001c flags r-x\n") in image
    assert "Sections:\n" in image and "SYMBOL TABLE:\n" in image
    obj = _run(objdump_main, ["-x", "main.o"]).output
    assert "flags 0x00000011:\nHAS_RELOC, HAS_SYMS\n" in obj and "Program Header" not in obj
    assert "RELOCATION RECORDS FOR [.text]:" in obj


def test_objdump_f_and_p_alone(built):
    assert "start address 0x00100000" in _run(objdump_main, ["-f", "main.elf"]).output
    assert "Sections:" not in _run(objdump_main, ["-p", "main.elf"]).output


# --- kite-nm ------------------------------------------------------------------------------------


def _nm(*args: str) -> str:
    result = _run(nm_main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_nm_g_lists_only_global_and_weak_symbols(built):
    assert _nm("-g", "lib.o") == "00000000 T puts\n"
    assert _nm("-g", "main.o") == "00000000 T _start\n         w hook\n         U puts\n"


def test_nm_u_lists_only_undefined_symbols(built):
    assert _nm("-u", "main.o") == "         w hook\n         U puts\n"


def test_nm_S_prints_sizes_of_defined_symbols_that_have_one(built):
    assert _nm("-S", "main.o") == "00000000 0000000c T _start\n         w hook\n         U puts\n"


def test_nm_A_names_the_file_on_every_line_instead_of_headers(built):
    assert _nm("-A", "-g", "main.o", "lib.o") == ("main.o:00000000 T _start\nmain.o:         w hook\n"
                                                  "main.o:         U puts\nlib.o:00000000 T puts\n")


def test_nm_P_is_the_posix_format(built):
    assert _nm("-P", "main.o") == "_start T 0 c\nhook w         \nputs U         \n"
    assert _nm("-P", "-A", "lib.o") == "lib.o: count d 0 \nlib.o: puts T 0 \n"
    assert _nm("-P", "main.o", "lib.o").startswith("main.o:\n_start T 0 c\n")


@pytest.mark.skipif(shutil.which("nm") is None, reason="GNU nm is not installed")
@pytest.mark.parametrize("flags", [[], ["-g"], ["-u"], ["-S"], ["-A"], ["-P"], ["-P", "-A"], ["-n", "-S"]])
def test_nm_agrees_with_gnu_nm(built, flags):
    files = ["main.o", "lib.o", "main.elf"]
    gnu = subprocess.run(["nm", *flags, *files], capture_output=True, text=True).stdout
    assert _nm(*flags, *files) == gnu


# --- kite-ld ------------------------------------------------------------------------------------


def test_ld_entry_long_and_short_options_set_the_entry_point(built):
    for option in ("-e", "--entry"):
        assert _run(ld_main, [option, "puts", "-o", "p.elf", "main.o", "lib.o"]).exit_code == 0
        assert Path("p.elf").read_bytes()[24:28] == (0x100010).to_bytes(4, "little")


def test_ld_entry_that_is_not_defined_fails(built):
    result = _run(ld_main, ["--entry", "nowhere", "-o", "p.elf", "main.o", "lib.o"])
    assert result.exit_code == 1 and "entry symbol 'nowhere' is not defined" in result.stderr


MAP = """
Memory Configuration

Name             Origin             Length             Attributes
*default*        0x00000000         0xffffffff

Linker script and memory map

Address of section .text set to 0x200000
LOAD main.o
LOAD lib.o

.text           0x00200000       0x1c
 load address 0x00100000
 .text          0x00200000       0x10 main.o
                0x00200000                _start
 .text          0x00200010        0xc lib.o
                0x00200010                puts

.data           0x00201000        0x4
 load address 0x00101000
 .data          0x00201000        0x4 lib.o
"""


def test_ld_map_file_shows_sections_pieces_and_symbols_in_gnu_ld_format(built):
    result = _run(ld_main, ["-Ttext", "0x200000", "--load-offset", "0x100000", "-Map", "k.map",
                            "-o", "k.elf", "main.o", "lib.o"])
    assert result.exit_code == 0, result.output
    text = Path("k.map").read_text()
    assert text.startswith(MAP)
    assert "\n.debug_line     0x00000000" in text and text.endswith("\nOUTPUT(k.elf elf32-kite32)\n")


def test_ld_map_file_may_not_overwrite_an_input(built):
    result = _run(ld_main, ["--Map", "main.o", "-o", "k.elf", "main.o", "lib.o"])
    assert result.exit_code == 1 and "output file 'main.o' would overwrite an input" in result.stderr


# --- --version -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool, command", [("kite-ld", ld_main), ("kite-objdump", objdump_main),
                                           ("kite-nm", nm_main)])
def test_version_is_the_fast_path_and_what_click_prints(tool, command):
    name = {"kite-ld": "ld_main", "kite-objdump": "objdump_main", "kite-nm": "nm_main"}[tool]
    script = (f"import sys; sys.argv = ['{tool}', '--version']; from asm.cli_tools import {name}; "
              f"code = {name}(); print(code, 'click' in sys.modules, 'elftools' in sys.modules)")
    fast = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    expected = f"{tool}, version {importlib.metadata.version('kite')}\n"
    assert fast == expected + "0 False False\n"
    assert _run(command, ["--version"]).output == expected
    installed = subprocess.run([str(BIN / tool), "--version"], capture_output=True, text=True)
    assert installed.stdout == expected and installed.returncode == 0


# --- the assembler: mnemonics ----------------------------------------------------------------------


def test_mnemonics_are_case_insensitive_registers_are_not():
    upper = assemble("ADDI a0, a0, 1\nRET\nLi t0, 0x12345\n", "u.s", {}, [])
    lower = assemble("addi a0, a0, 1\nret\nli t0, 0x12345\n", "l.s", {}, [])
    assert upper.section(".text").data == lower.section(".text").data
    with pytest.raises(AssemblyError, match="must be a register"):
        assemble("addi A0, a0, 1\n", "r.s", {}, [])


@pytest.mark.parametrize("source, message", [
    ("addd a0, a0, a1\n", "unknown mnemonic 'addd' (did you mean 'add'?)"),
    ("BRNE a0, a1, .\n", "unknown mnemonic 'BRNE' (did you mean 'bne'?)"),
    (".macro swap a, b\n.endm\nswop a0, a1\n", "unknown mnemonic 'swop' (did you mean 'swap'?)"),
    ("zzzzzz\n", "unknown mnemonic 'zzzzzz'\n"),
    (".wrod 1\n", "unknown directive '.wrod' (did you mean '.word'?)"),
])
def test_an_unknown_name_suggests_the_closest_known_one(source, message):
    with pytest.raises(AssemblyError) as caught:
        assemble(source, "x.s", {}, [])
    assert message in str(caught.value) + "\n"


# --- aliases: one table, both directions -----------------------------------------------------------


@pytest.mark.parametrize("alias", isa.ALIASES, ids=lambda a: a.mnemonic)
def test_every_alias_assembles_to_its_real_instruction_and_disassembles_as_itself(alias):
    operands = {"rd": "a1", "rs": "t2", "target": ". + 8"}
    text = f"{alias.mnemonic} " + ", ".join(operands[role] for role in alias.roles)
    word = int.from_bytes(assemble(text + "\n", "a.s", {}, []).section(".text").data, "little")
    decoded = isa.decode(word)
    assert decoded.insn.mnemonic == alias.real
    shown = disassemble_word(word, 0, aliases=True).split("  #")[0]
    assert shown == text.strip() or isa.alias_for(*decoded)[0] is not alias
    again = assemble(disassemble_word(word, 0, aliases=True) + "\n", "b.s", {}, []).section(".text").data
    assert int.from_bytes(again, "little") == word


def test_a_word_matching_several_aliases_prints_as_the_first_in_table_order():
    nop = isa.encode(isa.BY_MNEMONIC["addi"], {"rd": 0, "rs1": 0, "imm": 0})
    ret = isa.encode(isa.BY_MNEMONIC["jalr"], {"rd": 0, "rs1": isa.REG_RA, "imm": 0})
    assert disassemble_word(nop, 0, aliases=True) == "nop"       # not mov zero, zero
    assert disassemble_word(ret, 0, aliases=True) == "ret"       # not jr ra
    assert disassemble_word(ret, 0) == "jalr zero, ra, 0"

"""Pathological input to kite-as and kite-ld, found by fuzzing: each must end in a clear
diagnostic (`file:line:col: error: ...` where there is a line) with the documented exit
status, in bounded time and memory (docs/assembler.md "Limits").  The tools run as
subprocesses under a timeout and an address-space limit, so a regression fails instead of
hanging or eating the machine's memory."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from asm.assembler import assemble
from asm.diagnostics import AssemblyError

BIN = Path(sys.executable).parent
ADDRESS_SPACE = 1 << 30           # RLIMIT_AS: plenty for a normal run
TIMEOUT = 60                      # seconds; every case here ends in a few


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_tool(*args) -> subprocess.CompletedProcess:
    """A toolchain command, with the limits; fails the test if it hangs."""
    try:
        return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True,
                              timeout=TIMEOUT, preexec_fn=limited_memory, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args[0]} did not finish in {TIMEOUT} s")


def assemble_file(tmp_path: Path, source: str) -> tuple[Path, subprocess.CompletedProcess]:
    path = tmp_path / "p.s"
    path.write_text(source)
    return path, run_tool("kite-as", "-o", tmp_path / "p.o", path)


def one_error(path: Path, done: subprocess.CompletedProcess) -> str:
    """The message of the one error kite-as reported (exit 1, no traceback, no object)."""
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert done.returncode == 1
    heads = [line for line in done.stderr.splitlines() if line.startswith(f"{path}:")]
    assert len(heads) == 1, done.stderr[-600:]
    assert not (path.parent / "p.o").exists()
    return heads[0]


def values_of(source: str) -> bytes:
    return bytes(assemble(source, "p.s").section(".data").data)


# --- macro expansion: bounded work --------------------------------------------------------------


def test_macro_that_uses_itself_twice_stops_at_the_nesting_limit_once(tmp_path):
    # was: the 64-deep limit bounds depth, not breadth, so 2^64 expansions
    path, done = assemble_file(tmp_path, ".macro m\nm\nm\n.endm\nm\nnop\n")
    assert one_error(path, done) == f"{path}:5:1: error: macro expansion nested too deeply " \
                                    "(is 'm' recursive?) (in expansion of macro 'm' (64 levels))"


def test_counter_loop_of_a_macro_recursing_twice_stops_at_the_text_limit(tmp_path):
    # was: 2^30 expansions, the .if counter only ending each branch after 30 levels
    source = ".macro rep n\n.if \\n\nnop\nrep (\\n - 1)\nrep (\\n - 1)\n.endif\n.endm\nrep 30\n"
    path, done = assemble_file(tmp_path, source)
    assert one_error(path, done).startswith(
        f"{path}:8:1: error: macro expansions and included files make more than 1048576 characters "
        "of text in one assembly (in expansion of macro 'rep' (")


def test_macros_recursing_twice_with_tiny_bodies_stop_at_the_expansion_limit(tmp_path):
    # 2^17 expansions of 4 characters each: the count of expansions runs out before the text
    chain = "".join(f".macro m{i}\nm{i + 1}\nm{i + 1}\n.endm\n" for i in range(17))
    path, done = assemble_file(tmp_path, chain + ".macro m17\n.endm\nm0\n")
    error = one_error(path, done)
    assert error.startswith(f"{path}:71:1: error: more than 50000 macro expansions and included files "
                            "in one assembly (is a macro recursive?) (in expansion of macro 'm16', "
                            "from macro 'm15'")
    assert error.endswith(", from macro 'm1', from macro 'm0')")


def test_argument_that_doubles_at_each_level_stops_at_the_text_limit_in_bounded_memory(tmp_path):
    path, done = assemble_file(tmp_path, ".macro d a\nd \\a\\a\n.endm\nd x\n")
    assert "more than 1048576 characters of text" in one_error(path, done)


def test_file_that_includes_itself_twice_stops_at_the_nesting_limit_once(tmp_path):
    path = tmp_path / "p.s"
    path.write_text('.include "p.s"\n.include "p.s"\n')
    assert one_error(path, run_tool("kite-as", "-o", tmp_path / "p.o", path)) == \
        f"{path}:1:1: error: .include nested too deeply (does 'p.s' include itself?)"


def test_assembly_goes_on_after_an_abandoned_expansion(tmp_path):
    with pytest.raises(AssemblyError) as caught:
        assemble(".macro m\nm\n.endm\nm\nfrob\n", "p.s")
    assert [(d.line, d.message.split(" (")[0]) for d in caught.value.diagnostics] == \
        [(4, "macro expansion nested too deeply"), (5, "unknown mnemonic 'frob'")]


# --- tracebacks that were ----------------------------------------------------------------------


def test_include_of_a_file_name_too_long_for_the_system_is_a_diagnostic(tmp_path):
    name = "a" * 5000
    path, done = assemble_file(tmp_path, f'.include "{name}"\n')
    assert one_error(path, done) == f"{path}:1:1: error: cannot read '{name}': File name too long"


def test_include_name_with_a_control_character_is_escaped(tmp_path):
    path, done = assemble_file(tmp_path, '.include "a\\nb"\n')
    assert one_error(path, done).startswith(f"{path}:1:1: error: cannot find file 'a\\nb' (searched: ")


def test_bss_of_4_gib_is_refused_at_the_statement_that_passes_64_mib(tmp_path):
    path, done = assemble_file(tmp_path, ".bss\n" + ".space 0x4000000\n" * 64)
    assert one_error(path, done) == f"{path}:3:1: error: section '.bss' would hold more than 67108864 bytes"


def test_sections_with_contents_are_limited_together(tmp_path):
    source = ".data\n.space 0x3000000\n.section .rodata.big\n.space 0x3000000\n"
    path, done = assemble_file(tmp_path, source)
    assert one_error(path, done) == \
        f"{path}:4:1: error: the sections with contents would hold more than 67108864 bytes"


def test_expression_of_1000_terms_and_5000_parentheses_is_evaluated():
    assert values_of(".data\n.word " + " + ".join(["1"] * 1000) + "\n") == (1000).to_bytes(4, "little")
    assert values_of(".data\n.word " + "(" * 5000 + "7" + ")" * 5000 + "\n") == (7).to_bytes(4, "little")
    assert values_of(".data\n.word end - (start" + " + 1" * 2000 + ")\nstart: .space 2004\nend:\n")[:4] == \
        (4).to_bytes(4, "little")


def test_chain_of_5000_forward_equ_symbols_is_evaluated():
    chain = "".join(f".equ q{i}, q{i + 1} + 1\n" for i in range(5000))
    assert values_of(".data\nstart: .word q0\n" + chain + ".equ q5000, here - start - 4\nhere:\n") == \
        (5000).to_bytes(4, "little")


def test_symbol_defined_in_terms_of_itself_through_a_chain_is_an_error():
    with pytest.raises(AssemblyError) as caught:
        assemble(".data\n.word a\n.equ a, b + 1\n.equ b, c\n.equ c, a\n", "p.s")
    assert [d.message for d in caught.value.diagnostics] == ["symbol 'a' is defined in terms of itself"]


def test_hex_literal_of_3572_digits_is_a_diagnostic_at_the_literal(tmp_path):
    path, done = assemble_file(tmp_path, ".data\n.word 0x" + "F" * 3572 + "\n")
    assert one_error(path, done) == f"{path}:2:7: error: number 0xFFFFFFFFFF... (3574 characters) " \
                                    "does not fit in 32 bits (at most 0xFFFFFFFF)"


def test_ascii_string_of_5_mb_assembles_in_memory_linear_in_its_length(tmp_path):
    # was: about 450 bytes per character in the lexer's regular expression, MemoryError
    path, done = assemble_file(tmp_path, '.data\n.ascii "' + "ab\\n" * 1_250_000 + '"\n')
    assert done.returncode == 0, done.stderr[-600:]
    assert (tmp_path / "p.o").stat().st_size > 3_750_000


# --- inputs that never end -----------------------------------------------------------------------


def test_kite_as_of_dev_zero_is_refused_past_64_mib(tmp_path):
    done = run_tool("kite-as", "-o", tmp_path / "z.o", "/dev/zero")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == "kite-as: error: cannot read '/dev/zero': larger than the 64 MiB limit for an " \
                          "input file\n"


@pytest.mark.parametrize("tool, options", [("kite-ld", ["-o", "z.elf"]), ("kite-objdump", ["-d"]),
                                           ("kite-nm", [])])
def test_elf_tools_of_dev_zero_refuse_it_past_64_mib(tmp_path, tool, options):
    done = run_tool(tool, *[tmp_path / o if o.endswith(".elf") else o for o in options], "/dev/zero")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == f"{tool}: /dev/zero: cannot read: larger than the 64 MiB limit for an input file\n"

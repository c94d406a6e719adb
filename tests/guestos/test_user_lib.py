"""The user runtime library and the single-process user programs on the
stand-in kernel of harness.s (bare machine, kernel mode, no paging): what
can be checked without guestos/kernel.

The library checks are differential: a generated main() prints values with
print_dec, print_hex, print_char and strlen, and the transcript must equal
Python's formatting of the same values."""

from __future__ import annotations

import random

import pytest

from kite.build import GUESTOS
from tests.guestos.userharness import (ECHO_INPUT, build_on_harness, expected_output, run_on_harness,
                                      sources_of)

LIBRARY = sorted((GUESTOS / "user" / "lib").glob("*.s"))
EDGE_VALUES = [0, 1, -1, 9, 10, -10, 99, 100, 12345, -12345, 0x7FFFFFFF, -0x80000000, 0x0000002A,
               -0x21524111]   # the last is 0xDEADBEEF
RANDOM = random.Random(7)
VALUES = EDGE_VALUES + [RANDOM.randrange(-2**31, 2**31) for _ in range(40)]
STRINGS = ["", "a", "hello, world", "x" * 300]
SENTINEL = 77   # wait's status word before a failed wait: must stay 77


def call(function: str, *arguments: int | str) -> str:
    """Assembly lines calling `function` with constant (or label) arguments."""
    loads = "".join(f"        li      a{index}, {value}\n" if isinstance(value, int) else
                    f"        la      a{index}, {value}\n" for index, value in enumerate(arguments))
    return loads + f"        call    {function}\n"


def library_check_source() -> str:
    """main(): every VALUES as print_dec then print_hex, every STRINGS' strlen,
    then wait(-1, &word) and the word, one item per line; returns 0."""
    body = []
    for value in VALUES:
        body += [call("print_dec", value), call("print_char", ord(" ")), call("print_hex", value),
                 call("print_char", ord("\n"))]
    for index in range(len(STRINGS)):
        body += [call("strlen", f"string{index}"), call("print_dec"), call("print_char", ord("\n"))]
    body += [call("wait", -1, "word"), call("print_dec"), call("print_char", ord(" ")),
             "        la      a0, word\n        lw      a0, 0(a0)\n", call("print_dec"),
             call("print_char", ord("\n"))]
    strings = "".join(f'string{index}: .asciz "{text}"\n' for index, text in enumerate(STRINGS))
    return ("        .text\n        .globl main\nmain:\n        push    ra\n" + "".join(body) +
            "        li      a0, 0\n        pop     ra\n        ret\n"
            f"        .data\n        .balign 4\nword:   .word   {SENTINEL}\n        .rodata\n{strings}")


def library_check_expected() -> str:
    """What library_check_source's main must print."""
    lines = [f"{value} 0x{value & 0xFFFFFFFF:08x}" for value in VALUES]
    lines += [str(len(text)) for text in STRINGS]
    lines.append(f"-10 {SENTINEL}")   # -ECHILD from the harness; the status word untouched
    return "".join(line + "\n" for line in lines)


def test_print_dec_print_hex_strlen_and_wait_agree_with_python(tmp_path):
    image = build_on_harness(LIBRARY, tmp_path, {"check.s": library_check_source()})
    run = run_on_harness(image)
    assert run.output == library_check_expected(), run.stderr
    assert run.exit_code == 0


@pytest.mark.parametrize("program, input_text", [
    ("user-hello", ""), ("user-fib", ""), ("user-sort", ""), ("user-sieve", ""), ("user-matmul", ""),
    ("user-crc", ""), ("user-nullcall", ""), ("user-pagestress", ""),
    ("user-echo", ECHO_INPUT)])
def test_single_process_program_prints_its_golden_output_on_the_harness(program, input_text, tmp_path):
    run = run_on_harness(build_on_harness(sources_of(program), tmp_path), input_text)
    assert run.output == expected_output(program), run.stderr
    assert run.exit_code == 0


def test_spawning_program_reports_failed_spawn_and_exits_1_on_the_harness(tmp_path):
    run = run_on_harness(build_on_harness(sources_of("user-spawnstorm"), tmp_path))
    assert run.output == "spawnstorm: spawn failed\n"
    assert run.exit_code == 1

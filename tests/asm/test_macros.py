"""The macro language of docs/assembler.md "Macros": a parameter is substituted anywhere in a
body line (the mnemonic, a label, a string), other backslashes are left for the escapes of
literals, bodies are text until used, and errors in expansions name the macros once.
(Encodings of expansions are in testdata/isa_macros.s, errors in testdata/err_macros.s.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asm import isa
from asm.assembler import assemble
from asm.diagnostics import AssemblyError

DOC = Path(__file__).resolve().parents[2] / "docs" / "assembler.md"


def data_of(source: str) -> bytes:
    return bytes(assemble(source, "m.s").section(".data").data)


def errors_of(source: str) -> list[str]:
    with pytest.raises(AssemblyError) as caught:
        assemble(source, "m.s")
    return [d.message for d in caught.value.diagnostics]


def test_parameter_in_a_string_is_substituted_not_read_as_an_escape():
    assert data_of('.macro say label\n.ascii "\\label"\n.endm\n.data\nsay hello\n') == b"hello"


def test_escape_in_a_character_literal_works_when_no_parameter_has_its_name():
    assert data_of(".macro nl x\n.byte '\\n', \\x\n.endm\n.data\nnl 5\n") == b"\n\x05"


def test_parameter_named_like_an_escape_letter_wins_in_a_literal():
    assert data_of(".macro ch n\n.byte '\\n'\n.endm\n.data\nch 7\n") == b"7"


def test_a_backslash_pair_in_a_string_is_kept_whatever_the_parameters():
    assert data_of('.macro s n\n.ascii "\\\\n", "\\n"\n.endm\n.data\ns x\n') == b"\\nx"


def test_nested_definition_uses_its_own_parameters_and_the_outer_ones():
    source = ".macro outer name, base\n.macro \\name x\n.word \\base + \\x\n.endm\n.endm\n" \
             "outer plus, 5\n.data\nplus 3\n"
    assert data_of(source) == (8).to_bytes(4, "little")


def test_conditionals_in_a_body_do_not_pair_with_those_around_the_definition():
    source = ".if 0\n.macro m\n.endif\n.endm\n.endif\n.data\n.byte 1\n"
    assert data_of(source) == b"\x01"


def test_error_in_a_macro_used_by_a_macro_names_both_once():
    source = ".macro inc r\naddi \\r, \\r, 200000\n.endm\n.macro twice r\ninc \\r\n.endm\ntwice t0\n"
    assert errors_of(source) == ["immediate 200000 out of range [-131072, 131071] "
                                 "(in expansion of macro 'inc', from macro 'twice')"]


def test_recursion_error_names_the_macro_once_with_its_depth():
    assert errors_of(".macro forever\nforever\n.endm\nforever\n") == [
        "macro expansion nested too deeply (is 'forever' recursive?) "
        "(in expansion of macro 'forever' (64 levels))"]


def test_the_docs_macro_example_assembles_to_what_its_comments_say():
    section = DOC.read_text().split("### Macros", 1)[1]
    example = re.search(r"```\n(.*?)```", section, re.S).group(1)
    obj = assemble(example, "doc.s")
    text = obj.section(".text").data
    words = [isa.decode(int.from_bytes(text[i:i + 4], "little")) for i in range(0, len(text), 4)]
    assert [(w.insn.mnemonic, w.operands["rd"], w.operands["imm"]) for w in words[:4]] == \
        [("addi", 8, 1), ("addi", 9, 8), ("addi", 10, 2), ("addi", 4, 1)]
    label = next(s for s in obj.symbols if s.name == "hello_msg")
    assert bytes(text[label.value:label.value + 7]) == b"hello\n\0"


def test_arguments_split_only_at_commas_the_grammar_sees_outside_literals_and_parentheses():
    """Macro arguments are split with the grammar's own terminals (asm.parser.split_operands):
    a comma in a string, in a character literal or inside parentheses stays in its argument."""
    source = (".macro pair a, b\n.data\n.ascii \\a\n.byte \\b\n.endm\n"
              'pair "x,y", \',\'\n'
              "pair \"#\", (1 + 2) * 3   # comment, not an argument\n")
    assert data_of(source) == b"x,y," + b"#\x09"

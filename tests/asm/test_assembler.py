"""The assembler's stages and public API: parse, lower, layout, encode, and
assemble() with its diagnostics, includes, defines, macros and relocations."""

from __future__ import annotations

import random

import pytest

from asm import isa
from asm.assembler import assemble
from asm.diagnostics import AssemblyError, Diagnostic
from asm.encoder import encode, layout
from asm.lower import lower, split_operands
from asm.objfile import STB_GLOBAL, STB_LOCAL
from asm.parser import parse


def words(obj, section=".text"):
    data = obj.section(section).data
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def errors_of(source, **kwargs) -> list[Diagnostic]:
    with pytest.raises(AssemblyError) as caught:
        assemble(source, "t.s", **kwargs)
    return caught.value.diagnostics


# --- stages ---------------------------------------------------------------------------------------

def test_parse_gives_statements_with_labels_operands_lines_and_columns():
    statements, errors = parse("\n# comment\nloop: lw a0, 8(sp)  # load\n  .word 1 + 2 * 3, 'A'\n")
    assert errors == []
    first, second = statements
    assert (first.line, first.labels, first.name, first.name_col) == (3, [("loop", 1)], "lw", 7)
    assert first.operands == ["a0", ("mem", 8, "sp")]
    assert second.operands == [("bin", "+", 1, ("bin", "*", 2, 3)), 65]


def test_parse_reports_every_bad_line_with_its_column():
    statements, errors = parse("nop\nadd a0,, a1\nnop\nli a0, ?\n")
    assert [s.line for s in statements] == [1, 3]
    assert [(e.line, e.col) for e in errors] == [(2, 8), (4, 8)]
    assert errors[0].message == "syntax error: unexpected ','"
    assert errors[1].message == "syntax error: unexpected character '?'"


def test_lower_expands_pseudo_instructions_into_instructions():
    statements, _ = parse("push a0\nli t0, 0x12345678\n")
    program, errors = lower(statements, "push a0\nli t0, 0x12345678\n")
    assert errors == []
    items = program.sections[".text"].items
    assert [i.insn.mnemonic for i in items] == ["addi", "sw", "lui", "ori"]
    assert items[2].xexpr == ("hi", 0x12345678)


def test_layout_places_items_and_sets_label_values():
    text = ".data\n.byte 1\n.align 2\nx: .word 5\n"
    program, _ = lower(parse(text)[0], text)
    places = layout(program)
    assert places.offsets[".data"] == [0, 1, 4, 4]
    assert places.sizes[".data"] == 8
    assert program.symbols["x"].value == 4


def test_encode_leaves_unknown_values_as_zero_with_a_fixup():
    text = "beq a0, a1, later\nlater: nop\n"
    program, _ = lower(parse(text)[0], text)
    encoded = encode(program, layout(program))
    assert encoded.contents[".text"][:4] == (0x22 << 26 | 4 << 22 | 5 << 18).to_bytes(4, "little")
    assert [(f.offset, f.role, f.expr) for f in encoded.fixups] == [(0, "target", "later")]


# --- assemble(): results ---------------------------------------------------------------------------

def test_forward_branch_in_the_same_section_is_resolved_without_relocation():
    obj = assemble("beq a0, a1, done\nnop\ndone: ret\n")
    assert words(obj)[0] & 0x3FFFF == 2
    assert obj.relocations == []


def test_branch_to_undefined_symbol_becomes_a_branch18_relocation():
    obj = assemble("nop\nbne a0, zero, elsewhere\n")
    (reloc,) = obj.relocations
    assert (reloc.r_offset, reloc.r_type, reloc.symbol, reloc.r_addend) == \
        (4, isa.R_KITE_BRANCH18, "elsewhere", 0)
    assert [(s.name, s.section, s.binding) for s in obj.symbols] == [("elsewhere", None, STB_GLOBAL)]


def test_reference_to_local_label_in_other_section_uses_the_section_symbol_with_addend():
    obj = assemble(".data\n.word 0\nvalue: .word 1\n.text\nla a0, value + 4\n")
    assert [(r.r_type, r.symbol, r.r_addend) for r in obj.relocations] == \
        [(isa.R_KITE_HI20, ".data", 8), (isa.R_KITE_LO12, ".data", 8)]


def test_numeric_local_labels_resolve_to_nearest_and_stay_out_of_the_symbol_table():
    obj = assemble("1: nop\n1: beq a0, a0, 1b\nbne a0, a0, 1f\n1: j 1b\n")
    assert [w & 0x3FFFF for w in words(obj)[1:3]] == [0, 1]
    assert obj.symbols == []


def test_li_of_a_constant_defined_later_uses_the_two_word_form():
    assert len(words(assemble("li a0, N\n.equ N, 1\n"))) == 2
    assert len(words(assemble(".equ N, 1\nli a0, N\n"))) == 1


def test_defines_are_visible_to_ifdef_if_and_expressions():
    source = ".ifdef DEBUG\naddi a0, zero, LEVEL\n.else\nhalt\n.endif\n"
    assert words(assemble(source, defines={"DEBUG": 1, "LEVEL": 3})) == [0x41000003]
    assert words(assemble(source)) == [0x33 << 26]


def test_macros_substitute_arguments_and_defaults_and_may_nest():
    source = (".macro inc r, n=1\naddi \\r, \\r, \\n\n.endm\n"
              ".macro twice r\ninc \\r\ninc \\r, 2\n.endm\ntwice t0\n")
    assert [w & 0x3FFFF for w in words(assemble(source))] == [1, 2]


def test_recursive_macro_is_an_error_not_a_crash():
    diagnostics = errors_of(".macro forever\nforever\n.endm\nforever\n")
    assert diagnostics[0].line == 4 and "nested too deeply" in diagnostics[0].message


def test_include_and_incbin_search_the_source_directory_then_include_dirs(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "consts.s").write_text(".equ SEVEN, 7\n")
    (tmp_path / "blob.bin").write_bytes(b"\x01\x02\x03")
    main = tmp_path / "main.s"
    main.write_text('.include "consts.s"\naddi a0, zero, SEVEN\n.data\n.incbin "blob.bin"\n')
    obj = assemble(main.read_text(), str(main), include_dirs=[str(tmp_path / "inc")])
    assert words(obj) == [0x41000007]
    assert bytes(obj.section(".data").data) == b"\x01\x02\x03"


def test_error_in_included_file_names_that_file(tmp_path):
    (tmp_path / "bad.s").write_text("nop\nfrob\n")
    main = tmp_path / "main.s"
    main.write_text('.include "bad.s"\n')
    with pytest.raises(AssemblyError) as caught:
        assemble(main.read_text(), str(main))
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.filename, diagnostic.line) == (str(tmp_path / "bad.s"), 2)


def test_globl_makes_a_label_global_and_others_stay_local():
    obj = assemble(".globl main\nmain: nop\nhelper: ret\n")
    assert [(s.name, s.binding) for s in obj.symbols] == [("main", STB_GLOBAL), ("helper", STB_LOCAL)]


# --- assemble(): diagnostics ------------------------------------------------------------------------

def test_all_errors_of_a_file_are_reported_together_in_line_order():
    diagnostics = errors_of("frob\nnop\naddi a0, a0, 200000\nadd a0,,\nfoo: nop\nfoo: nop\n")
    assert [d.line for d in diagnostics] == [1, 3, 4, 6]


def test_error_renders_file_line_col_source_line_and_caret():
    error = AssemblyError([Diagnostic("t.s", 2, 5, "unknown mnemonic 'frob'", "    frob a0")])
    assert str(error) == "t.s:2:5: error: unknown mnemonic 'frob'\n    frob a0\n    ^"


def test_la_of_an_undefined_local_symbol_is_reported_once():
    (diagnostic,) = errors_of(".local foo\nla a0, foo\n")
    assert diagnostic.message == "undefined symbol 'foo' (declared .local)"


def test_long_source_line_is_shown_as_the_part_around_the_column():
    error = Diagnostic("t.s", 1, 1001, "bad", "x" * 1000 + "?" + "y" * 1000)
    _, shown, caret = str(AssemblyError([error])).split("\n")
    assert shown == "..." + "x" * 80 + "?" + "y" * 79 + "..."
    assert caret == " " * 83 + "^"


def test_bad_operand_error_points_at_the_operand():
    (diagnostic,) = errors_of("    add a0, a1, 5\n")
    assert diagnostic.col == 17 and "got '5'" in diagnostic.message


def test_missing_include_names_the_file():
    (diagnostic,) = errors_of('.include "nowhere.inc"\n')
    assert "cannot find file 'nowhere.inc'" in diagnostic.message


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_give_errors_not_a_crash(seed):
    data = random.Random(seed).randbytes(2000)
    with pytest.raises(AssemblyError) as caught:
        assemble(data.decode("latin-1"), "random.s")
    assert caught.value.diagnostics
    assert all(d.filename == "random.s" and d.line >= 1 for d in caught.value.diagnostics)


def test_split_operands_respects_parentheses_strings_and_comments():
    assert split_operands(" a0, 8(sp), \"x,y\", 'c' # c, d") == \
        [(1, "a0"), (5, "8(sp)"), (12, '"x,y"'), (19, "'c'")]


def test_section_with_note_type_becomes_sht_note_and_keeps_its_bytes():
    from asm.objfile import SHT_NOTE
    obj = assemble('.section .note.Kite, "", @note\n.word 5, 4, 1\n.ascii "Kite\\0\\0\\0\\0"\n.word 1\n')
    note = obj.section(".note.Kite")
    assert note.sh_type == SHT_NOTE and note.sh_flags == 0
    assert bytes(note.data) == bytes.fromhex("05000000" "04000000" "01000000") + b"Kite\0\0\0\0" + b"\1\0\0\0"

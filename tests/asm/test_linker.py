"""asm.linker: symbol resolution, section merging, placement, relocation recipes, segments."""

from __future__ import annotations

import io

import pytest
from elftools.elf.elffile import ELFFile

from asm import isa
from asm.elf import ElfFormatError, write_object
from asm.linker import (
    LayoutError, LinkError, LinkOptions, apply_layout, link, link_files, link_with_warnings,
)
from asm.objfile import STT_OBJECT, Relocation
from tests.asm.helpers import (
    assemble, bss, data, enc, glob, lib_object, local, obj, rodata, start_object, text, undef, weak,
    word_at,
)


class Image:
    """A linked image read back through pyelftools."""

    def __init__(self, content: bytes):
        self.elf = ELFFile(io.BytesIO(content))

    def section(self, name: str):
        return self.elf.get_section_by_name(name)

    def addr(self, name: str) -> int:
        return self.section(name)["sh_addr"]

    def symbol(self, name: str) -> int:
        return self.section(".symtab").get_symbol_by_name(name)[0]["st_value"]

    def word(self, section: str, offset: int) -> int:
        return word_at(self.section(section).data(), offset)

    def loads(self) -> list[tuple[int, int, int, int, int]]:
        """(p_vaddr, p_paddr, p_filesz, p_memsz, p_flags) of each PT_LOAD."""
        return [(s["p_vaddr"], s["p_paddr"], s["p_filesz"], s["p_memsz"], s["p_flags"])
                for s in self.elf.iter_segments() if s["p_type"] == "PT_LOAD"]


def _link(*objects, **options) -> Image:
    return Image(link(list(objects), LinkOptions(**options)))


def _errors(*objects, **options) -> list[str]:
    with pytest.raises(LinkError) as caught:
        link(list(objects), LinkOptions(**options))
    return caught.value.messages


def _operand(word: int, role: str, mnemonic: str) -> int:
    return isa.decode(word).operands[role] if isa.decode(word).insn.mnemonic == mnemonic else None


# --- the default link ------------------------------------------------------------------------


def test_default_link_places_text_rodata_data_bss_on_their_own_pages_from_0x100000():
    image = _link(start_object(), lib_object())
    assert [(s.name, s["sh_addr"], s["sh_size"]) for s in image.elf.iter_sections()][1:5] == [
        (".text", 0x100000, 28), (".rodata", 0x101000, 8), (".data", 0x102000, 8), (".bss", 0x102008, 16)]
    assert image.elf["e_entry"] == 0x100000


def test_relocations_are_applied_with_the_isa_formulas():
    image = _link(start_object(), lib_object())
    assert image.symbol("puts") == 0x100018 and image.symbol("msg") == 0x101000
    assert _operand(image.word(".text", 4), "target", "jal") == (0x100018 - 0x100004) // 4
    assert _operand(image.word(".text", 8), "imm", "lui") == 0x102004 >> 12       # %hi(.data+4)
    assert _operand(image.word(".text", 12), "imm", "ori") == 0x102004 & 0xFFF    # %lo(.data+4)
    assert _operand(image.word(".text", 16), "imm", "lui") == 0x101               # %hi(msg)
    assert image.word(".data", 0) == 0x101000                                     # .word msg


def test_one_pt_load_per_permission_class_with_bss_only_in_memory():
    image = _link(start_object(), lib_object())
    assert image.loads() == [(0x100000, 0x100000, 28, 28, 5), (0x101000, 0x101000, 8, 8, 4),
                             (0x102000, 0x102000, 8, 24, 6)]


def test_image_symbols_keep_locals_and_absolute_values():
    image = _link(start_object(), lib_object())
    assert image.symbol("after_call") == 0x100008
    assert image.symbol("LIMIT") == 0x1234
    assert image.symbol("table") == 0x102000


def test_machine_loader_accepts_the_image_and_starts_at_the_physical_entry(tmp_path):
    from vmm.machine.loader import read_image
    path = tmp_path / "k.elf"
    path.write_bytes(link([start_object(), lib_object()],
                          LinkOptions(text_address=0xC0100000, load_offset=0xC0000000)))
    kernel = read_image(str(path), 16 << 20)
    assert (kernel.entry_vaddr, kernel.entry_paddr) == (0xC0100000, 0x100000)
    assert [seg.p_paddr for seg in kernel.segments] == [0x100000, 0x101000, 0x102000]
    assert kernel.symbols(0xC0100014) == "after_call+0xc"


# --- symbol resolution ------------------------------------------------------------------------


def _caller(name: str, target: str) -> object:
    """An object whose .text is one `jal ra, target` and a .data word holding `target`."""
    return obj(name, [text(enc("jal", rd=1, target=0)), data(bytes(4))], [undef(target)],
               [Relocation(".text", 0, isa.R_KITE_JUMP22, target), Relocation(".data", 0, isa.R_KITE_32, target)])


def test_global_definition_overrides_a_weak_one_in_either_order():
    weak_def = obj("weak.o", [text(enc("halt"))], [weak("f")])
    strong = obj("strong.o", [text(enc("halt"))], [glob("f")])
    for order in ([weak_def, strong], [strong, weak_def]):
        image = _link(_caller("main.o", "f"), *order, entry="f")
        expected = 0x100004 if order[0] is strong else 0x100008
        assert image.symbol("f") == expected and image.word(".data", 0) == expected


def test_first_weak_definition_wins_among_weaks():
    image = _link(_caller("main.o", "f"), obj("w1.o", [text(enc("halt"))], [weak("f")]),
                  obj("w2.o", [text(enc("halt"))], [weak("f")]), entry="f")
    assert image.word(".data", 0) == 0x100004


def test_undefined_weak_reference_resolves_to_zero():
    caller = obj("main.o", [text(enc("halt")), data(bytes(4))], [glob("_start"), weak("maybe", section=None)],
                 [Relocation(".data", 0, isa.R_KITE_32, "maybe", 8)])
    assert _link(caller).word(".data", 0) == 8


def test_local_symbols_do_not_resolve_across_objects():
    definer = obj("a.o", [text(enc("halt"))], [local("helper"), glob("_start")])
    messages = _errors(definer, _caller("b.o", "helper"))
    assert messages == ["b.o: undefined symbol 'helper' (referenced from .text+0x0)"]


def test_local_symbol_wins_over_a_global_of_the_same_name_in_its_own_object():
    own = obj("a.o", [text(enc("halt"), enc("halt")), data(bytes(4))], [local("f", 4), glob("_start")],
              [Relocation(".data", 0, isa.R_KITE_32, "f")])
    other = obj("b.o", [text(enc("halt"))], [glob("f")])
    assert _link(own, other).word(".data", 0) == 0x100004


def test_all_undefined_and_duplicate_symbols_are_reported_together_naming_the_objects():
    one = obj("a.o", [text(enc("halt"))], [glob("_start"), glob("x")])
    two = obj("b.o", [text(enc("halt"))], [glob("x")])
    messages = _errors(one, two, _caller("c.o", "foo"), _caller("d.o", "bar"))
    assert messages == ["duplicate symbol 'x' in a.o and b.o",
                        "c.o: undefined symbol 'foo' (referenced from .text+0x0)",
                        "d.o: undefined symbol 'bar' (referenced from .text+0x0)"]


# --- merging and placement --------------------------------------------------------------------


def test_same_named_sections_concatenate_in_command_line_order_each_aligned():
    first = obj("a.o", [data(b"abcdef", align=1)], [glob("_start", 0, ".data")])
    second = obj("b.o", [data(b"XY", align=8)], [glob("second", 0, ".data", STT_OBJECT)])
    image = _link(first, second)
    assert image.section(".data").data() == b"abcdef\0\0XY"
    assert image.symbol("second") == image.addr(".data") + 8
    assert image.section(".data")["sh_addralign"] == 8


def test_named_sections_follow_the_standard_ones_grouped_by_permission():
    item = obj("a.o", [data(b"d" * 4, name=".mydata"), text(enc("halt"), name=".init"), bss(4),
                       rodata(b"r" * 4, name=".consts"), text(enc("halt"))], [glob("_start")])
    image = _link(item)
    names = [s.name for s in image.elf.iter_sections() if s["sh_flags"] & 2]
    assert names == [".text", ".bss", ".init", ".consts", ".mydata"]
    assert image.addr(".init") % 0x1000 == 0 and image.addr(".consts") % 0x1000 == 0


def test_ttext_and_section_start_place_sections_and_the_rest_follow():
    image = _link(start_object(), lib_object(), text_address=0x200000, section_starts={".data": 0x300000})
    assert (image.addr(".text"), image.addr(".rodata"), image.addr(".data"), image.addr(".bss")) == \
        (0x200000, 0x201000, 0x300000, 0x300008)


def test_load_offset_keeps_virtual_addresses_and_lowers_physical_ones():
    image = _link(start_object(), lib_object(), text_address=0xC0100000, load_offset=0xC0000000)
    assert [(v, p) for v, p, *_ in image.loads()] == [(0xC0100000, 0x100000), (0xC0101000, 0x101000),
                                                      (0xC0102000, 0x102000)]
    assert image.symbol("puts") == 0xC0100018


def test_layout_file_sets_addresses_load_address_and_entry():
    layout = """
entry = "puts"
[load]
at = 0x00100000
[[section]]
name = ".text"
vma = 0xC0100000
[[section]]
name = ".data"
vma = 0xC0200000
at = 0x00300000
"""
    options = apply_layout(LinkOptions(), layout, "kernel.toml")
    image = Image(link([start_object(), lib_object()], options))
    assert [(v, p) for v, p, *_ in image.loads()] == [(0xC0100000, 0x100000), (0xC0101000, 0x101000),
                                                      (0xC0200000, 0x300000)]
    assert image.elf["e_entry"] == 0xC0100018


@pytest.mark.parametrize("layout, message", [
    ("sections = 1", "kernel.toml: unknown key 'sections'"),
    ("[load]\noffset = -1", "kernel.toml: [load] offset must be an address"),
    ("[[section]]\nvma = 0x1000", "kernel.toml: [[section]] #1: 'name' (a section name) is required"),
    ("[[section]]\nname = '.text'\nwhere = 1", "kernel.toml: [[section]] #1: unknown key 'where'"),
    ("entry = 5", "kernel.toml: 'entry' must be a symbol name"),
    ("[load\n", "kernel.toml: "),
])
def test_bad_layout_files_are_reported_with_the_file_name(layout, message):
    with pytest.raises(LayoutError) as caught:
        apply_layout(LinkOptions(), layout, "kernel.toml")
    assert str(caught.value).startswith(message)


def test_overlapping_sections_are_an_error():
    messages = _errors(start_object(), lib_object(), section_starts={".rodata": 0x100010})
    assert messages == ["sections .text [0x00100000, 0x0010001c) and .rodata [0x00100010, ...) overlap"]


# --- entry point -------------------------------------------------------------------------------


def test_missing_explicit_entry_is_an_error():
    assert _errors(start_object(), lib_object(), entry="kmain") == [
        "entry symbol 'kmain' is not defined (by a global symbol)"]


def test_missing_start_falls_back_to_text_with_a_warning():
    result = link_with_warnings([lib_object()], LinkOptions())
    assert Image(result.image).elf["e_entry"] == 0x100000
    assert result.warnings == ["warning: cannot find entry symbol '_start'; defaulting to 0x00100000"]


# --- relocation recipes and range checks ------------------------------------------------------


def _patched_word(r_type: int, target_value: int, addend: int = 0, code: bytes = bytes(4)) -> int:
    """The first word of .text after applying one relocation at offset 0 against an absolute symbol."""
    item = obj("r.o", [text(code)], [glob("_start"), glob("T", target_value, "*ABS*")],
               [Relocation(".text", 0, r_type, "T", addend)])
    return _link(item).word(".text", 0)


@pytest.mark.parametrize("r_type, value, addend, code, expected", [
    (isa.R_KITE_32, 0xDEADBEE0, 0xF, bytes(4), 0xDEADBEEF),
    (isa.R_KITE_HI20, 0x12345678, 0, enc("lui", rd=8, imm=0), 0x12345 | isa.encode(isa.BY_MNEMONIC["lui"], {"rd": 8, "imm": 0})),
    (isa.R_KITE_LO12, 0x12345678, 0, enc("ori", rd=8, rs1=8, imm=0), 0x678 | word_at(enc("ori", rd=8, rs1=8, imm=0), 0)),
    (isa.R_KITE_BRANCH18, 0x100000 - 8, 0, enc("beq", rs1=1, rs2=2, target=0), word_at(enc("beq", rs1=1, rs2=2, target=-2), 0)),
    (isa.R_KITE_JUMP22, 0x100040, -4, enc("jal", rd=1, target=0), word_at(enc("jal", rd=1, target=15), 0)),
    (isa.R_KITE_16, 0xBEEF, 0, b"\0\0\x11\x22", 0x2211BEEF),
    (isa.R_KITE_8, 0x7F, 1, b"\0\x11\x22\x33", 0x33221180),
])
def test_each_relocation_type_patches_only_its_field(r_type, value, addend, code, expected):
    assert _patched_word(r_type, value, addend, code) == expected


@pytest.mark.parametrize("r_type, value, addend, problem", [
    (isa.R_KITE_BRANCH18, 0x100004 + (1 << 19), 0, "displacement 524288 bytes out of range [-524288, 524284]"),
    (isa.R_KITE_BRANCH18, 0x100006, 0, "displacement 2 is not a multiple of 4"),
    (isa.R_KITE_JUMP22, 0x100004 - (1 << 23) - 4, 0, "displacement -8388612 bytes out of range"),
    (isa.R_KITE_16, 0x10000, 0, "S + A = 0x10000 does not fit in 16 bits"),
    (isa.R_KITE_8, 0, -129, "S + A = -0x81 does not fit in 8 bits"),
])
def test_out_of_range_relocations_name_object_section_offset_and_symbol(r_type, value, addend, problem):
    item = obj("r.o", [text(enc("halt"), bytes(4))], [glob("_start"), glob("T", value, "*ABS*")],
               [Relocation(".text", 4, r_type, "T", addend)])
    (message,) = _errors(item)
    assert message.startswith(f"r.o: .text+0x4: {isa.RELOC_NAMES[r_type]} against 'T' out of range: {problem}")


@pytest.mark.parametrize("r_type, code, expected", [
    (isa.R_KITE_32, bytes(4), 0x00100000),
    (isa.R_KITE_HI20, enc("lui", rd=8, imm=0), word_at(enc("lui", rd=8, imm=0x100), 0)),
    (isa.R_KITE_LO12, enc("ori", rd=8, rs1=8, imm=0), word_at(enc("ori", rd=8, rs1=8, imm=0), 0)),
])
def test_32_bit_relocations_take_s_plus_a_modulo_2_to_the_32(r_type, code, expected):
    # S = 0xC0100000, A = 0x40000000 (the assembler's -0xC0000000): S + A = 0x100100000
    assert _patched_word(r_type, 0xC0100000, 0x40000000, code) == expected


def test_la_of_a_high_symbol_minus_its_offset_links_at_its_load_address():
    source = ".globl _start\n_start:\n    la t0, _start - 0xC0000000\n    halt\n"
    image = _link(assemble(source, "high.s"), text_address=0xC0100000, load_offset=0xC0000000)
    lui, ori = isa.decode(image.word(".text", 0)), isa.decode(image.word(".text", 4))
    assert (lui.operands["imm"] << 12) | ori.operands["imm"] == 0x00100000


def test_relocation_past_the_end_of_its_section_is_an_error():
    item = obj("r.o", [text(enc("halt"))], [glob("_start")], [Relocation(".text", 2, isa.R_KITE_32, "_start")])
    assert _errors(item) == ["r.o: .text+0x2: relocation against '_start' outside the section's contents"]


def test_unknown_relocation_type_is_an_error():
    item = obj("r.o", [text(enc("halt"))], [glob("_start")], [Relocation(".text", 0, 99, "_start")])
    assert _errors(item) == ["r.o: .text+0x0: unknown relocation type 99 against '_start'"]


def test_names_from_a_damaged_object_are_escaped_in_every_message():
    name = "a\nb\x1b[2J"
    section = ".te\nxt"
    first = obj("bad.o", [text(bytes(4), name=section)], [glob(name, 0, section), glob("_start", 0, section)],
                [Relocation(section, 0, isa.R_KITE_32, name + "?")])
    second = obj("dup.o", [text(bytes(4))], [glob(name)])
    assert _errors(first, second) == [
        "duplicate symbol 'a\\nb\\x1b[2J' in bad.o and dup.o",
        "bad.o: undefined symbol 'a\\nb\\x1b[2J?' (referenced from .te\\nxt+0x0)",
    ]


def test_nobits_piece_of_4_gib_in_a_section_with_contents_is_an_error_not_a_fill():
    damaged = obj("d.o", [data(bytes(4)), bss(0xFFFFFF00, name=".data")], [glob("_start", 0, ".data")])
    messages = _errors(damaged)
    assert "the sections with contents would hold 0xffffff04 bytes, more than the 64 MiB an image may have" \
        in messages


# --- files ------------------------------------------------------------------------------------


def test_link_files_reads_objects_and_names_a_corrupt_one(tmp_path):
    (tmp_path / "start.o").write_bytes(write_object(start_object()))
    (tmp_path / "lib.o").write_bytes(write_object(lib_object()))
    (tmp_path / "junk.o").write_bytes(b"junk")
    paths = [str(tmp_path / "start.o"), str(tmp_path / "lib.o")]
    assert link_files(paths, LinkOptions()) == link([start_object(), lib_object()], LinkOptions())
    with pytest.raises(ElfFormatError, match=r"junk\.o: not an ELF file"):
        link_files(paths + [str(tmp_path / "junk.o")], LinkOptions())


# --- end to end with the assembler -------------------------------------------------------------

MAIN_S = """\
.text
.globl _start
_start:
    la   a0, message
    call print
    halt
.data
counter: .word message
"""

PRINT_S = """\
.text
.globl print
print:
    ret
.rodata
.globl message
message: .asciz "hi"
"""


def test_assembled_objects_link_and_resolve_across_files():
    image = Image(link([assemble(MAIN_S, "main.s"), assemble(PRINT_S, "print.s")], LinkOptions()))
    message, text_base = image.symbol("message"), image.addr(".text")
    assert image.word(".data", 0) == message
    lui = isa.decode(image.word(".text", 0))
    ori = isa.decode(image.word(".text", 4))
    assert (lui.operands["imm"] << 12) | ori.operands["imm"] == message
    jal = isa.decode(image.word(".text", 8))
    assert text_base + 8 + jal.operands["target"] * 4 == image.symbol("print")

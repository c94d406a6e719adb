"""asm.elf: objects written and read back, images written, GNU readelf as the reference."""

from __future__ import annotations

import io
import re
import struct

import pytest
from elftools.elf.elffile import ELFFile

from asm import isa
from asm.elf import ElfFormatError, read_object, write_object
from asm.linker import LinkOptions, link
from asm.objfile import STB_LOCAL, Relocation, Symbol
from tests.asm.helpers import (
    assemble, assert_readelf_clean, bss, data, enc, glob, lib_object, obj, readelf, start_object, text,
)


def _write(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_object_round_trips_through_the_reader_byte_for_byte():
    original = start_object()
    written = write_object(original)
    again = read_object(written, "start.o")
    assert write_object(again) == written
    assert [s.name for s in again.sections] == [".text", ".data", ".bss"]
    assert again.section(".bss").size == 16 and again.section(".text").data == original.section(".text").data
    assert {(s.name, s.value, s.section, s.binding) for s in again.symbols} == \
        {(s.name, s.value, s.section, s.binding) for s in original.symbols}
    assert again.relocations == original.relocations
    assert again.source_name == "start.o"


def test_symtab_has_section_symbols_then_locals_then_globals_with_sh_info_at_first_global():
    elf = ELFFile(io.BytesIO(write_object(start_object())))
    symtab = elf.get_section_by_name(".symtab")
    rows = [(s.name, s["st_info"]["bind"], s["st_info"]["type"], s["st_shndx"]) for s in symtab.iter_symbols()]
    assert rows[:4] == [("", "STB_LOCAL", "STT_NOTYPE", "SHN_UNDEF"), ("", "STB_LOCAL", "STT_SECTION", 1),
                        ("", "STB_LOCAL", "STT_SECTION", 2), ("", "STB_LOCAL", "STT_SECTION", 3)]
    assert rows[4] == ("after_call", "STB_LOCAL", "STT_NOTYPE", 1)
    assert symtab["sh_info"] == 5
    assert all(bind != "STB_LOCAL" for _, bind, _, _ in rows[5:])
    assert ("LIMIT", "STB_GLOBAL", "STT_NOTYPE", "SHN_ABS") in rows
    assert ("puts", "STB_GLOBAL", "STT_NOTYPE", "SHN_UNDEF") in rows


def test_rela_sections_link_the_symtab_and_name_their_target():
    elf = ELFFile(io.BytesIO(write_object(start_object())))
    rela = elf.get_section_by_name(".rela.text")
    assert rela["sh_type"] == "SHT_RELA" and rela["sh_flags"] == 0x40
    assert elf.get_section(rela["sh_link"]).name == ".symtab"
    assert elf.get_section(rela["sh_info"]).name == ".text"
    assert rela["sh_entsize"] == 12
    first = next(rela.iter_relocations())
    symbol = elf.get_section_by_name(".symtab").get_symbol(first["r_info_sym"])
    assert symbol.name == "puts"
    assert first["r_info"] == (first["r_info_sym"] << 8) | isa.R_KITE_JUMP22


def test_section_relocation_uses_the_section_symbol():
    elf = ELFFile(io.BytesIO(write_object(start_object())))
    symtab = elf.get_section_by_name(".symtab")
    hi20 = list(elf.get_section_by_name(".rela.text").iter_relocations())[1]
    symbol = symtab.get_symbol(hi20["r_info_sym"])
    assert symbol["st_info"]["type"] == "STT_SECTION" and symbol["st_shndx"] == 2
    assert hi20["r_addend"] == 4


def test_relocation_against_an_unlisted_name_adds_an_undefined_global():
    item = obj("x.o", [text(enc("jal", rd=1, target=0))], [], [Relocation(".text", 0, isa.R_KITE_JUMP22, "ext")])
    again = read_object(write_object(item), "x.o")
    assert again.symbols == [Symbol("ext", 0, None, 1)]


def test_section_attributes_are_written_as_given():
    item = obj("x.o", [text(b"", name=".init"), data(b"ab", name=".mydata", align=16), bss(8, name=".stack")])
    elf = ELFFile(io.BytesIO(write_object(item)))
    rows = [(s.name, s["sh_type"], s["sh_flags"], s["sh_addralign"], s["sh_size"]) for s in elf.iter_sections()][1:4]
    assert rows == [(".init", "SHT_PROGBITS", 6, 4, 0), (".mydata", "SHT_PROGBITS", 3, 16, 2),
                    (".stack", "SHT_NOBITS", 3, 4, 8)]


# --- differential checks against GNU readelf ----------------------------------------------


def _readelf_sections(out: str) -> dict[str, tuple[str, int, int]]:
    """name -> (type, addr, size) from `readelf -S -W`."""
    rows = re.findall(r"\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]{8})\s+[0-9a-f]+\s+([0-9a-f]+)", out)
    return {name: (kind, int(addr, 16), int(size, 16)) for name, kind, addr, size in rows}


def _readelf_symbols(out: str) -> dict[str, tuple[int, str, str]]:
    """name -> (value, bind, ndx) from `readelf -s -W`."""
    rows = re.findall(r"^\s*\d+: ([0-9a-f]{8})\s+\d+ \S+\s+(\S+)\s+\S+\s+(\S+) (\S+)$", out, re.M)
    return {name: (int(value, 16), bind, ndx) for value, bind, ndx, name in rows}


def _readelf_relocations(out: str) -> list[tuple[int, int, str]]:
    """(offset, type number, symbol) from `readelf -r -W` (types are 'unrecognized: N')."""
    rows = re.findall(r"^([0-9a-f]{8})\s+([0-9a-f]{8}) unrecognized: (\d+)\s+[0-9a-f]{8}\s+(\S+)", out, re.M)
    return [(int(offset, 16), int(kind), name) for offset, _, kind, name in rows]


def test_readelf_reads_the_object_cleanly_and_agrees_on_sections_symbols_and_relocations(tmp_path):
    path = _write(tmp_path, "start.o", write_object(start_object()))
    out = assert_readelf_clean(path)
    assert "REL (Relocatable file)" in out and "0x4b54" in out
    sections = _readelf_sections(out)
    assert sections[".text"] == ("PROGBITS", 0, 24)
    assert sections[".bss"] == ("NOBITS", 0, 16)
    assert sections[".rela.text"][0] == "RELA"
    symbols = _readelf_symbols(out)
    assert symbols["LIMIT"] == (0x1234, "GLOBAL", "ABS")
    assert symbols["after_call"] == (8, "LOCAL", "1")
    assert symbols["puts"] == (0, "GLOBAL", "UND")
    assert _readelf_relocations(out) == [(4, 3, "puts"), (8, 4, ".data"), (12, 5, ".data"),
                                         (16, 4, "msg"), (0, 1, "msg")]


def test_readelf_reads_a_high_linked_image_cleanly_with_distinct_virtual_and_physical_addresses(tmp_path):
    image = link([start_object(), lib_object()],
                 LinkOptions(text_address=0xC0100000, load_offset=0xC0000000))
    out = assert_readelf_clean(_write(tmp_path, "kernel.elf", image))
    assert "EXEC (Executable file)" in out and "Entry point address:               0xc0100000" in out
    loads = re.findall(r"LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) (.{3}) 0x1000", out)
    assert [(int(v, 16), int(p, 16), flags) for _, v, p, _, _, flags in loads] == [
        (0xC0100000, 0x00100000, "R E"), (0xC0101000, 0x00101000, "R  "), (0xC0102000, 0x00102000, "RW ")]
    assert all(int(offset, 16) % 0x1000 == int(vaddr, 16) % 0x1000 for offset, vaddr, *_ in loads)
    data_segment = loads[2]
    assert int(data_segment[3], 16) == 8 and int(data_segment[4], 16) == 8 + 16   # .data in the file, .bss only in memory
    assert _readelf_symbols(out)["puts"] == (0xC0100018, "GLOBAL", "1")


def test_readelf_reads_an_assembled_object_cleanly(tmp_path):
    item = assemble(".text\n.globl _start\n_start:\n  la t0, msg\n  call helper\n  halt\n"
                    ".data\nmsg: .asciz \"hi\"\n.align 2\n.word msg\n", "e2e.s")
    out = assert_readelf_clean(_write(tmp_path, "e2e.o", write_object(item)))
    assert _readelf_symbols(out)["_start"] == (0, "GLOBAL", "1")
    assert {kind for _, kind, _ in _readelf_relocations(out)} >= {isa.R_KITE_JUMP22, isa.R_KITE_32}


# --- reader errors ----------------------------------------------------------------------------


def _good() -> bytes:
    return write_object(start_object())


def _patched(offset: int, fmt: str, value: int) -> bytes:
    content = bytearray(_good())
    struct.pack_into(fmt, content, offset, value)
    return bytes(content)


def _symbol_offset(content: bytes, name: str) -> int:
    elf = ELFFile(io.BytesIO(content))
    symtab = elf.get_section_by_name(".symtab")
    index = next(i for i, s in enumerate(symtab.iter_symbols()) if s.name == name)
    return symtab["sh_offset"] + 16 * index


def _rela_offset(content: bytes) -> int:
    return ELFFile(io.BytesIO(content)).get_section_by_name(".rela.text")["sh_offset"]


@pytest.mark.parametrize("content, message", [
    (b"hello, world", "not an ELF file (bad magic)"),
    (b"\x7fELF\x01\x01", "truncated ELF header"),
    (_patched(4, "<B", 2), "not a 32-bit ELF file"),
    (_patched(5, "<B", 2), "not a little-endian ELF file"),
    (_patched(18, "<H", 0x28), "not a Kite32 file (e_machine"),
    (_patched(16, "<H", 2), "not a relocatable object (e_type ET_EXEC"),
    (_good()[:200], "malformed ELF file"),
    (_patched(32, "<I", 0x7FFFFFF0), "malformed ELF file"),
    (_patched(_symbol_offset(_good(), "after_call") + 14, "<H", 40), "bad section index 40"),
    (_patched(_rela_offset(_good()) + 4, "<I", (99 << 8) | 3), "bad symbol index 99"),
    (_patched(_symbol_offset(_good(), "after_call") + 12, "<B", 0x0D), "unsupported symbol type"),
])
def test_reader_turns_every_damaged_input_into_one_elf_format_error(content, message):
    with pytest.raises(ElfFormatError) as caught:
        read_object(content, "bad.o")
    assert str(caught.value).startswith("bad.o: ")
    assert message in str(caught.value)


def test_readelf_agrees_with_the_written_local_symbol_order(tmp_path):
    item = obj("x.o", [text(enc("halt"))], [glob("g"), Symbol("l", 4, ".text", STB_LOCAL)])
    out, err = readelf(_write(tmp_path, "x.o", write_object(item)), "-s", "-W")
    assert err == ""
    names = re.findall(r"^\s*\d+: .* (\S+)$", out, re.M)
    assert names.index("l") < names.index("g")

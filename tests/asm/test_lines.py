"""Source lines: the .debug_line table kite-as writes (asm/lines.py), what kite-ld does with it,
and the readers: our own, pyelftools (an independent DWARF reader) and GNU readelf."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from asm.assembler import assemble
from asm.diagnostics import AssemblyError
from asm.elf import ElfFormatError, write_object
from asm.lines import (
    SourceLine, address_lines, object_line_table, read_line_table, read_sequences, sleb, uleb,
)
from asm.linker import LinkError, LinkOptions, link

MAIN = """\
        .globl _start
        .macro twice r
        addi \\r, \\r, 1
        addi \\r, \\r, 2
        .endm
_start: li a0, 5
        twice a1
        .include "part.inc"
        .data
msg:    .asciz "hi"
        .text
        call puts
        la t0, msg
"""
PART = "        nop\n        nop\n"
LIB = "        .globl puts\nputs:   ret\n"


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """main.s (a macro, an include), part.inc and lib.s in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "main.s").write_text(MAIN)
    (tmp_path / "part.inc").write_text(PART)
    (tmp_path / "lib.s").write_text(LIB)
    return tmp_path


def _object(path: str):
    from pathlib import Path
    return assemble(Path(path).read_text(), path, {}, [])


def _image(*paths: str) -> bytes:
    return link([_object(path) for path in paths], LinkOptions())


def test_every_instruction_maps_to_its_line_macro_expansions_to_the_invocation_includes_to_their_file(sources):
    table = object_line_table(_object("main.s"))
    part = str(sources / "part.inc")
    expected = {0: ("main.s", 6), 4: ("main.s", 7), 8: ("main.s", 7), 12: (part, 1), 16: (part, 2),
                20: ("main.s", 12), 24: ("main.s", 13), 28: ("main.s", 13)}
    assert {offset: tuple(table.lookup(offset, ".text")) for offset in range(0, 32, 4)} == expected
    assert table.lookup(32, ".text") is None and table.lookup(0, ".data") is None


def test_an_object_without_instructions_has_no_line_table():
    obj = assemble(".data\n.word 1\n", "d.s", {}, [])
    assert obj.section(".debug_line") is None


def test_the_line_table_section_cannot_be_written_by_the_source():
    with pytest.raises(AssemblyError) as caught:
        assemble(".section .debug_line\n.byte 1\n", "x.s", {}, [])
    assert "is the line table kite-as writes" in str(caught.value)


def test_the_object_line_table_has_no_relocations_and_names_its_section(sources):
    obj = _object("main.s")
    assert not [r for r in obj.relocations if r.section == ".debug_line"]
    [sequence] = read_sequences(bytes(obj.section(".debug_line").data))
    assert sequence.section == ".text" and sequence.rows[0][0] == 0 and sequence.end == 32


def test_kite_ld_relocates_and_merges_the_tables_of_several_objects(sources):
    lines = address_lines(_image("main.s", "lib.s"))
    assert lines[0x100000] == SourceLine("main.s", 6)
    assert lines[0x10001c] == SourceLine("main.s", 13)
    assert lines[0x100020] == SourceLine("lib.s", 2)
    assert len(lines) == 9


def test_line_table_lookup_of_an_image_covers_every_instruction_and_nothing_else(sources):
    table = read_line_table(_image("main.s", "lib.s"))
    assert str(table.lookup(0x100008)) == "main.s:7"
    assert table.lookup(0x100024) is None and table.lookup(0xFFFFC) is None


def test_an_undefined_symbol_names_the_source_line_of_its_reference(sources):
    with pytest.raises(LinkError) as caught:
        link([_object("main.s")], LinkOptions())
    assert caught.value.messages == [
        "main.s: main.s:12: undefined symbol 'puts' (referenced from .text+0x14)"]


def test_a_damaged_line_table_is_a_link_error_not_a_traceback(sources):
    obj = _object("main.s")
    obj.section(".debug_line").data[4:6] = b"\x09\x00"       # DWARF version 9
    with pytest.raises(LinkError) as caught:
        link([obj, _object("lib.s")], LinkOptions())
    assert caught.value.messages == [
        "main.s: .debug_line: unsupported line table (DWARF version 9, address size 4; "
        "version 5, size 4 expected)"]


def test_a_damaged_line_table_in_a_file_is_one_elf_format_error(sources):
    data = bytearray(write_object(_object("main.s")))
    start = data.find(b"\x05\x00\x04\x00")       # version 5, address size 4
    data[start + 2] = 8
    with pytest.raises(ElfFormatError, match=r"^bad.o: .debug_line: unsupported line table"):
        read_line_table(bytes(data), "bad.o")


@pytest.mark.parametrize("value", [0, 1, 63, 64, 127, 128, -1, -64, -65, 8191, -8192, 1 << 40])
def test_leb128_encodings_round_trip_through_the_reader(value):
    from asm.lines import _Reader
    if value >= 0:
        assert _Reader(uleb(value)).uleb() == value
    assert _Reader(sleb(value)).sleb() == value


# --- independent readers -----------------------------------------------------------------------


def _pyelftools_rows(data: bytes) -> list[tuple[int, str, int]]:
    """(address, file, line) of every row pyelftools' DWARF line-program reader decodes (the
    table has no .debug_info, so the unit is parsed at offset 0 and after each unit)."""
    elf = ELFFile(io.BytesIO(data))
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    rows, offset, size = [], 0, elf.get_section_by_name(".debug_line")["sh_size"]
    while offset < size:
        program = dwarf._parse_line_program_at_offset(offset, dwarf.structs)
        names = [entry.name.decode() for entry in program.header.file_entry]
        rows += [(e.state.address, names[e.state.file], e.state.line)
                 for e in program.get_entries() if e.state and not e.state.end_sequence]
        offset += program.header.unit_length + 4
    return rows


def test_pyelftools_reads_the_same_rows_from_an_object(sources):
    data = write_object(_object("main.s"))
    ours = [(r.start, r.source.file, r.source.line) for r in read_line_table(data).ranges]
    assert _pyelftools_rows(data) == ours


def test_pyelftools_reads_the_same_rows_from_a_linked_image(sources):
    data = _image("main.s", "lib.s")
    ours = [(r.start, r.source.file, r.source.line) for r in read_line_table(data).ranges]
    assert _pyelftools_rows(data) == ours and ours[-1] == (0x100020, "lib.s", 2)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="GNU readelf is not installed")
@pytest.mark.parametrize("kind", ["object", "image"])
def test_gnu_readelf_reads_the_line_table_without_a_warning(sources, kind):
    data = write_object(_object("main.s")) if kind == "object" else _image("main.s", "lib.s")
    (sources / "file").write_bytes(data)
    done = subprocess.run(["readelf", "--debug-dump=line", "file"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert "warning" not in done.stdout.lower() and "DWARF Version:               5" in done.stdout
    start = "0" if kind == "object" else "0x100000"
    assert f"set Address to {start}\n" in done.stdout
    assert "advance Address by 4 to" in done.stdout and "Line by 1 to 7" in done.stdout

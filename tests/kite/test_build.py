"""`kite build`: the manifest, in-process assemble + link, atomic and change-only writes, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from elftools.elf.elffile import ELFFile

from kite.build import BuildError, build, build_all, read_manifest

PROGRAM = """
        .text
        .globl _start
_start: li      a0, 0x123456             # does not fit imm18: lui + ori
        call    helper
        halt
"""
HELPER = """
        .text
        .globl helper
helper: ret
"""


def make_tree(tmp_path: Path, manifest: str, sources: dict[str, str]) -> Path:
    """A guestos-like tree: images.toml plus sources; returns the manifest path."""
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "images.toml"
    path.write_text(manifest)
    return path


def test_two_source_image_is_linked_at_its_text_address_with_entry_start(tmp_path):
    manifest = make_tree(tmp_path, '[images.prog]\nsources = ["main.s", "helper.s"]\ntext = 0x200000\n',
                         {"main.s": PROGRAM, "helper.s": HELPER})
    written = build_all(manifest)
    image = tmp_path / "build" / "prog.elf"
    assert image in written
    assert (tmp_path / "build" / "obj" / "prog" / "main.o") in written
    with open(image, "rb") as stream:
        elf = ELFFile(stream)
        symbols = {symbol.name: symbol["st_value"] for symbol in elf.get_section_by_name(".symtab").iter_symbols()}
        assert elf["e_entry"] == symbols["_start"] == 0x200000
        # main.s is 4 words (li = lui + ori, call, halt); helper.s follows it
        assert symbols["helper"] == 0x200000 + 4 * 4


def test_second_build_of_an_unchanged_tree_writes_nothing(tmp_path):
    manifest = make_tree(tmp_path, '[images.prog]\nsources = ["main.s", "helper.s"]\n',
                         {"main.s": PROGRAM, "helper.s": HELPER})
    build_all(manifest)
    image = tmp_path / "build" / "prog.elf"
    before = image.stat().st_mtime_ns
    os.utime(image, ns=(before - 10**9, before - 10**9))
    assert build_all(manifest) == []
    assert image.stat().st_mtime_ns == before - 10**9


def test_defines_reach_the_assembler(tmp_path):
    source = ".text\n.globl _start\n_start:\n.ifdef PARAVIRT\n hypercall\n.else\n halt\n.endif\n"
    manifest = make_tree(tmp_path, '[images.pv]\nsources = ["k.s"]\ndefines = { PARAVIRT = 1 }\n'
                                   '[images.native]\nsources = ["k.s"]\n', {"k.s": source})
    build_all(manifest)
    words = {}
    for name in ("pv", "native"):
        with open(tmp_path / "build" / f"{name}.elf", "rb") as stream:
            words[name] = ELFFile(stream).get_section_by_name(".text").data()
    assert words["pv"] != words["native"]


@pytest.mark.parametrize("manifest, message", [
    ("", "no [images.NAME] tables"),
    ("[images.a]\nsources = []\n", "'sources' must be a non-empty list"),
    ("[images.a]\nsources = ['a.s']\ntxt = 1\n", "unknown key 'txt'"),
    ("[images.a]\nsources = ['a.s']\ntext = 'high'\n", "'text' must be an integer"),
    ("[images.a]\nsources = ['a.s']\ndefines = { X = 'y' }\n", "'defines' must be a table"),
    ("[images.a\n", "images.toml"),
])
def test_bad_manifest_is_one_clear_error(tmp_path, manifest, message):
    path = make_tree(tmp_path, manifest, {})
    with pytest.raises(BuildError, match=message.replace("[", r"\[").replace(".", r"\.")):
        read_manifest(path)


def test_assembly_error_exits_1_with_file_and_line_and_writes_no_image(tmp_path):
    manifest = make_tree(tmp_path, '[images.bad]\nsources = ["bad.s"]\n',
                         {"bad.s": ".text\n_start:\n        frob a0\n"})
    result = CliRunner().invoke(build, ["--manifest", str(manifest)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'bad.s'}:3:" in result.stderr and "frob" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "build" / "bad.elf").exists()


def test_missing_source_is_a_clear_error(tmp_path):
    manifest = make_tree(tmp_path, '[images.gone]\nsources = ["gone.s"]\n', {})
    result = CliRunner().invoke(build, ["--manifest", str(manifest)])
    assert result.exit_code == 1 and "gone.s: cannot read" in result.stderr

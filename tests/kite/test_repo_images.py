"""Every object and image `make build` put in guestos/build/: GNU readelf reads
each with no warnings, and disassembling its code then re-assembling the text
gives identical bytes (issue: toolchain, "Inspecting")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from asm.assembler import assemble
from asm.disasm import disassemble_word
from kite.build import GUESTOS, build_all

BUILD = GUESTOS / "build"


@pytest.fixture(scope="module")
def built_files() -> list[Path]:
    """Every .o and .elf of the repository's guest images, built if needed."""
    build_all()
    files = sorted(BUILD.rglob("*.o")) + sorted(BUILD.glob("*.elf"))
    assert any(path.suffix == ".elf" for path in files) and any(path.suffix == ".o" for path in files)
    return files


def test_readelf_reads_every_built_file_without_a_warning(built_files):
    for path in built_files:
        done = subprocess.run(["readelf", "-a", "-W", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{path}: {done.stderr}"
        assert done.stderr == "", f"{path}: {done.stderr}"
        assert "warning" not in done.stdout.lower(), path


def code_sections(path: Path) -> list[tuple[str, bytes]]:
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        return [(section.name, section.data()) for section in elf.iter_sections()
                if section["sh_flags"] & 0x4 and section["sh_type"] == "SHT_PROGBITS"]


def test_disassembly_of_every_code_section_reassembles_to_identical_bytes(built_files):
    for path in built_files:
        for name, data in code_sections(path):
            lines = [disassemble_word(int.from_bytes(data[offset:offset + 4], "little"), offset)
                     for offset in range(0, len(data), 4)]
            source = "        .text\n" + "".join(f"        {line}\n" for line in lines)
            rebuilt = assemble(source, f"{path.name}:{name}.s").section(".text").data
            assert bytes(rebuilt) == data, f"{path} {name}"

"""Shared fixtures for the machine's tests (CPU and devices engineers: only ADD fixtures here).

- `physical_memory(size)`: a PhysicalMemory (vmm/machine/memory.py).
- `make_elf(...)`: bytes of a small ELF32 image built field by field, for
  loader tests that need images the linker would never produce.
- `write_file(name, data)`: a file under tmp_path; returns its path.
"""

from __future__ import annotations

import struct

import pytest

from asm.isa import EM_KITE32, PAGE_SIZE
from vmm.machine.memory import PhysicalMemory

PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
ET_EXEC, ET_REL = 2, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2
SHN_ABS = 0xFFF1


@pytest.fixture
def physical_memory():
    """Factory: physical_memory(size) -> PhysicalMemory."""
    return PhysicalMemory


def build_elf(segments, entry, symbols=(), e_machine=EM_KITE32, e_type=ET_EXEC,
              ei_class=1, ei_data=1) -> bytes:
    """An ELF32 image.  `segments`: dicts with vaddr, data and optionally paddr
    (default vaddr), memsz (default len(data)), flags (default R|X).  Each
    segment also gets a section (index 1, 2, ...) so `symbols` — (name, value,
    type, shndx) tuples, shndx default 1 — can be defined in it."""
    segments = [dict({"paddr": seg["vaddr"], "memsz": len(seg["data"]), "flags": PF_R | PF_X}, **seg)
                for seg in segments]
    phoff = 52
    offset = phoff + 32 * len(segments)
    blobs = bytearray()
    for seg in segments:
        seg["offset"] = offset + len(blobs)
        blobs += seg["data"] + bytes(-len(seg["data"]) % 4)
    strtab, symtab = bytearray(b"\0"), bytearray(bytes(16))
    for symbol in symbols:
        name, value, sym_type, shndx = (tuple(symbol) + (1,))[:4]
        symtab += struct.pack("<IIIBBH", len(strtab), value, 0, (1 << 4) | sym_type, 0, shndx)
        strtab += name.encode() + b"\0"
    shstrtab = bytearray(b"\0")

    def section_name(name: str) -> int:
        shstrtab.extend(name.encode() + b"\0")
        return len(shstrtab) - len(name) - 1

    sections = [bytes(40)]
    for index, seg in enumerate(segments):
        sections.append(struct.pack("<10I", section_name(f".seg{index}"), 1, 2 | (seg["flags"] & 1) << 2,
                                    seg["vaddr"], seg["offset"], len(seg["data"]), 0, 0, 4, 0))
    symtab_at = offset + len(blobs)
    strtab_at = symtab_at + len(symtab)
    symtab_index = len(sections)
    sections.append(struct.pack("<10I", section_name(".symtab"), 2, 0, 0, symtab_at, len(symtab),
                                symtab_index + 1, 1, 4, 16))
    sections.append(struct.pack("<10I", section_name(".strtab"), 3, 0, 0, strtab_at, len(strtab),
                                0, 0, 1, 0))
    shstrtab_name = section_name(".shstrtab")
    shstrtab_at = strtab_at + len(strtab)
    sections.append(struct.pack("<10I", shstrtab_name, 3, 0, 0, shstrtab_at, len(shstrtab),
                                0, 0, 1, 0))
    shoff = shstrtab_at + len(shstrtab)
    shoff += -shoff % 4
    ident = b"\x7fELF" + bytes((ei_class, ei_data, 1)) + bytes(9)
    header = ident + struct.pack("<HHIIIIIHHHHHH", e_type, e_machine, 1, entry, phoff, shoff, 0, 52,
                                 32, len(segments), 40, len(sections), len(sections) - 1)
    phdrs = b"".join(struct.pack("<8I", PT_LOAD, seg["offset"], seg["vaddr"], seg["paddr"],
                                 len(seg["data"]), seg["memsz"], seg["flags"], PAGE_SIZE)
                     for seg in segments)
    body = header + phdrs + blobs + symtab + strtab + shstrtab
    return body + bytes(shoff - len(body)) + b"".join(sections)


@pytest.fixture
def make_elf():
    """Factory: make_elf(segments, entry, symbols=(), ...) -> ELF bytes (see build_elf)."""
    return build_elf


@pytest.fixture
def write_file(tmp_path):
    """Factory: write_file(name, data: bytes) -> path of a new file under tmp_path."""
    def write(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)
    return write

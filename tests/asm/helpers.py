"""Shared helpers for the ELF, linker, disassembler and tool tests: ObjectFiles built by hand
(code through isa.encode), GNU readelf as a differential reference, and the assembler for
end-to-end checks."""

from __future__ import annotations

import subprocess

from asm import isa
from asm.objfile import (
    SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_PROGBITS, STB_GLOBAL, STB_LOCAL, STB_WEAK,
    STT_FUNC, STT_NOTYPE, STT_OBJECT, ObjectFile, Relocation, Section, Symbol,
)

READELF = "/usr/bin/readelf"


def enc(mnemonic: str, **operands: int) -> bytes:
    """One encoded instruction as 4 little-endian bytes."""
    return isa.encode(isa.BY_MNEMONIC[mnemonic], operands).to_bytes(4, "little")


def word_at(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset:offset + 4], "little")


def text(*code: bytes, name: str = ".text") -> Section:
    return Section(name, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 4, bytearray(b"".join(code)))


def data(content: bytes, name: str = ".data", align: int = 4) -> Section:
    return Section(name, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, align, bytearray(content))


def rodata(content: bytes, name: str = ".rodata") -> Section:
    return Section(name, SHT_PROGBITS, SHF_ALLOC, 4, bytearray(content))


def bss(size: int, name: str = ".bss") -> Section:
    return Section(name, SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 4, nobits_size=size)


def glob(name: str, value: int = 0, section: str | None = ".text", sym_type: int = STT_FUNC,
         size: int = 0) -> Symbol:
    return Symbol(name, value, section, STB_GLOBAL, sym_type, size)


def local(name: str, value: int = 0, section: str = ".text") -> Symbol:
    return Symbol(name, value, section, STB_LOCAL, STT_NOTYPE)


def weak(name: str, value: int = 0, section: str | None = ".text") -> Symbol:
    return Symbol(name, value, section, STB_WEAK, STT_FUNC if section else STT_NOTYPE)


def undef(name: str) -> Symbol:
    return Symbol(name, 0, None, STB_GLOBAL)


def obj(name: str, sections, symbols=(), relocations=()) -> ObjectFile:
    return ObjectFile(list(sections), list(symbols), list(relocations), name)


def start_object() -> ObjectFile:
    """start.o: _start calls `puts` (JUMP22), loads the address of `msg` (HI20/LO12 against
    .data+4 through the section symbol and msg+0 by name), halts; .data holds a word pointing
    at `msg` (R_KITE_32) and .bss 16 bytes."""
    code = text(enc("addi", rd=4, rs1=0, imm=5), enc("jal", rd=1, target=0),
                enc("lui", rd=8, imm=0), enc("ori", rd=8, rs1=8, imm=0),
                enc("lui", rd=9, imm=0), enc("halt"))
    return obj("start.o", [code, data(b"\0" * 8), bss(16)],
               [glob("_start", 0, ".text", STT_FUNC, 24), local("after_call", 8),
                glob("table", 0, ".data", STT_OBJECT, 8), Symbol("LIMIT", 0x1234, "*ABS*", STB_GLOBAL),
                undef("puts"), undef("msg")],
               [Relocation(".text", 4, isa.R_KITE_JUMP22, "puts"),
                Relocation(".text", 8, isa.R_KITE_HI20, ".data", 4),
                Relocation(".text", 12, isa.R_KITE_LO12, ".data", 4),
                Relocation(".text", 16, isa.R_KITE_HI20, "msg"),
                Relocation(".data", 0, isa.R_KITE_32, "msg")])


def lib_object() -> ObjectFile:
    """lib.o: `puts` (returns) and the read-only string `msg`."""
    return obj("lib.o", [text(enc("jalr", rd=0, rs1=1, imm=0)), rodata(b"hello\0\0\0")],
               [glob("puts"), glob("msg", 0, ".rodata", STT_OBJECT, 6)])


def readelf(path: str, *flags: str) -> tuple[str, str]:
    """(stdout, stderr) of GNU readelf on `path`."""
    done = subprocess.run([READELF, *flags, path], capture_output=True, text=True, check=False)
    return done.stdout, done.stderr


def assert_readelf_clean(path: str) -> str:
    """Run `readelf -a -W`; fail on any warning or error; returns its stdout."""
    out, err = readelf(path, "-a", "-W")
    assert err == "", err
    for line in out.splitlines():
        assert "warning" not in line.lower() and "error" not in line.lower(), line
    return out


def assemble(source: str, filename: str = "test.s") -> ObjectFile:
    """The assembler's ObjectFile for `source` (end-to-end tests)."""
    from asm.assembler import assemble as run_assembler
    return run_assembler(source, filename, {}, [])

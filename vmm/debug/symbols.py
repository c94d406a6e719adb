"""Symbols of the kernel and of every boot module, and address expressions.

A module (a user program the guest kernel loads into its own address
spaces) is linked at its own virtual addresses, and several modules usually
share them (every user program starts at USER_BASE).  So an address in the
range of several modules is named after the one whose code is there *now*:
the bytes the current address space maps at it are compared with each
module's file.  Module symbols print as `module:name`, kernel ones as `name`.

Address expressions (`break`, `x`, `walk`, ...): terms joined by + and -,
each a number (0x1f, 42), a register ($pc, $sp, $a0, $r4) or a symbol
(`main`, `user-hello:main`); a leading `*` is accepted and ignored (GDB's
`break *0x...`).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Callable

from elftools.elf.elffile import ELFFile

from asm.files import read_limited
from asm.lines import LineTableError, SourceLine, address_lines

from asm.isa import MAX_RAM, REG_ABI_NAMES
from vmm.machine.loader import Segment, module_name, read_image
from vmm.machine.symbols import Symbolizer

M32 = 0xFFFFFFFF
SYMBOL_TYPES = ("STT_FUNC", "STT_NOTYPE")
TOKEN = re.compile(r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)|(?P<reg>\$\w+)"
                   r"|(?P<sym>(?:[\w.-]+:)?[A-Za-z_.][\w.$]*)|(?P<op>[+-]))")
ReadVirtual = Callable[[int, int], "bytes | None"]


class DebugError(Exception):
    """A command cannot be carried out; the message is shown as one line."""


@dataclass(frozen=True)
class ImageSymbols:
    """One ELF image's symbols: `names` name -> address, `symbolizer` the reverse."""
    name: str
    names: dict[str, int]
    symbolizer: Symbolizer
    segments: tuple[Segment, ...]

    def file_bytes(self, address: int, length: int) -> bytes | None:
        """The image's own bytes at virtual [address, address + length), or None."""
        for seg in self.segments:
            offset = address - seg.p_vaddr
            if 0 <= offset and offset + length <= len(seg.data):
                return seg.data[offset:offset + length]
        return None


def read_symbols(path: str, name: str) -> ImageSymbols:
    """The symbols of the image at `path` (already validated by the loader)."""
    image = read_image(path, MAX_RAM)
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        symtab = elf.get_section_by_name(".symtab")
        names = {} if symtab is None else {
            sym.name: sym["st_value"] for sym in symtab.iter_symbols()
            if sym.name and sym["st_info"]["type"] in SYMBOL_TYPES
            and sym["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS")}
    return ImageSymbols(name, names, image.symbols, tuple(image.segments))


class Symbols:
    """The kernel's and the modules' symbols of one guest.  `read_virtual(va,
    n)` reads the current address space (None where nothing is mapped)."""

    MATCH_BYTES = 16

    def __init__(self, kernel: ImageSymbols, modules: list[ImageSymbols], read_virtual: ReadVirtual,
                 lines: dict[str, dict[int, SourceLine]] | None = None):
        self.kernel, self.modules, self._read = kernel, modules, read_virtual
        self._lines = lines or {}          # "" (the kernel) or a module's name -> its pc -> file:line

    @classmethod
    def load(cls, image: str, modules: tuple[str, ...], read_virtual: ReadVirtual) -> "Symbols":
        """The symbols and line tables of kernel `image` and module files `modules`."""
        images = [read_symbols(path, module_name(path)) for path in modules]
        lines = {"": image_lines(image)}
        for path, module in zip(modules, images):
            lines.setdefault(module.name, image_lines(path))
        return cls(read_symbols(image, "kernel"), images, read_virtual, lines)

    def source(self, pc: int) -> SourceLine | None:
        """The file:line of the instruction at `pc` in the image whose code is there now, or None."""
        found = self.lookup(pc)
        module = found[0].rpartition(":")[0] if found else ""
        return self._lines.get(module, self._lines.get("", {})).get(pc)

    def address_of(self, name: str) -> int:
        """The address of `name` or `module:name`: the kernel's first, then a
        module's (DebugError if unknown, or ambiguous between modules)."""
        module, _, symbol = name.rpartition(":")
        if module:
            found = [image for image in self.modules if image.name == module]
            if not found:
                raise DebugError(f"no module named '{module}' (modules: {self._module_list()})")
            if symbol not in found[0].names:
                raise DebugError(f"no symbol '{symbol}' in module {module}")
            return found[0].names[symbol]
        if name in self.kernel.names:
            return self.kernel.names[name]
        owners = [image for image in self.modules if name in image.names]
        if not owners:
            raise DebugError(f"no symbol '{name}' in the kernel or a module")
        if len({image.names[name] for image in owners}) > 1:
            raise DebugError(f"'{name}' is in several modules at different addresses: write "
                             f"{' or '.join(image.name + ':' + name for image in owners)}")
        return owners[0].names[name]

    def _module_list(self) -> str:
        return ", ".join(image.name for image in self.modules) or "none"

    def lookup(self, address: int) -> tuple[str, int] | None:
        """(`name` or `module:name`, offset) of the symbol covering `address`, or None."""
        found = self.kernel.symbolizer.lookup(address)
        if found is not None:
            return found
        image = self._module_at(address)
        found = None if image is None else image.symbolizer.lookup(address)
        return None if found is None else (f"{image.name}:{found[0]}", found[1])

    def __call__(self, address: int) -> str | None:
        """`name+0x8` (kernel), `module:name+0x8`, or None: a Symbolizer for disassembly."""
        found = self.lookup(address)
        if found is None:
            return None
        return f"{found[0]}+{found[1]:#x}" if found[1] else found[0]

    def _module_at(self, address: int) -> ImageSymbols | None:
        """The module whose code is at `address` now (module doc)."""
        candidates = [image for image in self.modules if image.symbolizer.lookup(address) is not None]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        current = self._read(address, self.MATCH_BYTES)
        for image in candidates:
            if current is not None and image.file_bytes(address, len(current)) == current:
                return image
        return None

    def describe(self, address: int) -> str:
        """`0x00400010 <user-hello:main+0x4>`, or the bare hex address."""
        name = self(address)
        return f"{address:#010x} <{name}>" if name else f"{address:#010x}"


def evaluate(text: str, symbols: Symbols, register: Callable[[str], int]) -> int:
    """The 32-bit value of address expression `text` (module doc);
    `register(name)` gives a register's value.  Raises DebugError."""
    text = text.strip().removeprefix("*").strip()
    if not text:
        raise DebugError("expected an address")
    total, sign, position, expect_term = 0, 1, 0, True
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise DebugError(f"cannot read '{text[position:].strip()}' in '{text}'")
        position = match.end()
        if match["op"]:
            if expect_term and match["op"] == "+":
                raise DebugError(f"'{text}': a term is missing")
            sign = -sign if expect_term else (1 if match["op"] == "+" else -1)
            expect_term = True
            continue
        if not expect_term:
            raise DebugError(f"'{text}': expected + or - between terms")
        total += sign * _term(match, symbols, register)
        sign, expect_term = 1, False
    if expect_term:
        raise DebugError(f"'{text}': a term is missing")
    return total & M32


def _term(match: re.Match, symbols: Symbols, register: Callable[[str], int]) -> int:
    """The value of one matched term."""
    if match["num"]:
        return int(match["num"], 0)
    if match["reg"]:
        return register(match["reg"][1:])
    return symbols.address_of(match["sym"])


def register_number(name: str) -> int | None:
    """The number of register `name` (ABI name, fp, or r0..r15), or None."""
    if name in REG_ABI_NAMES:
        return REG_ABI_NAMES.index(name)
    if name == "fp":
        return REG_ABI_NAMES.index("s0")
    match = re.fullmatch(r"r(\d{1,2})", name)
    if match and int(match[1]) < len(REG_ABI_NAMES):
        return int(match[1])
    return None


def image_lines(path: str) -> dict[int, SourceLine]:
    """The image's address -> source line map ({} without a readable line table)."""
    try:
        return address_lines(read_limited(path), path)
    except (OSError, LineTableError):
        return {}


@functools.lru_cache(maxsize=256)
def short_file(name: str) -> str:
    """A source file's name for text lines: relative to the working directory when under it."""
    if os.path.isabs(name):
        relative = os.path.relpath(name)
        if not relative.startswith(".."):
            return relative
    return name

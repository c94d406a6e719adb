"""The ELF loader: Kite32 ET_EXEC images and boot modules into physical memory.

The kernel's PT_LOAD segments go to their p_paddr (bss zero-filled); the CPU
starts at the physical address of e_entry with paging off.  Boot modules are
whole files, each placed page-aligned after the previous one, starting after
the highest kernel segment.  The boot-info block describes it all to the
kernel; its layout (physical addresses, little-endian words):

    BOOTINFO_ADDR + 0   magic            isa.BOOTINFO_MAGIC
                  + 4   mem_size         bytes of RAM
                  + 8   cmdline          address of a NUL-terminated string
                  + 12  module_count
                  + 16  modules          address of module_count entries of 12 bytes:
                                           +0 start, +4 size, +8 name (address of a NUL-terminated string)
                  + 20  first_free       page-aligned address after the kernel and the modules
                  + 24  the module entries, then the cmdline, then the module names

Everything must fit in the block's 4 KiB page.  An image or module file may
hold at most asm.files.MAX_INPUT_SIZE bytes (64 MiB).  Every problem with an
image is one ImageError naming the file.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from typing import Protocol

from elftools.elf.elffile import ELFFile

from asm.files import read_limited
from asm.isa import BOOTINFO_ADDR, BOOTINFO_MAGIC, EM_KITE32, MMIO_BASE, PAGE_SIZE
from vmm.machine.errors import BusError, ImageError
from vmm.machine.symbols import Symbolizer

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELFDATA2LSB = 1
ELF32_HEADER_SIZE = 52
PF_X = 1
BOOTINFO_SIZE = PAGE_SIZE
BOOTINFO_HEADER_SIZE = 24
BOOTINFO_MODULE_ENTRY_SIZE = 12
SYMBOL_TYPES = ("STT_FUNC", "STT_NOTYPE")


class LoadMemory(Protocol):
    """The part of PhysicalMemory the loader uses."""

    size: int

    def write_bytes(self, paddr: int, data: bytes) -> None: ...


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD segment, with its file bytes."""
    p_vaddr: int
    p_paddr: int
    p_memsz: int
    p_flags: int
    data: bytes

    @property
    def end(self) -> int:
        """Physical end address (exclusive)."""
        return self.p_paddr + self.p_memsz


@dataclass(frozen=True)
class Module:
    """A boot module as placed in memory."""
    name: str
    start: int
    size: int


@dataclass
class LoadedImage:
    """What the machine needs after loading: where to start and how to name code."""
    path: str
    entry_vaddr: int
    entry_paddr: int
    segments: list[Segment]
    symbols: Symbolizer
    modules: list[Module] = field(default_factory=list)
    first_free: int = 0


def page_align_up(address: int) -> int:
    """`address` rounded up to a page boundary."""
    return (address + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def _read_file(path: str) -> bytes:
    """The bytes of the image or module `path`, at most asm.files.MAX_INPUT_SIZE (a device
    such as /dev/zero is read no further); ImageError if it cannot be read or is larger."""
    try:
        return read_limited(path)
    except OSError as error:
        raise ImageError(f"{path}: cannot read image: {error.strerror}") from None


def _check_ident(path: str, data: bytes) -> None:
    """Magic, class, byte order and header size; ImageError otherwise."""
    if data[:4] != ELF_MAGIC:
        raise ImageError(f"{path}: not an ELF file (bad magic)")
    if len(data) < ELF32_HEADER_SIZE:
        raise ImageError(f"{path}: truncated ELF header ({len(data)} bytes)")
    if data[4] != ELFCLASS32:
        raise ImageError(f"{path}: not a 32-bit ELF file (EI_CLASS {data[4]})")
    if data[5] != ELFDATA2LSB:
        raise ImageError(f"{path}: not a little-endian ELF file (EI_DATA {data[5]})")


def _parse_elf(path: str, data: bytes) -> tuple[dict, list, list[tuple[str, int]]]:
    """(header, PT_LOAD program headers, symbols) via pyelftools.

    Converts whatever pyelftools raises on a damaged file (its own ELFError,
    construct's stream errors, struct errors) into one ImageError."""
    try:
        elf = ELFFile(io.BytesIO(data))
        header = dict(elf.header)
        loads = [dict(segment.header) for segment in elf.iter_segments()
                 if segment["p_type"] == "PT_LOAD"]
        symbols = _elf_symbols(elf)
    except ImageError:
        raise
    except Exception as error:   # pyelftools has no single exception type for bad input
        raise ImageError(f"{path}: malformed ELF file ({error or type(error).__name__})") from None
    return header, loads, symbols


def _elf_symbols(elf: ELFFile) -> list[tuple[str, int]]:
    """(name, st_value) of every named function/label symbol defined in a section."""
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        return []
    return [(sym.name, sym["st_value"]) for sym in symtab.iter_symbols()
            if sym.name and sym["st_info"]["type"] in SYMBOL_TYPES
            and sym["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS")]


def _check_header(path: str, header: dict) -> None:
    """e_machine and e_type; ImageError otherwise."""
    machine = header["e_machine"]
    if machine != EM_KITE32:
        shown = machine if isinstance(machine, str) else f"{machine:#x}"
        raise ImageError(f"{path}: not a Kite32 image (e_machine {shown}, expected {EM_KITE32:#x})")
    if header["e_type"] != "ET_EXEC":
        raise ImageError(f"{path}: not an executable image (e_type {header['e_type']}, expected ET_EXEC)")


def _segments(path: str, data: bytes, loads: list) -> list[Segment]:
    """Segment records for non-empty PT_LOAD headers, with their file data checked present."""
    segments = []
    for ph in loads:
        if ph["p_filesz"] > ph["p_memsz"]:
            raise ImageError(f"{path}: segment at {ph['p_paddr']:#010x} has p_filesz "
                             f"{ph['p_filesz']:#x} > p_memsz {ph['p_memsz']:#x}")
        if ph["p_offset"] + ph["p_filesz"] > len(data):
            raise ImageError(f"{path}: segment at {ph['p_paddr']:#010x} extends past the end "
                             f"of the file (truncated?)")
        if ph["p_memsz"]:
            file_bytes = data[ph["p_offset"]:ph["p_offset"] + ph["p_filesz"]]
            segments.append(Segment(ph["p_vaddr"], ph["p_paddr"], ph["p_memsz"], ph["p_flags"],
                                    file_bytes))
    return segments


def _check_placement(path: str, segments: list[Segment], mem_size: int) -> None:
    """Each segment in RAM, clear of MMIO, of the boot-info page and of each other."""
    for seg in segments:
        where = f"{path}: segment [{seg.p_paddr:#010x}, {seg.end:#010x})"
        if seg.end > MMIO_BASE:
            raise ImageError(f"{where} overlaps MMIO (devices start at {MMIO_BASE:#010x})")
        if seg.end > mem_size:
            raise ImageError(f"{where} is outside RAM ({mem_size:#x} bytes)")
        if seg.p_paddr < BOOTINFO_ADDR + BOOTINFO_SIZE and BOOTINFO_ADDR < seg.end:
            raise ImageError(f"{where} overlaps the boot-info page at {BOOTINFO_ADDR:#010x}")
    ordered = sorted(segments, key=lambda seg: seg.p_paddr)
    for lower, upper in zip(ordered, ordered[1:]):
        if upper.p_paddr < lower.end:
            raise ImageError(f"{path}: segments at {lower.p_paddr:#010x} and "
                             f"{upper.p_paddr:#010x} overlap")


def _entry_paddr(path: str, entry: int, segments: list[Segment]) -> int:
    """The physical address of `entry`, through the executable segment holding it."""
    for seg in segments:
        if seg.p_flags & PF_X and seg.p_vaddr <= entry < seg.p_vaddr + seg.p_memsz:
            return seg.p_paddr + (entry - seg.p_vaddr)
    raise ImageError(f"{path}: entry point {entry:#010x} is not inside an executable segment")


@dataclass(frozen=True)
class KernelImage:
    """A validated kernel image, not yet in memory."""
    path: str
    entry_vaddr: int
    entry_paddr: int
    segments: list[Segment]
    symbols: Symbolizer


def read_image(path: str, mem_size: int) -> KernelImage:
    """Read and validate the kernel image at `path` for a machine with
    `mem_size` bytes of RAM.  Raises ImageError; touches no memory."""
    data = _read_file(path)
    _check_ident(path, data)
    header, loads, symbols = _parse_elf(path, data)
    _check_header(path, header)
    segments = _segments(path, data, loads)
    if not segments:
        raise ImageError(f"{path}: no loadable segments")
    _check_placement(path, segments, mem_size)
    entry_paddr = _entry_paddr(path, header["e_entry"], segments)
    ranges = [(seg.p_vaddr, seg.p_vaddr + seg.p_memsz) for seg in segments]
    return KernelImage(path, header["e_entry"], entry_paddr, segments, Symbolizer(symbols, ranges))


def read_module(path: str) -> bytes:
    """The bytes of the boot module at `path`, checked to be a Kite32 ELF image."""
    data = _read_file(path)
    _check_ident(path, data)
    header, loads, _ = _parse_elf(path, data)
    _check_header(path, header)
    _segments(path, data, loads)
    return data


def module_name(path: str) -> str:
    """The module's name: the file's basename without its extension."""
    return os.path.splitext(os.path.basename(path))[0]


def _place_modules(module_paths: list[str], start: int, mem_size: int) -> list[tuple[Module, bytes]]:
    """Each module page-aligned from `start`, checked to fit in RAM."""
    placed = []
    address = page_align_up(start)
    for path in module_paths:
        data = read_module(path)
        if address + len(data) > mem_size:
            raise ImageError(f"{path}: module of {len(data)} bytes does not fit in RAM "
                             f"at {address:#010x} ({mem_size:#x} bytes)")
        placed.append((Module(module_name(path), address, len(data)), data))
        address = page_align_up(address + len(data))
    return placed


def build_bootinfo(mem_size: int, cmdline: str, modules: list[Module], first_free: int) -> bytes:
    """The boot-info block's bytes (to be written at BOOTINFO_ADDR); see the
    module docstring.  Raises ImageError if it does not fit in its page."""
    entries_at = BOOTINFO_ADDR + BOOTINFO_HEADER_SIZE
    strings_at = entries_at + BOOTINFO_MODULE_ENTRY_SIZE * len(modules)
    strings = bytearray()

    def add_string(text: str) -> int:
        address = strings_at + len(strings)
        strings.extend(text.encode("utf-8") + b"\0")
        return address

    cmdline_at = add_string(cmdline)
    entries = b"".join(struct.pack("<III", mod.start, mod.size, add_string(mod.name))
                       for mod in modules)
    header = struct.pack("<6I", BOOTINFO_MAGIC, mem_size, cmdline_at, len(modules), entries_at,
                         first_free)
    block = header + entries + bytes(strings)
    if len(block) > BOOTINFO_SIZE:
        raise ImageError(f"boot-info block needs {len(block)} bytes, more than its {BOOTINFO_SIZE}-byte "
                         f"page (too many modules or too long a command line)")
    return block


def load(memory: LoadMemory, image_path: str, module_paths: list[str] = (), cmdline: str = "") -> LoadedImage:
    """Validate the kernel and modules, then place them and the boot-info block
    in `memory`.  Raises ImageError before writing anything if any is bad."""
    kernel = read_image(image_path, memory.size)
    kernel_end = max(seg.end for seg in kernel.segments)
    placed = _place_modules(list(module_paths), kernel_end, memory.size)
    modules = [module for module, _ in placed]
    first_free = page_align_up(max([kernel_end] + [mod.start + mod.size for mod in modules]))
    bootinfo = build_bootinfo(memory.size, cmdline, modules, first_free)
    try:
        for seg in kernel.segments:
            memory.write_bytes(seg.p_paddr, seg.data + bytes(seg.p_memsz - len(seg.data)))
        for module, data in placed:
            memory.write_bytes(module.start, data)
        memory.write_bytes(BOOTINFO_ADDR, bootinfo)
    except BusError as error:
        raise ImageError(f"{image_path}: {error}") from None
    return LoadedImage(image_path, kernel.entry_vaddr, kernel.entry_paddr, kernel.segments,
                       kernel.symbols, modules, first_free)

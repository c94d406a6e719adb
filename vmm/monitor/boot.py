"""Booting a guest under the VMM: the image's paging note, and the direct-mode
domain builder (docs/hypercalls.md, "The start-info block").

A shadow-mode or nested-mode guest boots exactly as on the bare machine (virtual kernel mode,
virtual paging off, a0 = the boot-info block).  A direct-mode guest cannot run
with paging off (that would be machine-physical), so the VMM builds bootstrap
page tables first, as Xen's domain builder does:

    guest frames:  kernel + modules | p2m list | L2 | L1 ... | free
                                      ^first_free  ^pt_first_gfn

Each guest frame gfn is mapped at guest-virtual gfn << 12 to its machine frame,
user-accessible (the guest kernel runs in machine user mode), writable except
the bootstrap tables themselves; the tables are pinned through the validator
like any guest table, and the L2 is loaded as both bases.
"""

from __future__ import annotations

import struct

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from asm.isa import PAGE_SHIFT, PAGE_SIZE, PTE_P, PTE_U, PTE_W, UART_BASE
from vmm.machine.errors import ImageError, KiteError
from vmm.machine.loader import BOOTINFO_HEADER_SIZE, LoadedImage, page_align_up
from vmm.monitor.hypercall_abi import (KITE_PAGING_DIRECT, NOTE_SECTION, PIN_L1, PIN_L2,
                                       SIF_DIRECT_PAGING, START_INFO_ADDR, START_INFO_HEADER_SIZE,
                                       StartInfo, paging_mode_of)

ENTRIES = PAGE_SIZE // 4


def image_paging_mode(path: str) -> int | None:
    """The paging mode the image's NOTE_SECTION names, or None without one
    (and for a file that is not a readable ELF image: the loader reports
    that).  Raises ImageError for a malformed note."""
    try:
        with open(path, "rb") as stream:
            section = ELFFile(stream).get_section_by_name(NOTE_SECTION)
            notes = None if section is None else section.data()
    except (OSError, ELFError):
        return None
    try:
        return None if notes is None else paging_mode_of(notes)
    except ValueError as error:
        raise ImageError(f"{path}: malformed {NOTE_SECTION} note: {error}") from None


def check_paging_note(config) -> None:
    """An image built for direct mode runs only in direct mode, and only such
    an image does.  Raises KiteError naming the image."""
    direct_image = image_paging_mode(config.image) == KITE_PAGING_DIRECT
    if direct_image and config.paging != "direct":
        raise KiteError(f"{config.image}: built for direct paging (its {NOTE_SECTION} note says so): "
                        f"run it with --paging direct")
    if config.paging == "direct" and not direct_image:
        raise KiteError(f"{config.image}: not built for direct paging (no {NOTE_SECTION} note): "
                        f"run it with --paging shadow")


def build_direct_start(vm, image: LoadedImage) -> None:
    """Lay out the p2m list and bootstrap tables after the image, write the
    start-info block over the boot-info block, pin the tables and set the base."""
    frames = vm.physmap.frames
    p2m_at = image.first_free
    pt_first_gfn = page_align_up(p2m_at + 4 * frames) >> PAGE_SHIFT
    l1_count = -(-frames // ENTRIES)
    first_free = (pt_first_gfn + 1 + l1_count) << PAGE_SHIFT
    if first_free > vm.physmap.size:
        raise KiteError(f"{vm.name}: {vm.physmap.size >> 10} KiB is too small for the image and "
                        f"its bootstrap page tables")
    vm.memory.write_bytes(p2m_at, struct.pack(f"<{frames}I", *vm.physmap.p2m))
    table_gfns = set(range(pt_first_gfn, pt_first_gfn + 1 + l1_count))
    _write_bootstrap_tables(vm, pt_first_gfn, l1_count, table_gfns)
    _write_start_info(vm, image, p2m_at, pt_first_gfn, l1_count, first_free)
    direct = vm.mode.direct
    for l1 in range(l1_count):
        direct.pin_table(vm.physmap.p2m[pt_first_gfn + 1 + l1], PIN_L1)
    root = vm.physmap.p2m[pt_first_gfn]
    direct.pin_table(root, PIN_L2)
    direct.set_base(root, root)


def _write_bootstrap_tables(vm, pt_first_gfn: int, l1_count: int, table_gfns: set[int]) -> None:
    """The L2 at pt_first_gfn, then the L1s: gva = gpa for every guest frame."""
    p2m = vm.physmap.p2m
    directory = [0] * ENTRIES
    for l1 in range(l1_count):
        directory[l1] = (p2m[pt_first_gfn + 1 + l1] << PAGE_SHIFT) | PTE_P | PTE_W | PTE_U
        table = [0] * ENTRIES
        for index in range(ENTRIES):
            gfn = l1 * ENTRIES + index
            if gfn < len(p2m):
                writable = 0 if gfn in table_gfns else PTE_W
                table[index] = (p2m[gfn] << PAGE_SHIFT) | PTE_P | PTE_U | writable
        vm.memory.write_bytes((pt_first_gfn + 1 + l1) << PAGE_SHIFT, struct.pack(f"<{ENTRIES}I", *table))
    vm.memory.write_bytes(pt_first_gfn << PAGE_SHIFT, struct.pack(f"<{ENTRIES}I", *directory))


def _write_start_info(vm, image: LoadedImage, p2m_at: int, pt_first_gfn: int, l1_count: int,
                      first_free: int) -> None:
    """The start-info block at START_INFO_ADDR: the header, then the module
    entries and strings (moved after the longer header)."""
    old_header = vm.memory.read_bytes(START_INFO_ADDR, BOOTINFO_HEADER_SIZE)
    _, mem_size, cmdline_at, module_count, modules_at, _ = struct.unpack("<6I", old_header)
    shift = START_INFO_HEADER_SIZE - BOOTINFO_HEADER_SIZE
    rest = vm.memory.read_bytes(START_INFO_ADDR + BOOTINFO_HEADER_SIZE, PAGE_SIZE - START_INFO_HEADER_SIZE)
    entries = bytearray(rest)
    for index in range(module_count):            # name pointers move with the strings
        at = 12 * index + 8
        struct.pack_into("<I", entries, at, struct.unpack_from("<I", entries, at)[0] + shift)
    info = StartInfo(mem_size, cmdline_at + shift, module_count, modules_at + shift, first_free,
                     SIF_DIRECT_PAGING, vm.physmap.frames, p2m_at, pt_first_gfn, 1 + l1_count,
                     vm.physmap.p2m[pt_first_gfn], UART_BASE)
    vm.memory.write_bytes(START_INFO_ADDR, info.pack() + bytes(entries))

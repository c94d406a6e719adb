"""The ELF loader: placement, boot modules, the boot-info block, and a table of
bad images (each a good image with one thing broken)."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from asm.isa import BOOTINFO_ADDR, BOOTINFO_MAGIC, EM_KITE32
from vmm.machine.errors import ImageError
from vmm.machine.loader import build_bootinfo, load, Module
from vmm.machine.symbols import Symbolizer

PF_X, PF_W, PF_R = 1, 2, 4             # ELF p_flags
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2
SHN_ABS = 0xFFF1
MEM = 0x400000   # 4 MiB
KERNEL_BASE = 0xC0000000
TEXT = bytes(range(1, 33))
DATA = b"DATA"


def good_segments(**overrides):
    """A kernel linked high (vaddr 0xC0100000) and loaded low (paddr 0x100000)."""
    text = dict(vaddr=KERNEL_BASE + 0x100000, paddr=0x100000, data=TEXT, flags=PF_R | PF_X)
    data = dict(vaddr=KERNEL_BASE + 0x101000, paddr=0x101000, data=DATA, memsz=0x1800,
                flags=PF_R | PF_W)
    text.update(overrides.get("text", {}))
    data.update(overrides.get("data", {}))
    return [text, data]


@pytest.fixture(autouse=True)
def _elf_builder(make_elf):
    """Let the module-level helpers build images with conftest's make_elf."""
    global build_elf
    build_elf = make_elf


def good_image(entry=KERNEL_BASE + 0x100008, **overrides):
    return build_elf(good_segments(**overrides), entry,
                     symbols=[("_start", KERNEL_BASE + 0x100000, STT_FUNC),
                              ("loop", KERNEL_BASE + 0x100010, STT_NOTYPE),
                              ("counter", KERNEL_BASE + 0x101000, STT_OBJECT, 2),
                              ("UART", 0xF0000000, STT_NOTYPE, SHN_ABS)])


def test_segments_land_at_p_paddr_with_bss_zeroed_and_entry_translated(physical_memory, write_file):
    memory = physical_memory(MEM)
    memory.write_bytes(0x101000, b"\xFF" * 0x2000)         # garbage where bss goes
    loaded = load(memory, write_file("k.elf", good_image()))
    assert memory.read_bytes(0x100000, len(TEXT)) == TEXT
    assert memory.read_bytes(0x101000, 4) == DATA
    assert memory.read_bytes(0x101004, 0x17FC) == bytes(0x17FC)
    assert memory.read_bytes(0x102800, 4) == b"\xFF" * 4    # past p_memsz: untouched
    assert loaded.entry_vaddr == 0xC0100008
    assert loaded.entry_paddr == 0x100008
    assert loaded.first_free == 0x103000


def test_symbols_name_code_addresses_by_nearest_function_or_label(physical_memory, write_file):
    loaded = load(physical_memory(MEM), write_file("k.elf", good_image()))
    assert loaded.symbols(0xC0100000) == "_start"
    assert loaded.symbols(0xC010000C) == "_start+0xc"
    assert loaded.symbols(0xC0100014) == "loop+0x4"
    assert loaded.symbols(0xC0101004) == "loop+0xff4"      # STT_OBJECT does not name code
    assert loaded.symbols(0xF0000000) is None             # absolute .equ symbols and MMIO: no name
    assert loaded.symbols.describe(0xC0100004) == "0xc0100004 <_start+0x4>"


def test_symbolizer_prefers_the_first_of_several_names_at_one_address():
    symbols = Symbolizer([("a", 0x10), ("b", 0x10), ("c", 0x20)])
    assert [symbols(0x10), symbols(0x1F), symbols(0x20), symbols(0xF)] == ["a", "a+0xf", "c", None]


def read_words(memory, paddr, count):
    return list(struct.unpack(f"<{count}I", memory.read_bytes(paddr, 4 * count)))


def read_cstring(memory, paddr):
    raw = memory.read_bytes(paddr, 256)
    return raw[:raw.index(0)].decode()


def test_modules_are_page_aligned_after_the_kernel_and_described_in_boot_info(physical_memory, write_file):
    memory = physical_memory(MEM)
    first = build_elf([dict(vaddr=0x1000, data=b"M1" * 10)], 0x1000)
    second = build_elf([dict(vaddr=0x1000, data=b"M2")], 0x1000)
    modules = [write_file("init.elf", first), write_file("shell.bin", second)]
    loaded = load(memory, write_file("k.elf", good_image()), modules, cmdline="console=uart quiet")
    magic, mem_size, cmdline_at, count, modules_at, first_free = read_words(memory, BOOTINFO_ADDR, 6)
    assert (magic, mem_size, count) == (BOOTINFO_MAGIC, MEM, 2)
    assert modules_at == BOOTINFO_ADDR + 24
    assert read_cstring(memory, cmdline_at) == "console=uart quiet"
    entries = [read_words(memory, modules_at + 12 * i, 3) for i in range(2)]
    assert [(start, size) for start, size, _ in entries] == [(0x103000, len(first)),
                                                            (0x104000, len(second))]
    assert [read_cstring(memory, name_at) for _, _, name_at in entries] == ["init", "shell"]
    assert memory.read_bytes(0x103000, len(first)) == first
    assert memory.read_bytes(0x104000, len(second)) == second
    assert first_free == loaded.first_free == 0x105000
    assert [m.name for m in loaded.modules] == ["init", "shell"]


def test_boot_info_golden_bytes_for_one_module():
    block = build_bootinfo(0x100000, "hi", [Module("m", 0x5000, 0x10)], 0x6000)
    assert block == struct.pack("<6I", BOOTINFO_MAGIC, 0x100000, 0x1024, 1, 0x1018, 0x6000) + \
        struct.pack("<3I", 0x5000, 0x10, 0x1027) + b"hi\0m\0"


def test_boot_info_that_does_not_fit_its_page_is_an_image_error():
    with pytest.raises(ImageError, match="boot-info block needs"):
        build_bootinfo(0x100000, "x" * 4096, [], 0x2000)
    with pytest.raises(ImageError, match="too many modules"):
        build_bootinfo(0x100000, "", [Module("m" * 20, 0, 0)] * 200, 0x2000)


def test_a_module_that_is_not_a_kite32_image_is_rejected(physical_memory, write_file):
    module = write_file("notes.txt", b"just some text, not an ELF file at all........" * 2)
    with pytest.raises(ImageError, match=r"notes\.txt: not an ELF file"):
        load(physical_memory(MEM), write_file("k.elf", good_image()), [module])


def test_a_module_that_does_not_fit_in_ram_is_rejected(physical_memory, write_file):
    big = write_file("big.elf", build_elf([dict(vaddr=0x1000, data=bytes(0x80000))], 0x1000))
    with pytest.raises(ImageError, match="big.elf: module of .* does not fit in RAM"):
        load(physical_memory(0x180000), write_file("k.elf", good_image()), [big])


def patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    """`data` with one field overwritten."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


E_TYPE, E_MACHINE, PH_FILESZ = 16, 18, 52 + 16

# name -> (builds the image bytes, the message it must give)
BAD_IMAGES = {
    "empty file": (lambda: b"", "not an ELF file"),
    "bad magic": (lambda: b"\x7fELG" + good_image()[4:], "not an ELF file"),
    "truncated header": (lambda: good_image()[:40], "truncated ELF header"),
    "truncated program headers": (lambda: good_image()[:60], "malformed ELF file|extends past the end"),
    "truncated segment data": (lambda: good_image()[:100], "extends past the end of the file|malformed"),
    "64-bit class": (lambda: patched(good_image(), 4, "B", 2), "not a 32-bit ELF file"),
    "big-endian": (lambda: patched(good_image(), 5, "B", 2), "not a little-endian ELF file"),
    "wrong machine": (lambda: patched(good_image(), E_MACHINE, "<H", 3), "not a Kite32 image .*EM_386"),
    "unknown machine": (lambda: patched(good_image(), E_MACHINE, "<H", 0x1234), r"e_machine 0x1234, expected 0x4b54"),
    "relocatable object": (lambda: patched(good_image(), E_TYPE, "<H", 1), "not an executable image .*ET_REL"),
    "filesz over memsz": (lambda: patched(good_image(), PH_FILESZ, "<I", 0x100), "p_filesz 0x100 > p_memsz 0x20"),
    "segment outside RAM": (lambda: good_image(data=dict(paddr=0x3FF000)), r"segment \[0x003ff000, 0x00400800\) is outside RAM"),
    "segment over MMIO": (lambda: good_image(data=dict(paddr=0xEFFFF000)), "overlaps MMIO"),
    "segment over boot info": (lambda: good_image(data=dict(paddr=0x800)), "overlaps the boot-info page"),
    "overlapping segments": (lambda: good_image(data=dict(paddr=0x100010)), "segments at 0x00100000 and 0x00100010 overlap"),
    "entry outside any segment": (lambda: good_image(entry=0xC0200000), "entry point 0xc0200000 is not inside an executable segment"),
    "entry in a data segment": (lambda: good_image(entry=0xC0101000), "entry point 0xc0101000 is not inside an executable"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_image_is_one_image_error_naming_file_and_problem(case, physical_memory, write_file):
    build, message = BAD_IMAGES[case]
    data = build()
    path = write_file("bad.elf", data)
    memory = physical_memory(MEM)
    with pytest.raises(ImageError, match=message) as raised:
        load(memory, path)
    text = str(raised.value)
    assert text.startswith(path + ": ") and "\n" not in text
    assert memory.read_bytes(0x100000, 4) == bytes(4)       # nothing was written


def test_missing_image_is_an_image_error(physical_memory, tmp_path):
    with pytest.raises(ImageError, match="nope.elf: cannot read image"):
        load(physical_memory(MEM), str(tmp_path / "nope.elf"))


def test_e_machine_constant_is_the_isa_one():
    assert struct.unpack_from("<H", good_image(), E_MACHINE)[0] == EM_KITE32


def test_image_or_module_file_past_64_mib_is_refused_by_its_size(physical_memory, write_file, tmp_path):
    big = tmp_path / "big.elf"
    with open(big, "wb") as handle:
        handle.truncate((64 << 20) + 1)             # sparse: nothing is written, nothing need be read
    message = "big.elf: cannot read image: larger than the 64 MiB limit for an input file"
    with pytest.raises(ImageError, match=message):
        load(physical_memory(MEM), str(big))
    with pytest.raises(ImageError, match=message):
        load(physical_memory(MEM), write_file("good.elf", good_image()), [str(big)])


def limited_memory() -> None:
    """preexec_fn: a 1 GiB address space, so reading without end fails fast."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("role", ["image", "module"])
def test_kite_run_of_dev_zero_exits_2_for_a_bad_image(write_file, role):
    # was: read until MemoryError, then exit 1 with a traceback
    image = "/dev/zero" if role == "image" else write_file("good.elf", good_image())
    modules = ["--module", "/dev/zero"] if role == "module" else []
    done = subprocess.run([str(Path(sys.executable).parent / "kite"), "run", "--bare", image, *modules],
                          capture_output=True, text=True, timeout=60, preexec_fn=limited_memory,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == "kite: error: /dev/zero: cannot read image: larger than the 64 MiB limit for an " \
                          "input file\n"

"""guestos/kernel/kernel.inc restates architecture, device, boot-info and ELF
constants for assembly; each must be what its source of truth says (asm/isa.py,
the device modules, the loader, the hypercall ABI, the ELF writer).

The header's values are read by the assembler itself: a file that includes
kernel.inc and emits `.word NAME` for each name, so expressions are evaluated
exactly as the kernel sees them."""

from __future__ import annotations

import re
import struct

import pytest

from asm import elf, isa
from asm.assembler import assemble
from kite.build import GUESTOS
from vmm.machine import loader
from vmm.machine.devices import disk, marker, timer, uart
from vmm.monitor import hypercall_abi as abi

KERNEL = GUESTOS / "kernel"
EQU = re.compile(r"^\s*\.equ\s+(\w+),", re.MULTILINE)

BOOTINFO_FIELDS = ("magic", "mem_size", "cmdline", "module_count", "modules", "first_free")  # loader.bootinfo order
MODULE_FIELDS = ("start", "size", "name")                                                   # one module entry


def field_offset(layout: struct.Struct, index: int) -> int:
    """The byte offset of field `index` of a struct format like '<16sHHI...' or '<8I'."""
    fields = []
    for count, code in re.findall(r"(\d*)([a-zA-Z])", layout.format.lstrip("<")):
        fields += [count + code] if code == "s" else [code] * int(count or 1)
    return struct.calcsize("<" + "".join(fields[:index]))


EXPECTED = {
    "PGSIZE": isa.PAGE_SIZE, "PGSHIFT": isa.PAGE_SHIFT, "PDXSHIFT": isa.PDX_SHIFT,
    "NPDENTRIES": 1 << (isa.PDX_SHIFT - isa.PTX_SHIFT),
    "PTE_P": isa.PTE_P, "PTE_W": isa.PTE_W, "PTE_U": isa.PTE_U, "PTE_FLAGS": isa.PAGE_MASK,
    "LEVEL_L1": abi.PIN_L1, "LEVEL_L2": abi.PIN_L2,
    "STATUS_KM": isa.STATUS_KM, "STATUS_IE": isa.STATUS_IE, "STATUS_PKM": isa.STATUS_PKM,
    "STATUS_PIE": isa.STATUS_PIE, "STATUS_UF": isa.STATUS_UF, "CAUSE_INTERRUPT": isa.CAUSE_INTERRUPT, "CAUSE_CODE_MASK": isa.CAUSE_CODE_MASK,
    "IRQ_TIMER": isa.IRQ_TIMER, "EXC_PAGE_FAULT": isa.EXC_PAGE_FAULT, "EXC_SYSCALL": isa.EXC_SYSCALL,
    "UART_BASE": isa.UART_BASE, "UART_TX": uart.UART_TX, "UART_RX": uart.UART_RX, "UART_STATUS": uart.UART_STATUS,
    "UART_RX_READY": uart.STATUS_RX_READY, "UART_RX_EOF": uart.STATUS_RX_EOF,
    "TIMER_BASE": isa.TIMER_BASE, "TIMER_CTRL": timer.TIMER_CTRL, "TIMER_INTERVAL": timer.TIMER_INTERVAL,
    "TIMER_ACK": timer.TIMER_ACK, "TIMER_ENABLE_PERIODIC": timer.CTRL_ENABLE | timer.CTRL_PERIODIC,
    "IRQ_DISK": isa.IRQ_DISK, "DISK_BASE": isa.DISK_BASE,
    **{name: getattr(disk, name) for name in ("DISK_SECTOR", "DISK_DMA_ADDR", "DISK_COUNT", "DISK_CMD", "DISK_STATUS",
                                              "DISK_CTRL", "DISK_CAPACITY", "DISK_ACK")},
    "DISK_CMD_READ": disk.CMD_READ, "DISK_CMD_WRITE": disk.CMD_WRITE, "DISK_STATUS_ERROR": disk.STATUS_ERROR,
    "DISK_STATUS_DONE": disk.STATUS_DONE, "DISK_CTRL_IRQ_ENABLE": disk.CTRL_IRQ_ENABLE,
    "SECTOR_SHIFT": disk.SECTOR_SIZE.bit_length() - 1,
    "POWER_BASE": isa.POWER_BASE, "MARKER_BASE": isa.MARKER_BASE, "MARKER_MARK": marker.MARKER_MARK,
    "MARK_BOOT_DONE": marker.BOOT_DONE, "MARK_ROI_BEGIN": marker.ROI_BEGIN, "MARK_ROI_END": marker.ROI_END,
    "MMIO_PAGES": (isa.MARKER_BASE - isa.MMIO_BASE) // isa.MMIO_DEVICE_SIZE + 1,      # every device page
    **{f"BI_{name.upper()}": 4 * index for index, name in enumerate(BOOTINFO_FIELDS) if name != "magic"},
    **{f"MOD_{name.upper()}": 4 * index for index, name in enumerate(MODULE_FIELDS)},
    "MOD_ENTRY_SIZE": loader.BOOTINFO_MODULE_ENTRY_SIZE,
    "ELF_MAGIC": int.from_bytes(loader.ELF_MAGIC, "little"),
    "E_ENTRY": field_offset(elf.EHDR, 4), "E_PHOFF": field_offset(elf.EHDR, 5),
    "E_PHENTSIZE": field_offset(elf.EHDR, 9), "E_PHNUM": field_offset(elf.EHDR, 10),
    "P_TYPE": field_offset(elf.PHDR, 0), "P_OFFSET": field_offset(elf.PHDR, 1), "P_VADDR": field_offset(elf.PHDR, 2),
    "P_FILESZ": field_offset(elf.PHDR, 4), "P_MEMSZ": field_offset(elf.PHDR, 5), "P_FLAGS": field_offset(elf.PHDR, 6),
    "PT_LOAD": elf.PT_LOAD, "PF_W": elf.PF_W,
}


def header_values(names: list[str]) -> dict[str, int]:
    """The value of each name as kernel.inc defines it, evaluated by kite-as."""
    source = '.include "kernel.inc"\n.data\n' + "".join(f".word {name}\n" for name in names)
    data = assemble(source, str(KERNEL / "values.s"), include_dirs=[str(KERNEL)]).section(".data").data
    return dict(zip(names, struct.unpack(f"<{len(names)}I", bytes(data))))


def test_the_boot_info_fields_are_in_the_loaders_order():
    """BOOTINFO_FIELDS above is the loader's packing order (one word each)."""
    assert loader.BOOTINFO_HEADER_SIZE == 4 * len(BOOTINFO_FIELDS)
    assert loader.BOOTINFO_MODULE_ENTRY_SIZE == 4 * len(MODULE_FIELDS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kernel_inc_states_the_source_of_truths_value(name):
    assert name in EQU.findall((KERNEL / "kernel.inc").read_text()), f"kernel.inc no longer defines {name}"
    assert header_values([name])[name] == EXPECTED[name] & 0xFFFFFFFF


def test_the_disk_calls_sector_size_and_the_transfer_ops_are_the_devices_and_the_rings():
    """syscall.inc's SECTOR_SIZE is the disk's; disk_transfer's ops (DISK_CMD_READ,
    DISK_CMD_WRITE) are passed to the block ring unchanged, as BLK_OP_READ, BLK_OP_WRITE;
    a call's DISK_IO_MAX sectors are whole ring requests, at most a ring's worth."""
    values = header_values(["SECTOR_SIZE", "SECTOR_SHIFT", "DISK_CMD_READ", "DISK_CMD_WRITE", "DISK_IO_MAX"])
    assert values["SECTOR_SIZE"] == disk.SECTOR_SIZE == 1 << values["SECTOR_SHIFT"]
    assert (values["DISK_CMD_READ"], values["DISK_CMD_WRITE"]) == (abi.BLK_OP_READ, abi.BLK_OP_WRITE)
    assert values["DISK_IO_MAX"] % abi.BLK_MAX_SECTORS == 0
    assert values["DISK_IO_MAX"] // abi.BLK_MAX_SECTORS <= abi.BLK_RING_SIZE


def test_the_vmms_user_base_is_the_guest_oss():
    """vmm/launch.py's GUEST_OS_USER_BASE (its hint for a user program booted as a kernel) is layout.inc's."""
    from vmm.launch import GUEST_OS_USER_BASE
    source = '.include "layout.inc"\n.data\n.word USER_BASE\n'
    include = KERNEL.parent / "include"
    data = assemble(source, str(include / "values.s"), include_dirs=[str(include)]).section(".data").data
    assert struct.unpack("<I", bytes(data))[0] == GUEST_OS_USER_BASE

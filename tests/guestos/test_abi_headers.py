"""guestos/include/hypercall.inc restates the hypercall ABI for assembly; it must
say exactly what vmm/monitor/hypercall_abi.py says."""

from __future__ import annotations

import re

from kite.build import GUESTOS
from vmm.monitor import hypercall_abi as abi

EQU = re.compile(r"^\s*\.equ\s+(\w+),\s*(\w+)", re.MULTILINE)


def header_values() -> dict[str, int]:
    text = (GUESTOS / "include" / "hypercall.inc").read_text()
    return {name: int(value, 0) for name, value in EQU.findall(text)}


def test_every_hypercall_number_is_the_abis():
    values = header_values()
    numbers = {name: value for name, value in values.items() if name.startswith("HC_")}
    assert numbers == {f"HC_{call.name.upper()}": call.number for call in abi.HYPERCALLS}


def test_argument_constants_and_start_info_offsets_are_the_abis():
    values = header_values()
    for name in ("PIN_L1", "PIN_L2", "TIMER_PERIODIC", "CONSOLE_WRITE_MAX", "CONSOLE_READ_MAX",
                 "MMU_UPDATE_MAX"):
        assert values[name] == getattr(abi, name), name
    offsets = {name.removeprefix("SI_").lower(): value for name, value in values.items() if name.startswith("SI_")}
    fields = {field.name: field.offset for field in abi.START_INFO_FIELDS}
    assert offsets == {name: offset for name, offset in fields.items() if offset >= 24}


def test_the_per_vcpu_page_offsets_are_the_abis():
    values = header_values()
    offsets = {name.removeprefix("VCPU_").lower(): value for name, value in values.items()
               if name.startswith("VCPU_")}
    assert offsets == {field.name: field.offset for field in abi.VCPU_FIELDS}


def test_the_block_ring_constants_are_the_abis():
    values = header_values()
    ring = {name: value for name, value in values.items() if name.startswith("BLK_")}
    offsets = {f"BLK_{field.name.upper()}": field.offset for field in abi.BLK_RING_HEADER + abi.BLK_SLOT_FIELDS}
    sizes = {name: getattr(abi, name) for name in ("BLK_RING_SIZE", "BLK_SLOTS_OFFSET", "BLK_SLOT_SIZE",
                                                   "BLK_MAX_SECTORS", "BLK_OP_READ", "BLK_OP_WRITE")}
    assert ring == offsets | sizes

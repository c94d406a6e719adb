"""docs/hypercalls.md's tables equal the data in vmm/monitor/hypercall_abi.py, and
the ABI's helpers (start-info packing, the ELF note) agree with the documented layout."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import asm.isa as isa
from vmm.monitor import hypercall_abi as abi

DOC = Path(__file__).resolve().parents[2] / "docs" / "hypercalls.md"
NONE_MARK = "—"


def table_after(heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table after the line `heading`."""
    lines = DOC.read_text().splitlines()
    at = lines.index(heading) + 1
    while not lines[at].startswith("|"):
        at += 1
    rows = []
    while at < len(lines) and lines[at].startswith("|"):
        rows.append([cell.strip() for cell in lines[at].strip("|").split("|")])
        at += 1
    return rows[2:]      # past the header and the separator


def test_register_convention_table_matches():
    names = isa.REG_ABI_NAMES
    expected = [
        ["hypercall number", names[abi.HC_NUMBER_REG]],
        ["arguments", ", ".join(names[reg] for reg in abi.HC_ARG_REGS)],
        ["result", names[abi.HC_RESULT_REG]],
        ["second result", names[abi.HC_RESULT2_REG]],
    ]
    assert table_after("## Register convention") == expected


def test_hypercall_table_matches():
    expected = [[str(call.number), call.name, ", ".join(call.args) or NONE_MARK, call.result, call.modes,
                 call.summary] for call in abi.HYPERCALLS]
    assert table_after("## Hypercalls") == expected


def test_hypercall_numbers_are_distinct_and_dense():
    numbers = [call.number for call in abi.HYPERCALLS]
    assert numbers == list(range(len(numbers)))
    assert len(abi.HC_ARG_REGS) >= max(len(call.args) for call in abi.HYPERCALLS)


def test_return_code_table_matches():
    expected = [[code.name, str(code.value), code.meaning] for code in abi.RETURN_CODES]
    assert table_after("## Return codes") == expected
    assert all(getattr(abi, code.name) == code.value for code in abi.RETURN_CODES)


def test_start_info_table_matches_and_tiles_the_header():
    expected = [[str(field.offset), field.name, field.meaning] for field in abi.START_INFO_FIELDS]
    assert table_after("## The start-info block") == expected
    assert [field.offset for field in abi.START_INFO_FIELDS] == list(range(0, abi.START_INFO_HEADER_SIZE, 4))


def test_start_info_pack_puts_each_field_at_its_documented_offset():
    values = {name: 0x1000 + index for index, name in enumerate(abi.StartInfo.__dataclass_fields__)}
    packed = abi.StartInfo(**values).pack()
    assert len(packed) == abi.START_INFO_HEADER_SIZE
    words = dict(zip((f.name for f in abi.START_INFO_FIELDS), struct.unpack("<14I", packed)))
    assert words.pop("magic") == isa.BOOTINFO_MAGIC
    assert words.pop("pv_magic") == abi.START_INFO_MAGIC
    assert words == values


def test_constants_table_lists_every_constant():
    documented = {row[0]: row[1] for row in table_after("## Constants")}
    isa_names = set(vars(isa))
    skip = {code.name for code in abi.RETURN_CODES} | set(ring_offset_names())
    constants = {name: value for name, value in vars(abi).items()
                 if name.isupper() and isinstance(value, (int, str)) and name not in isa_names
                 and name not in skip and not name.startswith(("HC_", "MODE_", "VCPU_"))}
    assert documented.keys() == constants.keys()
    for name, value in constants.items():
        assert documented[name] == (value if isinstance(value, str) else
                                    f"{value:#010x}" if documented[name].startswith("0x") else str(value))


def ring_offset_names() -> dict[str, int]:
    """BLK_<FIELD> -> offset, for every field of the block ring's header and slot."""
    return {f"BLK_{field.name.upper()}": field.offset for field in abi.BLK_RING_HEADER + abi.BLK_SLOT_FIELDS}


def test_block_ring_tables_match_and_their_offsets_are_the_constants():
    heading = ("The page holds a header and BLK_RING_SIZE slots of BLK_SLOT_SIZE bytes from BLK_SLOTS_OFFSET; "
               "request number n")
    header = [[str(field.offset), field.name, field.writer, field.meaning] for field in abi.BLK_RING_HEADER]
    slot = [[str(field.offset), field.name, field.writer, field.meaning] for field in abi.BLK_SLOT_FIELDS]
    assert table_after(heading) == header
    assert table_after("A slot, at BLK_SLOTS_OFFSET + BLK_SLOT_SIZE * (n % BLK_RING_SIZE):") == slot
    assert all(getattr(abi, name) == offset for name, offset in ring_offset_names().items())
    assert abi.BLK_SLOTS_OFFSET >= 4 * len(abi.BLK_RING_HEADER)
    assert 4 * len(abi.BLK_SLOT_FIELDS) <= abi.BLK_SLOT_SIZE
    assert abi.BLK_SLOTS_OFFSET + abi.BLK_RING_SIZE * abi.BLK_SLOT_SIZE <= isa.PAGE_SIZE


def test_vcpu_page_table_matches_and_its_offsets_are_the_constants():
    expected = [[str(field.offset), field.name, field.writer, field.meaning] for field in abi.VCPU_FIELDS]
    assert table_after("## The per-vCPU page") == expected
    assert [field.offset for field in abi.VCPU_FIELDS] == list(range(0, 4 * len(abi.VCPU_FIELDS), 4))
    for field in abi.VCPU_FIELDS:
        assert getattr(abi, f"VCPU_{field.name.upper()}") == field.offset


def test_mmu_update_element_table_matches_the_element_size():
    rows = table_after("## mmu_update batch element")
    assert [row[0] for row in rows] == ["+0", "+4"]
    assert 4 * len(rows) == abi.MMU_UPDATE_ELEMENT_SIZE


def test_the_paging_note_has_the_documented_layout():
    note = abi.paging_note()
    assert note == struct.pack("<III", 5, 4, abi.NT_KITE_PAGING) + b"Kite\0\0\0\0" + struct.pack("<I", 1)
    rows = {row[0]: row[1] for row in table_after("## The ELF note of direct-mode images")}
    assert rows["type"] == f"NT_KITE_PAGING ({abi.NT_KITE_PAGING})"
    assert rows["desc"].endswith(f"KITE_PAGING_DIRECT ({abi.KITE_PAGING_DIRECT})")


def test_paging_mode_of_finds_the_note_among_others():
    other = struct.pack("<III", 4, 8, 3) + b"GNU\0" + bytes(8)
    assert abi.paging_mode_of(other + abi.paging_note()) == abi.KITE_PAGING_DIRECT
    assert abi.paging_mode_of(other) is None
    with pytest.raises(ValueError, match="past the end"):
        abi.paging_mode_of(abi.paging_note()[:-2])


def test_paging_note_reads_back_with_readelf(tmp_path):
    """The real binutils agree on the note's layout (owner, size and desc bytes)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not installed")
    path = tmp_path / "note.elf"
    path.write_bytes(elf_with_note(abi.paging_note()))
    out = subprocess.run([readelf, "-n", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Displaying notes found in: .note.Kite" in out
    assert out.split("\n")[3].split()[:2] == ["Kite", "0x00000004"]
    assert "description data: 01 00 00 00" in out


def elf_with_note(note: bytes) -> bytes:
    """A minimal ELF32 relocatable file whose only section is .note.Kite."""
    shstrtab = b"\0.note.Kite\0.shstrtab\0"
    note_at = 52
    shstr_at = note_at + len(note)
    shoff = shstr_at + len(shstrtab)
    shoff += -shoff % 4
    header = (b"\x7fELF" + bytes((1, 1, 1)) + bytes(9) +
              struct.pack("<HHIIIIIHHHHHH", 1, isa.EM_KITE32, 1, 0, 0, shoff, 0, 52, 0, 0, 40, 3, 2))
    sections = (bytes(40) +
                struct.pack("<10I", 1, 7, 0, 0, note_at, len(note), 0, 0, 4, 0) +
                struct.pack("<10I", 12, 3, 0, 0, shstr_at, len(shstrtab), 0, 0, 1, 0))
    body = header + note + shstrtab
    return body + bytes(shoff - len(body)) + sections

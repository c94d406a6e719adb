"""docs/isa.md agrees with the code it documents: asm/isa.py, the device models
in vmm/machine/devices/ and the loader's boot-info block.  Every table is
parsed from the Markdown and compared with the constants; every ```asm example
is assembled.  A table is found by the headings above it, so the doc may grow
prose freely but a renamed heading or column fails here loudly."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from asm import isa
from asm.isa import (BY_MNEMONIC, CR_NUMBERS, FORMATS, INSTRUCTIONS, OPCODE, REG_ABI_NAMES, REG_AT,
                     REG_NUMBERS, decode, encode)
from vmm.machine import loader
from vmm.machine.devices import disk, marker, power, timer, uart

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "isa.md"
DEVICE_MODULES: dict[str, tuple[ModuleType, tuple[int, ...]]] = {
    "UART": (uart, uart.UART_REGISTERS),
    "Timer": (timer, timer.TIMER_REGISTERS),
    "Disk": (disk, disk.DISK_REGISTERS),
    "Power": (power, power.POWER_REGISTERS),
    "Marker": (marker, marker.MARKER_REGISTERS),
}
FLAG_NAMES = (isa.PRIVILEGED, isa.SENSITIVE, isa.BRANCH, isa.LOAD, isa.STORE, isa.TRAP)
NONE = "-"


# --- parsing the Markdown -------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A Markdown table: the headings enclosing it (outermost first) and its rows,
    each a dict keyed by column title, cells stripped and `\\|` unescaped."""
    headings: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.rows[0]) if self.rows else ()


def split_cells(line: str) -> list[str]:
    """The cells of a table line `| a | b \\| c |`; assumes the outer pipes."""
    cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [cell.strip().replace("\\|", "|") for cell in cells]


def parse_tables(text: str) -> list[Table]:
    """Every table in `text` outside fenced code blocks, with its headings."""
    tables, headings, block, fenced = [], {}, [], False
    for line in text.splitlines() + [""]:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            block.append(line)
            continue
        if block:
            titles, rows = split_cells(block[0]), [split_cells(row) for row in block[2:]]
            outer = tuple(headings[level] for level in sorted(headings))
            tables.append(Table(outer, tuple(dict(zip(titles, row)) for row in rows)))
            block = []
        heading = re.match(r"(#+) (.*)", line) if not fenced else None
        if heading:
            level = len(heading.group(1))
            headings = {lvl: title for lvl, title in headings.items() if lvl < level}
            headings[level] = heading.group(2).strip()
    return tables


def asm_blocks(text: str) -> list[str]:
    """The bodies of the fenced ```asm blocks, in order."""
    return re.findall(r"^```asm\n(.*?)^```", text, flags=re.M | re.S)


DOC = DOC_PATH.read_text(encoding="utf-8")
TABLES = parse_tables(DOC)


def tables_with(heading: str, column: str) -> list[Table]:
    """Tables under `heading` (at any level) that have `column`."""
    return [table for table in TABLES if heading in table.headings and column in table.columns]


def table(heading: str, column: str) -> Table:
    """The one table under `heading` with `column`; fails the test if not exactly one."""
    found = tables_with(heading, column)
    assert len(found) == 1, f"expected one table with column '{column}' under '{heading}', found {len(found)}"
    return found[0]


def code(cell: str) -> str:
    """`cell` without its backticks."""
    return cell.replace("`", "").strip()


def names_in(cell: str) -> list[str]:
    """The backticked names in a cell: "`MMIO_BASE`, `UART_BASE`" -> both."""
    return re.findall(r"`([^`]+)`", cell)


def bit_mask(cell: str) -> int:
    """The mask of a bit cell: "3" -> 0x8, "15:8" -> 0xFF00."""
    high, _, low = cell.partition(":")
    high, low = int(high), int(low or high)
    return ((1 << (high - low + 1)) - 1) << low


def namespace(table_: Table) -> dict[str, object]:
    """Where the table's constant names live: its device's module, or isa plus the loader."""
    for heading in table_.headings:
        if heading in DEVICE_MODULES:
            return vars(DEVICE_MODULES[heading][0])
    return {**vars(loader), **vars(isa)}


def constant(table_: Table, name: str) -> int:
    """The value of constant `name` as the table's namespace defines it."""
    names = namespace(table_)
    assert name in names, f"{name} (under '{table_.headings[-1]}') is not defined in the code"
    return names[name]


# --- the instruction table ------------------------------------------------------------


def test_encoding_table_lists_every_instruction_and_nothing_else():
    rows = table("Encoding table", "Mnemonic").rows
    documented = [code(row["Mnemonic"]) for row in rows]
    assert sorted(documented) == sorted(insn.mnemonic for insn in INSTRUCTIONS)
    assert len(set(documented)) == len(documented), "an instruction is listed twice"


@pytest.mark.parametrize("insn", INSTRUCTIONS, ids=lambda insn: insn.mnemonic)
def test_encoding_table_row_matches_the_isa(insn):
    rows = table("Encoding table", "Mnemonic").rows
    row = next(row for row in rows if code(row["Mnemonic"]) == insn.mnemonic)
    assert int(row["Opcode"], 16) == insn.opcode
    assert row["Format"] == insn.fmt
    assert code(row["Syntax"]) == f"{insn.mnemonic} {insn.syntax}".strip()
    assert row["Semantics"] == insn.summary
    flags = set() if row["Flags"] == NONE else {flag.strip() for flag in row["Flags"].split(",")}
    assert flags == set(insn.flags)
    assert flags <= set(FLAG_NAMES)


def test_fields_table_matches_every_format():
    rows = table("Instruction formats", "Role").rows
    documented = {(row["Format"], row["Role"]): (bit_mask(row["Bits"]), row["Signed"] == "yes")
                  for row in rows}
    expected = {(fmt, role): (field.mask << field.shift, field.signed)
                for fmt, fields in FORMATS.items() for role, field in fields.items()}
    expected[("all", "opcode")] = (OPCODE.mask << OPCODE.shift, OPCODE.signed)
    assert documented == expected


def test_register_table_names_every_register_in_order():
    rows = table("Registers", "ABI name").rows
    assert [(row["Number"], code(row["ABI name"])) for row in rows] == \
        [(f"r{number}", name) for number, name in enumerate(REG_ABI_NAMES)]


def parse_operand(role: str, text: str) -> int:
    """The number an operand written as `text` stands for in role `role`
    (targets are written `. + bytes` and stored as words)."""
    if role in ("rd", "rs1", "rs2"):
        return REG_NUMBERS[text]
    if role == "cr":
        return CR_NUMBERS[text]
    if role == "target":
        sign, offset = re.fullmatch(r"\. ([+-]) (\w+)", text).groups()
        return (-1 if sign == "-" else 1) * int(offset, 0) // 4
    return int(text, 0)


def parse_instruction(text: str) -> tuple:
    """(insn, operands) of one written instruction, e.g. `lw t1, 8(a0)`."""
    mnemonic, _, rest = text.partition(" ")
    insn = BY_MNEMONIC[mnemonic]
    values = [part.strip() for part in rest.replace("(", ", ").replace(")", "").split(",") if part.strip()]
    assert len(values) == len(insn.roles), f"'{text}' does not match the syntax '{insn.syntax}'"
    return insn, {role: parse_operand(role, value) for role, value in zip(insn.roles, values)}


def test_encoding_examples_match_isa_encode():
    rows = table("Encoding examples", "Word").rows
    assert rows
    for row in rows:
        insn, operands = parse_instruction(code(row["Instruction"]))
        assert f"{encode(insn, operands):#010x}" == row["Word"].lower(), row["Instruction"]


# --- exceptions, interrupts, control registers ---------------------------------------------


def test_exception_table_matches_the_exception_codes():
    found = table("Exceptions", "Code")
    documented = {int(row["Code"]): row["Name"] for row in found.rows}
    assert documented == isa.EXCEPTION_NAMES
    for row in found.rows:
        assert constant(found, code(row["Constant"])) == int(row["Code"])


def test_interrupt_table_matches_the_irq_numbers_and_cause_values():
    found = table("Interrupts", "IRQ")
    assert {int(row["IRQ"]): row["Name"] for row in found.rows} == isa.IRQ_NAMES
    for row in found.rows:
        irq = int(row["IRQ"])
        assert constant(found, code(row["Constant"])) == irq
        assert int(row["cause"], 16) == isa.CAUSE_INTERRUPT | irq


def test_control_register_table_matches_the_numbers_and_names():
    found = table("Control registers", "Number")
    assert [(int(row["Number"]), code(row["Name"])) for row in found.rows] == list(enumerate(isa.CR_NAMES))
    for row in found.rows:
        assert constant(found, code(row["Constant"])) == int(row["Number"])


# --- bit layouts ---------------------------------------------------------------------------


def bit_rows(heading: str) -> dict[str, int]:
    """{constant name: documented mask} of the one bit table under `heading`."""
    found = table(heading, "Bit")
    return {code(row["Constant"]): bit_mask(row["Bit"]) for row in found.rows if row["Constant"] != NONE}


def test_status_bits_cover_exactly_the_defined_bits():
    rows = bit_rows("Status register")
    assert set(rows) == {"STATUS_KM", "STATUS_IE", "STATUS_PKM", "STATUS_PIE", "STATUS_UF"}
    masks = list(rows.values())
    assert sum(masks) == isa.STATUS_DEFINED and len(set(masks)) == len(masks)


def test_pte_bits_cover_the_whole_entry_format():
    rows = bit_rows("PDE and PTE format")
    assert set(rows) == {"PTE_P", "PTE_W", "PTE_U", "PTE_A", "PTE_D", "PTE_FRAME_MASK"}


def test_page_fault_error_code_bits_are_all_documented():
    rows = bit_rows("Page-fault error code")
    assert set(rows) == {"PF_PRESENT", "PF_WRITE", "PF_USER", "PF_FETCH"}


def test_ptb_and_cause_bits_are_documented():
    assert set(bit_rows("Address translation")) == {"PTB_ENABLE", "PTB_FRAME_MASK"}
    assert set(bit_rows("Trap entry and rfe")) == {"CAUSE_INTERRUPT", "CAUSE_CODE_MASK"}


BIT_TABLES = [found for found in TABLES if {"Bit", "Constant"} <= set(found.columns)]
VALUE_TABLES = [found for found in TABLES if {"Constant", "Value"} <= set(found.columns)]


@pytest.mark.parametrize("found", BIT_TABLES, ids=lambda found: found.headings[-1])
def test_every_documented_bit_matches_its_constant(found):
    for row in found.rows:
        if row["Constant"] != NONE:
            name = code(row["Constant"])
            assert constant(found, name) == bit_mask(row["Bit"]), f"{name} is not bit(s) {row['Bit']}"


@pytest.mark.parametrize("found", VALUE_TABLES, ids=lambda found: found.headings[-1])
def test_every_documented_value_matches_its_constant(found):
    for row in found.rows:
        name = names_in(row["Constant"])[0]
        assert constant(found, name) == int(row["Value"], 0), f"{name} is not {row['Value']}"


# --- memory map, devices, boot-info block ----------------------------------------------------


def test_memory_map_addresses_match_the_constants():
    found = table("Physical memory map", "Start")
    starts = {}
    for row in found.rows:
        for name in names_in(row["Constant"]):
            starts[name] = int(row["Start"], 16)
            assert constant(found, name) == starts[name], f"{name} is not at {row['Start']}"
            assert int(row["End"], 16) - starts[name] + 1 == (
                isa.MMIO_DEVICE_SIZE if name.endswith("_BASE") else isa.PAGE_SIZE)
    assert {"BOOTINFO_ADDR", "MMIO_BASE", "UART_BASE", "TIMER_BASE", "DISK_BASE", "POWER_BASE",
            "MARKER_BASE"} <= set(starts)


@pytest.mark.parametrize("device", sorted(DEVICE_MODULES))
def test_device_register_table_matches_the_device_model(device):
    found = table(device, "Offset")
    registers = DEVICE_MODULES[device][1]
    offsets = [int(row["Offset"], 16) for row in found.rows]
    assert sorted(offsets) == sorted(registers), f"{device}: documented offsets differ from the model's"
    for row in found.rows:
        assert constant(found, code(row["Constant"])) == int(row["Offset"], 16), row["Register"]
        assert code(row["Constant"]).endswith("_" + row["Register"])


@pytest.mark.parametrize("device", sorted(DEVICE_MODULES))
def test_every_status_and_ctrl_bit_of_a_device_is_documented(device):
    module = DEVICE_MODULES[device][0]
    defined = {name for name in vars(module) if name.startswith(("STATUS_", "CTRL_"))}
    documented = {code(row["Constant"]) for found in tables_with(device, "Bit") for row in found.rows}
    assert documented == defined


BOOT_MEM_SIZE = 0x01000000
BOOT_CMDLINE = "root=disk console=uart"
BOOT_MODULE = loader.Module("init", 0x00200000, 0x1234)
BOOT_FIRST_FREE = 0x00202000


def c_string(block: bytes, address: int) -> str:
    """The NUL-terminated string at physical `address` inside the boot-info block."""
    start = address - isa.BOOTINFO_ADDR
    return block[start:block.index(b"\0", start)].decode()


def boot_info_tables() -> tuple[Table, Table]:
    """The boot-info header table and the module-entry table, in that order."""
    found = tables_with("Boot state and the boot-info block", "Field")
    assert len(found) == 2, "expected the header table and the module-entry table"
    return found[0], found[1]


def words_at(block: bytes, base: int, layout: Table) -> dict[str, int]:
    """{field: the 32-bit word at base + its documented offset} for every row of `layout`."""
    return {row["Field"]: struct.unpack_from("<I", block, base + int(row["Offset"]))[0]
            for row in layout.rows}


def test_boot_info_block_layout_matches_the_loader():
    header, entry_layout = boot_info_tables()
    block = loader.build_bootinfo(BOOT_MEM_SIZE, BOOT_CMDLINE, [BOOT_MODULE], BOOT_FIRST_FREE)
    info = words_at(block, 0, header)
    assert list(info) == ["magic", "mem_size", "cmdline", "module_count", "modules", "first_free"]
    assert info["magic"] == isa.BOOTINFO_MAGIC and info["mem_size"] == BOOT_MEM_SIZE
    assert c_string(block, info["cmdline"]) == BOOT_CMDLINE
    assert info["module_count"] == 1 and info["first_free"] == BOOT_FIRST_FREE
    entry = words_at(block, info["modules"] - isa.BOOTINFO_ADDR, entry_layout)
    assert list(entry) == ["start", "size", "name"]
    assert entry["start"] == BOOT_MODULE.start and entry["size"] == BOOT_MODULE.size
    assert c_string(block, entry["name"]) == BOOT_MODULE.name


# --- ELF ------------------------------------------------------------------------------------


def test_relocation_table_matches_the_relocation_types():
    rows = table("Relocations", "Type").rows
    assert {int(row["Number"]): code(row["Type"]) for row in rows} == isa.RELOC_NAMES
    assert all(getattr(isa, code(row["Type"])) == int(row["Number"]) for row in rows)


# --- assembly -------------------------------------------------------------------------------


EXAMPLES = asm_blocks(DOC)


def assemble_or_fail(source: str, filename: str):
    """The ObjectFile for `source`; fails the test with the diagnostics on an AssemblyError."""
    from asm.assembler import assemble
    from asm.diagnostics import AssemblyError
    try:
        return assemble(source, filename)
    except AssemblyError as error:
        pytest.fail(f"{filename} does not assemble:\n{error}")


def test_the_doc_has_assembly_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("number", range(len(EXAMPLES)), ids=lambda number: f"example{number + 1}")
def test_assembly_example_assembles(number):
    obj = assemble_or_fail(EXAMPLES[number], f"docs/isa.md example {number + 1}")
    text = obj.section(".text")
    assert text is not None and text.size > 0 and text.size % 4 == 0


PSEUDO_SOURCE = """
        .text
start:  nop
        mov     a0, a1
        li      a0, 5
        li      a0, 0x10000
        li      a0, 0x12345678
        li      a0, start
        la      a0, start
        j       start
        call    start
        jr      a0
        ret
        push    s0
        pop     s0
        beqz    a0, start
        bnez    a0, start
        bltz    a0, start
        bgez    a0, start
        bgtz    a0, start
        blez    a0, start
        not     a0, a1
        neg     a0, a1
"""


def test_no_pseudo_instruction_expansion_uses_at():
    text = assemble_or_fail(PSEUDO_SOURCE, "pseudo.s").section(".text").data
    words = struct.unpack(f"<{len(text) // 4}I", text)
    assert len(words) >= 25
    for word in words:
        decoded = decode(word)
        assert decoded is not None, f"{word:#010x} does not decode"
        registers = [value for role, value in decoded.operands.items() if role in ("rd", "rs1", "rs2")]
        assert REG_AT not in registers, f"{decoded.insn.mnemonic} {decoded.operands} uses at"

"""Per-instruction semantics from small assembled programs on the bare machine.

Each tests/machine/testdata/*.s program runs until `halt`; its inline
`# EXPECT reg = value` lines give the register contents at that point, where
value is a number, a symbol, or symbol+number (resolved from the image), all
worked out by hand from docs/isa.md.  The programs go through the real
toolchain (assemble, link) and the real Machine.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from asm.assembler import assemble
from asm.isa import REG_NUMBERS
from asm.linker import LinkOptions, link
from vmm.machine.machine import Machine
from vmm.machine.outcome import EndReason

TESTDATA = Path(__file__).parent / "testdata"
PROGRAMS = sorted(TESTDATA.glob("*.s"))
EXPECT = re.compile(r"#\s*EXPECT\s+(\w+)\s*=\s*([\w.]+)(?:\+(\w+))?\s*$")


def expectations(source: str) -> list[tuple[str, str, str | None, int]]:
    """(register, value or symbol, addend or None, line number) per EXPECT line."""
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        match = EXPECT.search(line)
        if match:
            found.append((match.group(1), match.group(2), match.group(3), number))
    return found


def resolve(value: str, addend: str | None, symbols) -> int:
    base = int(value, 0) if value[0].isdigit() else symbols[value]
    return (base + (int(addend, 0) if addend else 0)) & 0xFFFFFFFF


def image_symbols(path: Path) -> dict[str, int]:
    """Name -> value of every named symbol in the ELF image at `path`."""
    with open(path, "rb") as stream:
        return {symbol.name: symbol["st_value"]
                for symbol in ELFFile(stream).get_section_by_name(".symtab").iter_symbols() if symbol.name}


def boot(tmp_path: Path, source: str, name: str) -> tuple[Machine, dict[str, int]]:
    """Assemble, link at 0x100000 and run `source` until it halts on a 4 MiB
    machine; the machine and the image's symbols."""
    image = tmp_path / f"{name}.elf"
    image.write_bytes(link([assemble(source, name)], LinkOptions(text_address=0x100000)))
    machine = Machine(4 << 20, console_out=io.BytesIO())
    machine.load(str(image))
    result = machine.run(max_instructions=10_000)
    assert result.reason == EndReason.HALT, result.message
    return machine, image_symbols(image)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda path: path.stem)
def test_program_registers_match_its_inline_expectations(tmp_path, program):
    source = program.read_text()
    expected = expectations(source)
    assert expected, f"{program.name} has no EXPECT lines"
    machine, symbols = boot(tmp_path, source, program.name)
    failures = []
    for register, value, addend, line in expected:
        want = resolve(value, addend, symbols)
        got = machine.cpu.regs[REG_NUMBERS[register]]
        if got != want:
            failures.append(f"{program.name}:{line}: {register} = {got:#010x}, expected {want:#010x}")
    assert not failures, "\n".join(failures)

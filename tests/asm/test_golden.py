"""Golden files in testdata/, in the style of Go's cmd/asm testdata:

- isa_*.s: every instruction line ends with its expected encoding, worked out by
  hand (`# 0x05158000`, two words for a two-word pseudo-instruction); the file is
  assembled and its .text compared word by word, naming the line of a mismatch.
- isa_*.expect: the expected sections, symbols and relocations of isa_*.s.
- err_*.s: lines marked `# ERROR: text` must produce an error containing the text,
  at that line, and no other line may produce an error.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from asm.assembler import assemble
from asm.diagnostics import AssemblyError
from asm.isa import RELOC_NAMES
from asm.lines import object_line_table

TESTDATA = Path(__file__).with_name("testdata")
EXPECT_WORDS = re.compile(r"^([^#]*\S[^#]*?)\s*#\s*((?:0x[0-9a-fA-F]{8}\s*)+)$")
EXPECT_ERROR = re.compile(r"#\s*ERROR:\s*(.*?)\s*$")


def golden(pattern: str) -> list[Path]:
    return sorted(TESTDATA.glob(pattern))


def expected_words(path: Path) -> list[tuple[int, str, list[int]]]:
    """(line number, source text, expected words) for every line carrying an encoding."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECT_WORDS.match(line)
        if match:
            found.append((number, match.group(1).strip(), [int(w, 16) for w in match.group(2).split()]))
    return found


@pytest.mark.parametrize("path", [p for p in golden("isa_*.s") if not p.with_suffix(".expect").exists()],
                         ids=lambda p: p.name)
def test_every_instruction_line_encodes_to_its_expected_words(path):
    expectations = expected_words(path)
    assert expectations, f"{path.name} has no expectations"
    text = assemble(path.read_text(), str(path)).section(".text").data
    words = [int.from_bytes(text[i:i + 4], "little") for i in range(0, len(text), 4)]
    mismatches, position = [], 0
    for number, source, expected in expectations:
        got = words[position:position + len(expected)]
        if got != expected:
            mismatches.append(f"{path.name}:{number}: {source}: expected "
                              f"{' '.join(f'0x{w:08x}' for w in expected)}, got "
                              f"{' '.join(f'0x{w:08x}' for w in got)}")
        position += len(expected)
    assert not mismatches, "\n".join(mismatches)
    assert position == len(words), f"{path.name}: {len(words) - position} words without an expectation"


def dump(obj) -> list[str]:
    """The ObjectFile as the lines of an .expect file."""
    lines = []
    for s in obj.sections:
        if s.name == ".debug_line":     # its size and bytes hold the source's path: show its rows
            lines.append(f"section {s.name} type={s.sh_type} flags={s.sh_flags:#x} align={s.sh_addralign}")
            lines += [f"  {r.section}+{r.start} {Path(r.source.file).name}:{r.source.line}"
                      for r in object_line_table(obj).ranges]
            continue
        lines.append(f"section {s.name} type={s.sh_type} flags={s.sh_flags:#x} "
                     f"align={s.sh_addralign} size={s.size}")
        if s.data:
            lines.append("  " + bytes(s.data).hex(" ", -4))
    lines += [f"symbol {s.name} value={s.value} section={s.section} binding={s.binding} "
              f"type={s.sym_type} size={s.size}" for s in obj.symbols]
    lines += [f"reloc {r.section}+{r.r_offset} {RELOC_NAMES[r.r_type]} {r.symbol}+{r.r_addend}"
              for r in obj.relocations]
    return lines


@pytest.mark.parametrize("path", golden("isa_*.expect"), ids=lambda p: p.name)
def test_directives_produce_the_expected_sections_symbols_and_relocations(path):
    source = path.with_suffix(".s")
    assert dump(assemble(source.read_text(), str(source))) == path.read_text().splitlines()


@pytest.mark.parametrize("path", golden("err_*.s"), ids=lambda p: p.name)
def test_exactly_the_marked_lines_report_their_errors(path):
    expected = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECT_ERROR.search(line)
        if match:
            expected[number] = match.group(1)
    with pytest.raises(AssemblyError) as caught:
        assemble(path.read_text(), str(path))
    reported: dict[int, list[str]] = {}
    for diagnostic in caught.value.diagnostics:
        assert diagnostic.filename == str(path)
        reported.setdefault(diagnostic.line, []).append(diagnostic.message)
    problems = [f"line {n}: unexpected error(s) {reported[n]}" for n in sorted(reported.keys() - expected.keys())]
    problems += [f"line {n}: expected an error containing {text!r}, got {reported.get(n)}"
                 for n, text in sorted(expected.items())
                 if not any(text in message for message in reported.get(n, []))]
    assert not problems, "\n".join(problems)


def test_disassembly_of_random_valid_words_reassembles_to_the_same_words():
    """Differential check against asm/disasm.py: every instruction with random operand
    values in its fields, disassembled at its own address and assembled again."""
    from asm import isa
    from asm.disasm import disassemble_word
    rng = random.Random(7)
    words = []
    for insn in isa.INSTRUCTIONS:
        for _ in range(20):
            operands = {}
            for role in insn.roles:
                operands[role] = rng.randint(*isa.operand_range(insn, role))
            words.append(isa.encode(insn, operands))
    text = "\n".join(disassemble_word(word, 4 * index) for index, word in enumerate(words))
    data = assemble(text + "\n").section(".text").data
    assert [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)] == words

"""Every example of docs/isa.md "Examples" is, as the section says, a complete
source file: it assembles, links at 0x100000 and runs on the bare machine with
the result its own comments give."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from vmm.cli import run

DOC = Path(__file__).resolve().parents[2] / "docs" / "isa.md"
# title -> (console output, exit code), as each example's comments say
EXPECTED = {
    "UART hello": (b"hello, kite32\n", 0),             # "Print a line on the console, then ... exit code 0"
    "Trap handler skeleton": (b"", 42),                # "exit code 42: a0 survived the trap"
    "Building page tables and turning paging on": (b"P", 0),   # prints P through the mapped UART page
    "Reading a disk sector by polling": (b"", 0),      # "a0 = 0 on success"; halt gives 0
    "A critical section with rdsr and wrsr": (b"", 1),  # "the exit code is the counter, 1"
}


def examples() -> dict[str, str]:
    """Title -> source of each ```asm block under "## Examples"."""
    text = DOC.read_text()
    return dict(re.findall(r"### (.*?)\n.*?```asm\n(.*?)```", text[text.index("## Examples"):], re.S))


def test_every_example_has_its_expected_result():
    assert set(examples()) == set(EXPECTED)


@pytest.mark.parametrize("title", list(EXPECTED))
def test_the_example_assembles_links_and_runs_as_its_comments_say(title, tmp_path):
    image = tmp_path / "example.elf"
    image.write_bytes(link([assemble(examples()[title], "example.s", {}, [])], LinkOptions(text_address=0x100000)))
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4 * 512))
    result = CliRunner().invoke(run, ["--bare", str(image), "--disk", str(disk), "--max-instructions", "1000000"])
    assert (result.stdout_bytes, result.exit_code) == EXPECTED[title], result.stderr

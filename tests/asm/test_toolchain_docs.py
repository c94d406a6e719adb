"""docs/linker.md's worked example, replayed: its files are written, each `$` command is run with the
installed scripts, and what it prints (stdout then stderr) must be exactly the text after it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "linker.md"
BIN = Path(sys.executable).parent


def worked_example() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({file name: text}, [(command, expected output)]) of the doc's "A worked example"."""
    section = DOC.read_text().split("## A worked example", 1)[1].split("\n## ", 1)[0]
    files = dict(re.findall(r"`([\w.]+)`:\n\n```s\n(.*?)```", section, re.S))
    console = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    steps = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", console, re.M)
    return files, steps


def test_the_worked_example_has_files_and_commands():
    files, steps = worked_example()
    assert set(files) == {"main.s", "lib.s"} and len(steps) == 8


def test_the_worked_example_prints_what_the_doc_says(tmp_path):
    files, steps = worked_example()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for command, expected in steps:
        argv = shlex.split(command)
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True, text=True)
        assert done.stdout + done.stderr == expected, command
    assert (tmp_path / "hello.map").read_text().endswith("OUTPUT(hello.elf elf32-kite32)\n")

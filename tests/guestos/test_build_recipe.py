"""docs/userspace.md's recipe for building one user program by hand works as written: its commands, run
in order (`cd` included, /tmp replaced by a scratch directory), give an image that prints what the recipe says."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "userspace.md"


def recipe() -> list[str]:
    """The command lines of the code block after "To build one program by hand"."""
    text = DOC.read_text()
    block = re.search(r"To build one program by hand.*?```\n(.*?)```", text, re.S)
    assert block, "docs/userspace.md has no recipe"
    return block[1].splitlines()


def test_the_recipe_builds_a_program_that_boots_and_prints_what_it_says(tmp_path):
    bin_dir = Path(sys.executable).parent
    environment = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    here, last = ROOT, None
    for line in recipe():
        command, _, comment = line.partition("#")
        words = [word.replace("/tmp/", f"{tmp_path}/") for word in shlex.split(command)]
        if words[0] == "cd":
            here = (here / words[1]).resolve()
            continue
        last = subprocess.run(words, cwd=here, env=environment, capture_output=True, text=True)
        assert last.returncode == 0, (line, last.stderr)
    assert last.stdout == comment.strip() + "\n"

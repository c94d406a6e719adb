"""`kite demo` (what `make demo` runs) disassembles the sample and boots both demos."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kite.build import build_all


@pytest.mark.slow
def test_demo_disassembles_the_sample_and_boots_both_demos_with_their_exit_codes():
    build_all()
    done = subprocess.run([sys.executable, "-m", "kite", "demo"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "$ kite objdump -d -t guestos/build/hello.elf" in done.stdout
    assert "<_start>:" in done.stdout and "halt" in done.stdout
    assert "hello from kite32\n" in done.stdout
    assert "kite32: timer interrupt taken, exit code 7\n" in done.stdout
    assert "kite: stats:" in done.stderr

"""`kite demo` (what `make demo` runs): the sample disassembled and booted, then the comparison."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kite.build import build_all


@pytest.mark.slow
def test_demo_disassembles_and_boots_the_sample_then_compares_the_workloads():
    build_all()
    done = subprocess.run([sys.executable, "-m", "kite", "demo", "--workloads", "hello"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "$ kite objdump -d guestos/build/hello.elf" in done.stdout
    assert "<_start>:" in done.stdout and "halt" in done.stdout
    assert "hello from kite32\n" in done.stdout
    assert "$ kite compare -j 2 --workloads hello" in done.stdout
    assert "All 5 runs of 1 workload(s) ended with the same output and exit code in every configuration." \
        in done.stdout

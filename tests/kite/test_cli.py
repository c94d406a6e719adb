"""CLI conventions shared by every command (issue: toolchain, "CLI conventions")."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from kite.cli import SUBCOMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
HOST_TOOLS = {"as", "ld", "objdump", "nm", "readelf", "objcopy", "gcc", "cc"}


def test_installed_commands_are_kite_prefixed_and_never_shadow_host_tools():
    assert set(SCRIPTS) == {"kite", "kite-as", "kite-ld", "kite-objdump", "kite-nm"}
    assert not set(SCRIPTS) & HOST_TOOLS


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_kite_subcommand_has_help_with_an_example(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_installed_script_runs_and_has_help_with_an_example(script):
    done = subprocess.run([str(Path(sys.executable).parent / script), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Example" in done.stdout


def test_unknown_subcommand_is_a_usage_error_not_a_traceback():
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output


@pytest.mark.parametrize("module", ["asm", "kite"])
def test_python_dash_m_works(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout

"""The Pygments lexer (asm/pygments_lexer.py): generated from the tables, registered as the
`kite32` plugin, and it highlights every guest source without an Error token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, Error, Keyword, Name, Punctuation

from asm import isa
from asm.pygments_lexer import Kite32Lexer

ROOT = Path(__file__).resolve().parents[2]
GUEST_SOURCES = sorted(p for p in (ROOT / "guestos").rglob("*") if p.suffix in (".s", ".inc"))


def _tokens(text: str) -> list[tuple[object, str]]:
    return [(kind, value) for kind, value in Kite32Lexer().get_tokens(text) if value.strip()]


@pytest.mark.parametrize("path", GUEST_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_guest_source_highlights_without_an_error_token(path):
    errors = [value for kind, value in Kite32Lexer().get_tokens(path.read_text()) if kind in Error]
    assert errors == []


def test_there_are_guest_sources_to_highlight():
    assert len(GUEST_SOURCES) >= 10


def test_every_mnemonic_register_and_control_register_of_the_isa_table_is_recognised():
    for insn in isa.INSTRUCTIONS:
        assert _tokens(f"{insn.mnemonic}\n")[0] == (Keyword, insn.mnemonic)
    for name in isa.REG_NUMBERS:
        assert (Name.Builtin, name) in _tokens(f"jr {name}\n")
    for name in isa.CR_NAMES:
        assert (Name.Builtin.Pseudo, name) in _tokens(f"mfcr a0, {name}\n")


def test_a_statement_is_labels_then_a_name_then_operands():
    assert _tokens("loop: 1: ADDI a0, a0, %lo(x)  # note\n") == [
        (Name.Label, "loop"), (Punctuation, ":"), (Name.Label, "1"), (Punctuation, ":"),
        (Keyword, "ADDI"), (Name.Builtin, "a0"), (Punctuation, ","), (Name.Builtin, "a0"), (Punctuation, ","),
        (Name.Function.Magic, "%lo"), (Punctuation, "("), (Name, "x"), (Punctuation, ")"),
        (Comment.Single, "# note")]
    assert _tokens("twice a1\n.word 1b\n")[:2] == [(Name.Function, "twice"), (Name.Builtin, "a1")]
    assert (Keyword.Pseudo, ".word") in _tokens(".word 1b\n")


def test_the_lexer_is_the_kite32_pygments_plugin():
    assert type(get_lexer_by_name("kite32")) is Kite32Lexer


def test_pygmentize_highlights_a_guest_source(tmp_path):
    pygmentize = Path(sys.executable).parent / "pygmentize"
    done = subprocess.run([str(pygmentize), "-l", "kite32", "-f", "html", str(ROOT / "guestos/examples/hello.s")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert '<span class="k">' in done.stdout and '<span class="err">' not in done.stdout

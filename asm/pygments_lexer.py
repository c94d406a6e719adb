"""A Pygments lexer for Kite32 assembly (`pygmentize -l kite32 file.s`), built from the tables.

Every word it knows comes from where the assembler takes it: the mnemonics from isa.INSTRUCTIONS
and the pseudo-instructions of asm/lower.py (isa.ALIASES and li/la/push/pop), registers from
isa.REG_NUMBERS, control registers from isa.CR_NAMES, directives from asm/directives.py.  So a
new instruction, register or directive is highlighted with no edit here.  Registered as the
Pygments plugin `kite32` (pyproject.toml, entry point group "pygments.lexers").

A statement is lexed as labels, then its name (a mnemonic, a directive, or any other word: a
macro), then operands to the end of the line.  Mnemonics match in any case, as the assembler
accepts them.
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace,
)

from asm import isa
from asm.directives import CONDITIONALS, DIRECTIVES
from asm.lower import PSEUDO_SYNTAX

MNEMONICS = sorted({insn.mnemonic for insn in isa.INSTRUCTIONS} | set(PSEUDO_SYNTAX),
                   key=len, reverse=True)
DIRECTIVE_NAMES = sorted({*DIRECTIVES, *CONDITIONALS, ".macro", ".endm"}, key=len, reverse=True)
REGISTERS = sorted(isa.REG_NUMBERS, key=len, reverse=True)
IDENT = r"[A-Za-z_.$][A-Za-z0-9_.$]*"
END = r"(?![A-Za-z0-9_.$])"


def _end_of_statement():
    """Rules shared by both states: blanks, comments and the newline that ends a statement."""
    return [(r"[ \t\f\r]+", Whitespace), (r"#.*?$", Comment.Single), (r"\n", Whitespace, "#pop")]


class Kite32Lexer(RegexLexer):
    """Kite32 assembly, as kite-as reads it (docs/assembler.md)."""

    name = "Kite32 assembly"
    aliases = ["kite32", "kite32asm"]
    filenames = ["*.s", "*.inc"]
    mimetypes = ["text/x-kite32asm"]
    flags = re.MULTILINE

    tokens = {
        "root": [
            (r"[ \t\f\r\n]+", Whitespace),
            (r"#.*?$", Comment.Single),
            (rf"({IDENT}|[0-9]+)([ \t\f\r]*)(:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (words(DIRECTIVE_NAMES, suffix=END), Keyword.Pseudo, "operands"),
            ("(?i)" + words(MNEMONICS, suffix=END).get(), Keyword, "operands"),
            (r"\.[A-Za-z0-9_.$]+", Keyword.Pseudo, "operands"),
            (r"\\[A-Za-z_][A-Za-z0-9_]*", Name.Variable, "operands"),
            (IDENT, Name.Function, "operands"),
        ],
        "operands": _end_of_statement() + [
            (words(REGISTERS, suffix=END), Name.Builtin),
            (words(isa.CR_NAMES, suffix=END), Name.Builtin.Pseudo),
            (r"%(hi|lo)" + END, Name.Function.Magic),
            (r"0[xX][0-9a-fA-F]+", Number.Hex),
            (r"0[bB][01]+", Number.Bin),
            (r"[0-9]+[bf]" + END, Name.Label),
            (r"[0-9]+", Number.Integer),
            (r'"(?:[^"\\\n]|\\[^\n])*"', String.Double),
            (r"'(?:\\[^\n]|[^'\\\n])[^'\n]*'", String.Char),
            (r"@[A-Za-z_]+", Name.Attribute),
            (r"\\\(\)|\\[A-Za-z_][A-Za-z0-9_]*", Name.Variable),
            (r"<<|>>|[-+*/%&|^~=]", Operator),
            (r"[(),]", Punctuation),
            (IDENT, Name),
            (r"\\", Text),
        ],
    }

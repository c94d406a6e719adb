"""Assembler diagnostics: where an error is and how it is printed, and how
the toolchain's messages show a name read from an input file.

Every stage collects Diagnostics instead of raising on the first problem; the
assembler raises one AssemblyError carrying all of them at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

SHOWN_LINE = 160       # a longer source line is shown as this many characters around the column


@dataclass(frozen=True)
class Diagnostic:
    """One error: 1-based `line` and `col` in `filename`, and the text of that line."""
    filename: str
    line: int
    col: int
    message: str
    source_line: str = ""

    def render(self) -> str:
        """`file:line:col: error: message`, then the source line and a caret under col."""
        head = f"{self.filename}:{self.line}:{self.col}: error: {self.message}"
        if not self.source_line:
            return head
        shown, col = excerpt(self.source_line, self.col)
        # keep tabs so the caret lines up however the terminal expands them
        pad = "".join(ch if ch == "\t" else " " for ch in shown[:max(col - 1, 0)])
        return f"{head}\n{shown}\n{pad}^"


def excerpt(line: str, col: int) -> tuple[str, int]:
    """(text to show, column of `col` in it): `line` itself, or for a line
    longer than SHOWN_LINE the SHOWN_LINE characters around `col` with "..."
    marking what is left out."""
    if len(line) <= SHOWN_LINE:
        return line, col
    start = max(0, min(col - 1 - SHOWN_LINE // 2, len(line) - SHOWN_LINE))
    before = "..." if start else ""
    after = "..." if start + SHOWN_LINE < len(line) else ""
    return before + line[start:start + SHOWN_LINE] + after, col - start + len(before)


def printable(name: str) -> str:
    """`name` for a message, with every character that is not printable
    escaped as in Python (\\n, \\x1b, \\u200b), so that a name from a
    damaged input file cannot break the message's line or the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in name)


class AssemblyError(Exception):
    """Assembly failed; `diagnostics` lists every error found, in source order."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__(diagnostics)
        self.diagnostics = list(diagnostics)

    def __str__(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


def source_line(lines: list[str], line: int) -> str:
    """Line `line` (1-based) of `lines` without its end-of-line, or "" past the end."""
    return lines[line - 1].rstrip("\r\n") if 0 < line <= len(lines) else ""


def decode_utf8(data: bytes) -> tuple[str, tuple[int, int, str] | None]:
    """(text, None) for valid UTF-8 `data`; otherwise ("", (line, col, message))
    locating the first bad byte (1-based line and column)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        before = data[:error.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        return "", (line, col, f"not valid UTF-8 text (byte 0x{data[error.start]:02x})")

"""The assembler pipeline: source text -> ObjectFile.

    parse (asm/parser.py)  -> lower (asm/lower.py) -> layout -> encode -> resolve
    -> build_object (asm/encoder.py)

Every stage runs even when an earlier one found errors (bad statements are
dropped), so one run reports all the errors of a file; then assemble()
raises a single AssemblyError carrying them in source order.
"""

from __future__ import annotations

from asm.diagnostics import AssemblyError, Diagnostic
from asm.encoder import build_object, encode, layout, resolve
from asm.lower import lower
from asm.objfile import ObjectFile
from asm.parser import parse


def assemble(source: str, filename: str = "<input>", defines: dict[str, int] | None = None,
             include_dirs: list[str] = ()) -> ObjectFile:
    """Assemble `source` (the text of `filename`) into an ObjectFile.
    `defines` are -D symbols (visible to .if/.ifdef and expressions);
    `include_dirs` are searched by .include/.incbin after the directory of
    `filename`.  Raises AssemblyError listing every error found."""
    statements, errors = parse(source, filename)
    program, lower_errors = lower(statements, source, filename, defines, include_dirs)
    places = layout(program)
    encoded = encode(program, places)
    relocations, resolver = resolve(program, encoded)
    obj = build_object(program, places, encoded, relocations, resolver, filename)
    errors = errors + lower_errors + places.errors + encoded.errors
    if errors:
        raise AssemblyError(in_source_order(errors))
    return obj


def in_source_order(errors: list[Diagnostic]) -> list[Diagnostic]:
    """`errors` without repeats (the two words of `la` report one bad operand
    once), sorted by line and column within each file, files in the order
    they first appear."""
    unique = list(dict.fromkeys(errors))
    first_seen = {}
    for error in unique:
        first_seen.setdefault(error.filename, len(first_seen))
    return sorted(unique, key=lambda e: (first_seen[e.filename], e.line, e.col))

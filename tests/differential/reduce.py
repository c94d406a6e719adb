"""Shrink a diverging program to a small one that diverges the same way.

    smaller = reduce(source, keeps_failing)     # delta debugging (ddmin) over operations

A generated source is cut into units at its marker comments: each unit starts
at a generator.OP_MARK line (one operation: remove it or keep it) or at a
generator.FIXED_MARK line (layout, setup, handler, the end: always kept).
`keeps_failing(source)` says whether a candidate still shows the divergence
(bench/fuzz.py: the same signature); a candidate that no longer assembles or
fits the layout should simply return False.  Removing an operation can break
an invariant a later one relied on, so read the result before trusting it.
"""

from __future__ import annotations

from typing import Callable

from tests.differential.generator import FIXED_MARK, OP_MARK


def units(source: str) -> tuple[list[str], list[list[str]]]:
    """(the lines before the first marker, then one list of lines per unit)."""
    head, cut = [], []
    for line in source.splitlines():
        if line.startswith((OP_MARK, FIXED_MARK)):
            cut.append([line])
        elif cut:
            cut[-1].append(line)
        else:
            head.append(line)
    return head, cut


def join(head: list[str], cut: list[list[str]], keep: list[int]) -> str:
    """The source made of `head` and the units numbered in `keep` (fixed ones always)."""
    kept = set(keep)
    lines = list(head)
    for number, unit in enumerate(cut):
        if number in kept or unit[0].startswith(FIXED_MARK):
            lines += unit
    return "\n".join(lines) + "\n"


def reduce(source: str, keeps_failing: Callable[[str], bool]) -> str:
    """A 1-minimal subset of the operations of `source` (ddmin) for which
    `keeps_failing` still holds.  `keeps_failing(source)` must be True."""
    head, cut = units(source)
    removable = [n for n, unit in enumerate(cut) if unit[0].startswith(OP_MARK)]

    def test(subset: list[int]) -> bool:
        return keeps_failing(join(head, cut, subset))

    current, parts = removable, 2
    while len(current) >= 2:
        size = -(-len(current) // parts)
        chunks = [current[i:i + size] for i in range(0, len(current), size)]
        for chunk in chunks:
            rest = [n for n in current if n not in chunk]
            if test(rest):
                current, parts = rest, max(parts - 1, 2)
                break
        else:
            if parts >= len(current):
                break
            parts = min(len(current), parts * 2)
    if len(current) == 1 and test([]):
        current = []
    return join(head, cut, current)

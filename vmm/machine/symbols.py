"""Symbolizer: a code address as `function+offset` from an image's ELF symbols.

Only symbols defined in a section count (not absolute .equ values, not
undefined ones), of type STT_FUNC or STT_NOTYPE (plain labels), with a name.
An address is named after the nearest symbol at or below it, and only if it
lies inside one of the image's loaded ranges, so a device address or a wild
pc is never passed off as `last_function+0xefe00000`.
"""

from __future__ import annotations

import bisect
from typing import Iterable


class Symbolizer:
    """Maps addresses to `name` or `name+0xoffset`."""

    def __init__(self, symbols: Iterable[tuple[str, int]], ranges: Iterable[tuple[int, int]] = ()):
        """`symbols`: (name, address) pairs; `ranges`: [start, end) address
        ranges the symbols describe (no ranges: any address qualifies).
        When several symbols share an address, the first one given wins."""
        by_address: dict[int, str] = {}
        for name, address in symbols:
            by_address.setdefault(address, name)
        self._addresses = sorted(by_address)
        self._names = [by_address[address] for address in self._addresses]
        self._ranges = list(ranges)

    def names(self) -> list[tuple[str, int]]:
        """(name, address) of every symbol, by address (what a checkpoint saves)."""
        return [[name, address] for name, address in zip(self._names, self._addresses)]

    def ranges(self) -> list[tuple[int, int]]:
        """The address ranges the symbols describe ([] : any address)."""
        return list(self._ranges)

    def lookup(self, address: int) -> tuple[str, int] | None:
        """(name, offset) of the nearest preceding symbol, or None."""
        if self._ranges and not any(start <= address < end for start, end in self._ranges):
            return None
        index = bisect.bisect_right(self._addresses, address) - 1
        if index < 0:
            return None
        return self._names[index], address - self._addresses[index]

    def __call__(self, address: int) -> str | None:
        """`name+0x10`, `name` at offset 0, or None if no symbol covers `address`."""
        found = self.lookup(address)
        if found is None:
            return None
        name, offset = found
        return f"{name}+{offset:#x}" if offset else name

    def describe(self, address: int) -> str:
        """`0x00100010 <name+0x10>`, or just the hex address if unnamed."""
        name = self(address)
        return f"{address:#010x} <{name}>" if name else f"{address:#010x}"

"""Address expressions and module symbols (vmm/debug/symbols.py), without a machine."""

from __future__ import annotations

import pytest

from vmm.debug.symbols import DebugError, ImageSymbols, Symbols, evaluate
from vmm.machine.loader import Segment
from vmm.machine.symbols import Symbolizer


def image(name: str, names: dict[str, int], code: bytes = b"") -> ImageSymbols:
    start = min(names.values())
    return ImageSymbols(name, names, Symbolizer(list(names.items()), [(start, start + 0x1000)]),
                        (Segment(start, start, 0x1000, 5, code),))


def symbols(current: bytes = b"\x01" * 16) -> Symbols:
    kernel = image("kernel", {"_start": 0xC0100000, "trap": 0xC0100400})
    modules = [image("user-a", {"main": 0x400100}, b"\x01" * 0x200),
               image("user-b", {"main": 0x400200, "only_b": 0x400300}, b"\x02" * 0x400)]
    return Symbols(kernel, modules, lambda va, n: current[:n])


def register(name: str) -> int:
    return {"sp": 0x7FFFFFF0, "pc": 0x400104}[name]


@pytest.mark.parametrize("text, value", [
    ("0x10", 0x10), ("16", 16), ("*0xc0100000", 0xC0100000), ("trap+8", 0xC0100408), ("$sp - 4", 0x7FFFFFEC),
    ("user-b:main+0x10", 0x400210), ("only_b", 0x400300), ("-4", 0xFFFFFFFC), ("$pc+4-8", 0x400100)])
def test_an_expression_of_numbers_registers_and_symbols_has_its_32_bit_value(text, value):
    assert evaluate(text, symbols(), register) == value


@pytest.mark.parametrize("text, message", [
    ("main", "several modules"), ("nosuch", "no symbol"), ("user-c:main", "no module"), ("4 4", "between terms"),
    ("4+", "missing"), ("", "expected an address"), ("4 ? 2", "cannot read")])
def test_a_bad_expression_is_one_clear_error(text, message):
    with pytest.raises(DebugError, match=message):
        evaluate(text, symbols(), register)


def test_an_address_shared_by_modules_is_named_after_the_module_whose_code_is_mapped_there():
    assert symbols(b"\x02" * 16)(0x400204) == "user-b:main+0x4"
    assert symbols(b"\x01" * 16)(0x400104) == "user-a:main+0x4"
    assert symbols(b"\x03" * 16)(0x400204) is None
    assert symbols()(0xC0100404) == "trap+0x4"

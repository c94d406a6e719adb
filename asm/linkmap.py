"""kite-ld -Map FILE: where every input section and global symbol went, in GNU ld's map format.

    Memory Configuration                     (one default region: the whole 32-bit space)
    Linker script and memory map
    Address of section .text set to 0x100000 (each address given by -Ttext/--section-start/layout)
    LOAD start.o                             (each input, in command-line order)

    .text           0x00100000       0x1c    (output section: name, vma, size)
     load address 0x00000000                 (only when the lma differs from the vma)
     .text          0x00100000       0x18 start.o    (input section)
                    0x00100000                _start (its global and weak symbols, by address)

    OUTPUT(a.out elf32-kite32)

Names longer than the name column go on a line of their own, as GNU ld does.
"""

from __future__ import annotations

from asm.elf import ABS_SECTION
from asm.linker import DEFAULT_TEXT_ADDRESS, Placement, object_name
from asm.objfile import STB_LOCAL

NAME_WIDTH = 16


def map_text(placement: Placement, output: str) -> str:
    """The whole map file for a link whose image went to `output`."""
    lines = ["", "Memory Configuration", "",
             f"{'Name':<17}{'Origin':<19}{'Length':<19}Attributes",
             f"{'*default*':<17}{'0x00000000':<19}0xffffffff", "",
             "Linker script and memory map", ""]
    lines += [f"Address of section {name} set to {address:#x}"
              for name, address in _explicit_starts(placement).items()]
    lines += [f"LOAD {object_name(obj, index)}" for index, obj in enumerate(placement.objects)]
    for out in placement.outputs:
        lines += [""] + _output_section_lines(placement, out)
    lines += ["", f"OUTPUT({output} elf32-kite32)"]
    return "\n".join(lines) + "\n"


def _explicit_starts(placement: Placement) -> dict[str, int]:
    """Output sections placed by an option or the layout (not following the previous one)."""
    options = placement.options
    starts = dict(options.section_starts)
    if options.text_address != DEFAULT_TEXT_ADDRESS:
        starts.setdefault(".text", options.text_address)
    return starts


def _columns(indent: str, name: str, address: int, size: int) -> list[str]:
    """`name` padded to the name column (or on its own line), the address and the size."""
    head = f"{indent}{name}"
    figures = f"{address:#010x} {size:#10x}"
    if len(head) >= NAME_WIDTH:
        return [head, " " * NAME_WIDTH + figures]
    return [f"{head:<{NAME_WIDTH}}{figures}"]


def _output_section_lines(placement: Placement, out) -> list[str]:
    """An output section, its load address if it differs, its pieces and their symbols."""
    lines = _columns("", out.name, out.vma, out.size)
    if out.lma != out.vma:
        lines.append(f" load address {out.lma:#010x}")
    for piece in out.pieces:
        rows = _columns(" ", out.name, out.vma + piece.offset, piece.section.size)
        rows[-1] += f" {object_name(placement.objects[piece.obj], piece.obj)}"
        lines += rows + [f"{'':<{NAME_WIDTH}}{value:#010x}{'':<16}{name}"
                         for value, name in _piece_symbols(placement, out, piece)]
    return lines


def _piece_symbols(placement: Placement, out, piece) -> list[tuple[int, str]]:
    """(final address, name) of the winning global and weak definitions in `piece`, by address."""
    found = []
    for name, definition in placement.table.items():
        symbol = definition.symbol
        if (definition.obj == piece.obj and symbol.section == piece.section.name
                and symbol.section != ABS_SECTION and symbol.binding != STB_LOCAL):
            found.append((out.vma + piece.offset + symbol.value, name))
    return sorted(found)

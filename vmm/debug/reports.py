"""The console's text for registers, control registers, VMs, exits, memory
and disassembly.  Pure functions of a View (or a VM): they read, never change."""

from __future__ import annotations

import re

from asm.arch import describe_cause
from asm.disasm import disassemble_word
from asm.isa import (CR_CAUSE, CR_NAMES, CR_PTB, CR_STATUS, PTB_ENABLE, REG_ABI_NAMES, STATUS_IE,
                     STATUS_KM, STATUS_PIE, STATUS_PKM, STATUS_UF, STATUS_UF_SHIFT)
from vmm.debug.symbols import DebugError, short_file
from vmm.debug.target import View

FORMAT = re.compile(r"/(?P<count>\d*)(?P<letters>[a-z]*)$")
FORMATS, SIZES, SPACES = "xducsi", {"b": 1, "h": 2, "w": 4}, "pm"
LINE_BYTES = 16
MAX_UNITS = 4096
DISASSEMBLE_MAX = 64          # instructions shown for a function
STRING_MAX = 256


def location(view: View) -> str:
    """`=> 0x00100010 <main+0x4>:  addi sp, sp, -16  # hello.s:7` for the pc
    (the source line when the image has a line table)."""
    word = view.space.word(view.pc)
    text = "(cannot read the instruction: not mapped)" if word is None else \
        disassemble_word(word, view.pc, view.symbols)
    prefix = f"[{view.vm.name}] " if view.vm is not None else ""
    source = view.symbols.source(view.pc)
    where = f"  # {short_file(source.file)}:{source.line}" if source else ""
    return f"{prefix}=> {view.symbols.describe(view.pc)}:  {text}{where}"


def registers(view: View) -> list[str]:
    """`info registers`: pc with its symbol, then r0..r15 four to a row."""
    lines = [f"{view.label}, {'virtual ' if view.vm else ''}{'kernel' if view.kernel else 'user'} mode",
             f"pc   {view.symbols.describe(view.pc)}"]
    for row in range(0, len(REG_ABI_NAMES), 4):
        lines.append("  ".join(f"{name:>4} {view.regs[index]:#010x}"
                               for index, name in enumerate(REG_ABI_NAMES[row:row + 4], start=row)))
    return lines


def status_text(status: int) -> str:
    names = [name for bit, name in ((STATUS_KM, "KM"), (STATUS_IE, "IE"), (STATUS_PKM, "PKM"),
                                    (STATUS_PIE, "PIE")) if status & bit]
    return f"{' '.join(names) or '-'} uf={(status & STATUS_UF) >> STATUS_UF_SHIFT:#04x}"


def control_registers(view: View) -> list[str]:
    """`info cr`: each control register decoded; under the VMM the guest's
    (virtual) and the machine's side by side."""
    header = f"{'':8} {'guest (virtual CPU)' if view.vm else 'value':<22}" + ("machine" if view.vm else "")
    lines = [header.rstrip()]
    for number, name in enumerate(CR_NAMES):
        text = f"{view.cr[number]:#010x} {_cr_note(number, view.cr[number])}"
        machine = "" if view.machine_cr is None else f"{view.machine_cr[number]:#010x}"
        lines.append(f"{name:<8} {text:<30}{machine}".rstrip())
    return lines


def _cr_note(number: int, value: int) -> str:
    if number == CR_STATUS:
        return status_text(value)
    if number == CR_PTB:
        return "paging on" if value & PTB_ENABLE else "paging off"
    if number == CR_CAUSE:
        return describe_cause(value)
    return ""


def vms(target) -> list[str]:
    """`info vms`: one line per VM, `*` on the selected one."""
    if not target.vms:
        return [f"no VMs: this is the {target.kind}"]
    lines = []
    for number, vm in enumerate(target.vms, 1):
        running = vm is target.monitor.current
        pc = target.cpu.pc if running else vm.pc
        lines.append(f"{'*' if vm is target.selected else ' '} {number} {vm.name:<8} {vm.config.paging:<7} "
                     f"{str(vm.state):<9} pc {vm.symbols.describe(pc) if vm.symbols else hex(pc)}  "
                     f"exits {sum(vm.exits.values())}{'  (running)' if running else ''}")
    return lines


def exits(vm) -> list[str]:
    """`info exits`: the VM's exits so far, by reason."""
    if vm is None:
        raise DebugError("no VM exits: not under the VMM")
    lines = [f"{vm.name}: {sum(vm.exits.values())} exits"]
    return lines + [f"  {reason}: {count}" for reason, count in sorted(vm.exits.items())]


def parse_format(text: str) -> tuple[int, str, int, str]:
    """`/NFU` (F a format of FORMATS, U a size of SIZES, and p or m for the
    space) -> (count, format, size, space: 'v', 'p' or 'm')."""
    match = FORMAT.match(text)
    if match is None:
        raise DebugError(f"bad format '{text}': expected /NFU, e.g. /4xw, /8i, /s, /2xwp")
    count, fmt, size, space = int(match["count"] or 1), "x", 4, "v"
    for letter in match["letters"]:
        if letter in FORMATS:
            fmt = letter
        elif letter in SIZES:
            size = SIZES[letter]
        elif letter in SPACES:
            space = letter
        else:
            raise DebugError(f"'{letter}' in '{text}' is no format ({FORMATS}), size (bhw) or space (p, m)")
    if not 0 < count <= MAX_UNITS:
        raise DebugError(f"count {count}: at most {MAX_UNITS}")
    return count, fmt, 1 if fmt in "cs" else 4 if fmt == "i" else size, space


def reader(view: View, space: str):
    """The read function of address space `space` ('v', 'p' or 'm')."""
    if space == "m" and view.vm is None:
        raise DebugError("x/m reads machine memory under the VMM; here physical is machine: use x/p")
    return {"v": view.space.read_virtual, "p": view.space.read_physical, "m": view.space.read_machine}[space]


def examine(view: View, address: int, count: int, fmt: str, size: int, space: str) -> list[str]:
    """`x/NFU ADDR`: memory as words, halves, bytes, chars, strings or instructions."""
    read = reader(view, space)
    if fmt == "i":
        return [_instruction(view, read, address + 4 * index) for index in range(count)]
    if fmt == "s":
        return _strings(view, read, address, count, space)
    data = read(address, count * size)
    if data is None:
        raise DebugError(f"cannot read {count * size} bytes at {address:#010x}: not mapped to RAM")
    units = [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size)]
    per_line = 8 if size == 1 else LINE_BYTES // size
    return [_label(view, address + i * size, space) + "  ".join(_unit(value, fmt, size)
                                                                for value in units[i:i + per_line])
            for i in range(0, len(units), per_line)]


def _label(view: View, address: int, space: str) -> str:
    name = view.symbols(address) if space == "v" else None
    return f"{address:#010x}{f' <{name}>' if name else ''}:  "


def _unit(value: int, fmt: str, size: int) -> str:
    bits = size * 8
    if fmt == "x":
        return f"{value:#0{size * 2 + 2}x}"
    if fmt == "u":
        return str(value)
    if fmt == "d":
        return str(value - (1 << bits) if value >> (bits - 1) else value)
    return repr(chr(value)) if 32 <= value < 127 else f"'\\x{value:02x}'"


def _instruction(view: View, read, address: int) -> str:
    data = read(address, 4)
    if data is None:
        raise DebugError(f"cannot read the instruction at {address:#010x}: not mapped to RAM")
    marker = "=> " if address == view.pc else "   "
    text = disassemble_word(int.from_bytes(data, "little"), address, view.symbols)
    return f"{marker}{_label(view, address, 'v')}{text}"


def _strings(view: View, read, address: int, count: int, space: str) -> list[str]:
    lines = []
    for _ in range(count):
        text = bytearray()
        while len(text) < STRING_MAX and (byte := read(address + len(text), 1)) not in (None, b"\0"):
            text += byte
        lines.append(f"{_label(view, address, space)}{text.decode('latin-1')!r}")
        address += len(text) + 1
    return lines


def function_range(view: View, address: int) -> tuple[int, int]:
    """[start, end) to disassemble for `address`: its function, from its symbol
    to the next one (at most DISASSEMBLE_MAX instructions, around `address`)."""
    found = view.symbols.lookup(address)
    start = address - found[1] if found and found[1] <= 4 * DISASSEMBLE_MAX // 2 else address - 4 * 8
    start &= ~3
    end = start + 4
    while end < start + 4 * DISASSEMBLE_MAX and (view.symbols.lookup(end) or ("", 1))[1] != 0:
        end += 4
    return start, max(end, address + 4)


def disassemble(view: View, start: int, end: int) -> list[str]:
    """`disassemble`: the instructions in [start, end), the pc marked."""
    if end <= start or end - start > 4 * MAX_UNITS:
        raise DebugError(f"bad range {start:#010x}-{end:#010x}")
    return [_instruction(view, view.space.read_virtual, address) for address in range(start & ~3, end, 4)]

"""kite-nm's listing (GNU nm's formats): which symbols, in which order, in BSD or POSIX form.

    BSD (default)   `00100000 T _start`; -S adds the size after the value when it is not 0;
                    an undefined symbol has 8 blanks for its value
    POSIX (-P)      `_start T 100000 18`: value and size in hex without padding, the size only
                    when not 0; an undefined symbol: `puts U ` and 8 blanks
    -A              every line starts with `FILE:` (BSD) or `FILE: ` (POSIX)
"""

from __future__ import annotations

from dataclasses import dataclass

from asm.elf import open_elf
from asm.elfview import SymbolView, file_symbols
from asm.objfile import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE


@dataclass
class NmOptions:
    """numeric: sort by address; extern_only (-g); undefined_only (-u); print_size (-S);
    file_names (-A: the file on every line); posix (-P)."""
    numeric: bool = False
    extern_only: bool = False
    undefined_only: bool = False
    print_size: bool = False
    file_names: bool = False
    posix: bool = False


def nm_letter(elf, sym: SymbolView) -> str:
    """GNU nm's letter: U A T D R B N (lowercase for locals), W/w for weak defined/undefined."""
    if sym.bind == "STB_WEAK":
        return "w" if sym.undefined else "W"
    if sym.undefined:
        return "U"
    if sym.shndx == "SHN_ABS":
        letter = "A"
    else:
        section = elf.get_section(sym.shndx)
        flags = section["sh_flags"]
        letter = ("B" if section["sh_type"] == "SHT_NOBITS" else "T" if flags & SHF_EXECINSTR
                  else "D" if flags & SHF_WRITE else "R" if flags & SHF_ALLOC else "N")
    return letter.lower() if sym.bind == "STB_LOCAL" else letter


def selected(symbols: list[SymbolView], options: NmOptions) -> list[SymbolView]:
    """The symbols -g / -u keep, sorted by name or (-n) by address with undefined ones first."""
    chosen = [sym for sym in symbols
              if (not options.extern_only or sym.bind != "STB_LOCAL")
              and (not options.undefined_only or sym.undefined)]
    if options.numeric:
        return sorted(chosen, key=lambda s: (not s.undefined, s.value, s.name))
    return sorted(chosen, key=lambda s: (s.name, s.value))


def symbol_line(sym: SymbolView, letter: str, options: NmOptions) -> str:
    """One symbol in the BSD or POSIX format."""
    if options.posix:
        if sym.undefined:
            return f"{sym.name} {letter} " + " " * 8
        return f"{sym.name} {letter} {sym.value:x} " + (f"{sym.size:x}" if sym.size else "")
    value = " " * 8 if sym.undefined else f"{sym.value:08x}"
    size = f" {sym.size:08x}" if options.print_size and sym.size and not sym.undefined else ""
    return f"{value}{size} {letter} {sym.name}"


def nm_lines(data: bytes, path: str, options: NmOptions) -> list[str]:
    """The listing of one file (without the `FILE:` header of several files)."""
    elf = open_elf(data, path)
    prefix = (f"{path}: " if options.posix else f"{path}:") if options.file_names else ""
    return [prefix + symbol_line(sym, nm_letter(elf, sym), options)
            for sym in selected(file_symbols(elf), options)]


def file_header(path: str, options: NmOptions) -> list[str]:
    """What precedes a file's listing when nm lists several: `FILE:` (BSD: after a blank line);
    nothing with -A, which names the file on every line."""
    if options.file_names:
        return []
    return [f"{path}:"] if options.posix else ["", f"{path}:"]

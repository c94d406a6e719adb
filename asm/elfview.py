"""What kite-objdump and kite-nm read from an ELF file (through pyelftools): its named symbols,
the sections they list, and load addresses.  Objects and images alike."""

from __future__ import annotations

from asm.objfile import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE


class SymbolView:
    """A named symbol of a file: value, size, binding and type letters, section index or marker."""

    def __init__(self, sym):
        self.name = sym.name
        self.value = sym["st_value"]
        self.size = sym["st_size"]
        self.bind = sym["st_info"]["bind"]
        self.type = sym["st_info"]["type"]
        self.shndx = sym["st_shndx"]

    @property
    def undefined(self) -> bool:
        return self.shndx == "SHN_UNDEF"


def file_symbols(elf) -> list[SymbolView]:
    """Every symbol with a name (not STT_SECTION / STT_FILE), in table order."""
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        return []
    return [SymbolView(sym) for sym in symtab.iter_symbols()
            if sym.name and sym["st_info"]["type"] not in ("STT_SECTION", "STT_FILE")]


def section_name(elf, shndx) -> str:
    """The name of the section a symbol's st_shndx points at, or *UND* / *ABS*."""
    if shndx == "SHN_UNDEF":
        return "*UND*"
    if shndx == "SHN_ABS":
        return "*ABS*"
    return elf.get_section(shndx).name


def content_sections(elf):
    """(index, section) of the sections objdump -h lists: everything but null, symtab, strtab, rela."""
    return [(index, sec) for index, sec in enumerate(elf.iter_sections())
            if sec["sh_type"] not in ("SHT_NULL", "SHT_SYMTAB", "SHT_STRTAB", "SHT_RELA")]


def load_address(elf, section) -> int:
    """A section's load address (LMA): through the PT_LOAD segment holding it, else its vma."""
    addr = section["sh_addr"]
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_LOAD" and segment["p_vaddr"] <= addr < segment["p_vaddr"] + segment["p_memsz"]:
            return segment["p_paddr"] + addr - segment["p_vaddr"]
    return addr


def flags_text(flags: int) -> str:
    """`WAX` letters of a section's sh_flags."""
    return "".join(letter for bit, letter in ((SHF_WRITE, "W"), (SHF_ALLOC, "A"), (SHF_EXECINSTR, "X"))
                   if flags & bit)

"""kite-ld: link Kite32 relocatable objects into an ELF32 ET_EXEC image.

The stages, each a plain function:

    resolve_symbols   global/weak/local symbol tables, duplicate definitions
    merge_sections    same-named input sections concatenated in command-line order
    place_sections    output order, addresses (vma) and load addresses (lma)
    apply_relocations the recipe table below: 32-bit values wrap, narrower ones are range-checked;
                      then every input line table's addresses (asm/lines.py)
    build_image       PT_LOAD segments, the symbol table, asm.elf.write_executable

Every problem is collected and reported together in one LinkError.  docs/linker.md documents the
options, the layout TOML file, the segments and the recipe table.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from asm import isa, lines
from asm.diagnostics import printable
from asm.elf import (
    ABS_SECTION, PF_R, PF_W, PF_X, ImageSection, ImageSegment, ImageSymbol,
    align_up, read_file, read_object, write_executable,
)
from asm.files import MAX_INPUT_SIZE
from asm.objfile import (
    SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, STB_GLOBAL, STB_LOCAL, STB_WEAK,
    ObjectFile, Relocation, Section, Symbol,
)

DEFAULT_TEXT_ADDRESS = 0x00100000
DEFAULT_ENTRY = "_start"
STANDARD_ORDER = (".text", ".rodata", ".data", ".bss")
ADDRESS_LIMIT = 1 << 32


class LinkError(Exception):
    """Everything wrong with a link; `messages` holds one line per problem."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass
class LinkOptions:
    """Placement options.  `section_starts` maps an output section to its vma (overrides
    `text_address` for .text); `section_loads` maps an output section to its load address (lma);
    `load_offset` is vma - lma for every section that does not follow a `section_loads` entry;
    `load_address`, if set, is the lma of the first output section (it then decides the offset).
    `entry` None means `_start`, falling back to the start of .text with a warning."""
    text_address: int = DEFAULT_TEXT_ADDRESS
    section_starts: dict[str, int] = field(default_factory=dict)
    section_loads: dict[str, int] = field(default_factory=dict)
    entry: str | None = None
    load_offset: int = 0
    load_address: int | None = None


class LinkResult(NamedTuple):
    """The image, the warnings, and where everything went (for asm/linkmap.py's -Map file)."""
    image: bytes
    warnings: list[str]
    placement: "Placement"


class Placement(NamedTuple):
    """The inputs, the placed output sections (with their pieces), the global table, the options."""
    objects: list[ObjectFile]
    outputs: list[OutputSection]
    table: dict[str, Definition]
    options: LinkOptions


def object_name(obj: ObjectFile, index: int) -> str:
    """How messages name an input object."""
    return obj.source_name or f"<object {index + 1}>"


# --- Symbol resolution ---------------------------------------------------------------------


class Definition(NamedTuple):
    """Where a symbol is defined: input object index and its Symbol."""
    obj: int
    symbol: Symbol


def resolve_symbols(objects: list[ObjectFile], errors: list[str]) -> dict[str, Definition]:
    """The global table: each global/weak defined name -> its winning definition.  A global
    overrides a weak; the first weak wins among weaks; two globals are a duplicate (error)."""
    table: dict[str, Definition] = {}
    for index, obj in enumerate(objects):
        for symbol in obj.symbols:
            if symbol.binding == STB_LOCAL or not symbol.defined:
                continue
            previous = table.get(symbol.name)
            if previous is None or (previous.symbol.binding == STB_WEAK and symbol.binding == STB_GLOBAL):
                table[symbol.name] = Definition(index, symbol)
            elif previous.symbol.binding == STB_GLOBAL and symbol.binding == STB_GLOBAL:
                errors.append(f"duplicate symbol '{printable(symbol.name)}' in "
                              f"{object_name(objects[previous.obj], previous.obj)} and {object_name(obj, index)}")
    return table


# --- Section merging and placement ---------------------------------------------------------


@dataclass
class Piece:
    """One input section inside an output section, at `offset` bytes from its start."""
    obj: int
    section: Section
    offset: int


@dataclass
class OutputSection:
    name: str
    sh_type: int
    sh_flags: int
    sh_addralign: int = 1
    pieces: list[Piece] = field(default_factory=list)
    size: int = 0
    vma: int = 0
    lma: int = 0
    data: bytearray = field(default_factory=bytearray)

    def add(self, obj: int, section: Section) -> None:
        """Append `section`, aligned to its sh_addralign; NOBITS input in a PROGBITS output adds zeros."""
        self.size = align_up(self.size, section.sh_addralign)
        self.pieces.append(Piece(obj, section, self.size))
        self.sh_addralign = max(self.sh_addralign, section.sh_addralign)
        self.sh_flags |= section.sh_flags
        self.size += section.size

    def fill(self) -> None:
        """Build `data` from the pieces (PROGBITS outputs only)."""
        self.data = bytearray(self.size)
        for piece in self.pieces:
            if piece.section.sh_type != SHT_NOBITS:
                self.data[piece.offset:piece.offset + piece.section.size] = piece.section.data


def permission_class(flags: int) -> int:
    """Sort rank and segment class: 0 R+X, 1 R, 2 RW, 3 not allocated."""
    if not flags & SHF_ALLOC:
        return 3
    return 0 if flags & SHF_EXECINSTR else 2 if flags & SHF_WRITE else 1


def merge_sections(objects: list[ObjectFile]) -> list[OutputSection]:
    """Output sections in output order: .text .rodata .data .bss, then named sections by
    permission class (R+X, R, RW PROGBITS, RW NOBITS, unallocated), each in first-seen order."""
    outputs: dict[str, OutputSection] = {}
    for index, obj in enumerate(objects):
        for section in obj.sections:
            out = outputs.setdefault(section.name, OutputSection(section.name, section.sh_type, 0))
            if out.sh_type == SHT_NOBITS and section.sh_type != SHT_NOBITS:
                out.sh_type = section.sh_type
            out.add(index, section)
    standard = [outputs[name] for name in STANDARD_ORDER if name in outputs]
    named = [out for out in outputs.values() if out.name not in STANDARD_ORDER]
    named.sort(key=lambda out: (permission_class(out.sh_flags), out.sh_type == SHT_NOBITS))
    return standard + named


def _starts_segment(out: OutputSection, previous: OutputSection | None) -> bool:
    """Whether `out` cannot share the previous section's segment: first section, another
    permission class or load delta, PROGBITS after NOBITS, or not within a page after it."""
    if previous is None:
        return True
    gap = out.vma - (previous.vma + previous.size)
    return (permission_class(out.sh_flags) != permission_class(previous.sh_flags)
            or (previous.sh_type == SHT_NOBITS and out.sh_type != SHT_NOBITS)
            or out.vma - out.lma != previous.vma - previous.lma
            or not 0 <= gap < isa.PAGE_SIZE)


def place_sections(outputs: list[OutputSection], options: LinkOptions, errors: list[str]) -> None:
    """Set vma and lma of every allocated output section.  A section follows the previous one
    (aligned), on a new page when its permission class changes; an explicit start
    (--section-start, -Ttext, layout vma) puts it where it is told.  The load delta (vma - lma)
    carries over from the previous section unless the section has its own load address."""
    starts = {".text": options.text_address, **options.section_starts}
    allocated = [out for out in outputs if out.sh_flags & SHF_ALLOC]
    first_vma = starts.get(allocated[0].name, options.text_address) if allocated else 0
    delta = options.load_offset if options.load_address is None else first_vma - options.load_address
    previous = None
    for out in allocated:
        if out.name in starts or previous is None:
            out.vma = align_up(starts.get(out.name, options.text_address), out.sh_addralign)
        else:
            out.vma = align_up(previous.vma + previous.size, out.sh_addralign)
            if permission_class(out.sh_flags) != permission_class(previous.sh_flags):
                out.vma = align_up(out.vma, isa.PAGE_SIZE)
        if out.name in options.section_loads:
            delta = out.vma - options.section_loads[out.name]
        out.lma = out.vma - delta
        previous = out
    _check_placement(allocated, errors)
    _check_contents(outputs, errors)


def _check_contents(outputs: list[OutputSection], errors: list[str]) -> None:
    """The sections with contents (the image's bytes) hold at most MAX_INPUT_SIZE in all, the most
    the loader reads; a damaged object's NOBITS piece in a PROGBITS section could ask for 4 GiB."""
    contents = sum(out.size for out in outputs if out.sh_type != SHT_NOBITS)
    if contents > MAX_INPUT_SIZE:
        errors.append(f"the sections with contents would hold {contents:#x} bytes, more than the "
                      f"{MAX_INPUT_SIZE >> 20} MiB an image may have")


def _check_placement(allocated: list[OutputSection], errors: list[str]) -> None:
    """Sections inside the 32-bit space, load addresses not negative, no two overlapping."""
    for out in allocated:
        if out.vma + out.size > ADDRESS_LIMIT or not 0 <= out.lma <= ADDRESS_LIMIT - out.size:
            errors.append(f"section {printable(out.name)} [{out.vma:#x}, load {out.lma:#x}, "
                          f"size {out.size:#x}] does not fit in the 32-bit address space")
    ordered = sorted((out for out in allocated if out.size), key=lambda out: out.vma)
    for lower, upper in zip(ordered, ordered[1:]):
        if upper.vma < lower.vma + lower.size:
            errors.append(f"sections {printable(lower.name)} [{lower.vma:#010x}, "
                          f"{lower.vma + lower.size:#010x}) and {printable(upper.name)} "
                          f"[{upper.vma:#010x}, ...) overlap")


# --- Relocations ---------------------------------------------------------------------------


class Recipe(NamedTuple):
    """How to apply one relocation type: value = calc(S, A, P); check(S, A, P) returns an error
    text or None; the value goes into `field` of the `size`-byte unit at P."""
    calc: Callable[[int, int, int], int]
    size: int
    field: isa.Field
    check: Callable[[int, int, int], str | None]


WORD32 = isa.Field(0, 32)
HALF16 = isa.Field(0, 16)
BYTE8 = isa.Field(0, 8)


def _address(s: int, a: int) -> int:
    """S + A as a 32-bit address: modulo 2^32, as GNU ld computes it, so `sym - 0xC0000000` (an
    addend the assembler wrapped to 0x40000000) gives the low alias of a high symbol."""
    return (s + a) & 0xFFFFFFFF


def _never(s: int, a: int, p: int) -> None:
    """The check of a relocation whose value always fits its field."""
    return None


def _fits_unit(bits: int) -> Callable[[int, int, int], str | None]:
    """S + A must fit `bits` bits, signed or unsigned."""
    def check(s: int, a: int, p: int) -> str | None:
        value = s + a
        ok = -(1 << (bits - 1)) <= value < (1 << bits)
        return None if ok else f"S + A = {value:#x} does not fit in {bits} bits"
    return check


def _pc_relative(imm: isa.Field) -> Callable[[int, int, int], str | None]:
    """S + A - P must be a multiple of 4 whose word count fits `imm`."""
    def check(s: int, a: int, p: int) -> str | None:
        displacement = s + a - p
        low, high = imm.range()
        if displacement % 4:
            return f"displacement {displacement} is not a multiple of 4"
        if not low <= displacement // 4 <= high:
            return f"displacement {displacement} bytes out of range [{low * 4}, {high * 4}]"
        return None
    return check


RECIPES: dict[int, Recipe] = {
    isa.R_KITE_32: Recipe(lambda s, a, p: _address(s, a), 4, WORD32, _never),
    isa.R_KITE_BRANCH18: Recipe(lambda s, a, p: (s + a - p) >> 2, 4, isa.IMM18, _pc_relative(isa.IMM18)),
    isa.R_KITE_JUMP22: Recipe(lambda s, a, p: (s + a - p) >> 2, 4, isa.IMM22, _pc_relative(isa.IMM22)),
    isa.R_KITE_HI20: Recipe(lambda s, a, p: _address(s, a) >> 12, 4, isa.IMM20, _never),
    isa.R_KITE_LO12: Recipe(lambda s, a, p: _address(s, a) & 0xFFF, 4, isa.IMM18, _never),
    isa.R_KITE_16: Recipe(lambda s, a, p: s + a, 2, HALF16, _fits_unit(16)),
    isa.R_KITE_8: Recipe(lambda s, a, p: s + a, 1, BYTE8, _fits_unit(8)),
    isa.R_KITE_NONE: Recipe(lambda s, a, p: 0, 0, isa.Field(0, 0), _never),
}


def patch(data: bytearray, offset: int, recipe: Recipe, value: int) -> None:
    """Store `value` into `recipe.field` of the little-endian unit at `offset`, keeping other bits."""
    unit = int.from_bytes(data[offset:offset + recipe.size], "little")
    mask = recipe.field.mask << recipe.field.shift
    unit = (unit & ~mask) | ((value << recipe.field.shift) & mask)
    data[offset:offset + recipe.size] = unit.to_bytes(recipe.size, "little")


class Linker:
    """The state shared by the late stages of one link: inputs, output sections, the global table."""

    def __init__(self, objects: list[ObjectFile], outputs: list[OutputSection],
                 table: dict[str, Definition], errors: list[str]):
        self.objects, self.outputs, self.table, self.errors = objects, outputs, table, errors
        self.base: dict[tuple[int, str], int] = {}           # (object, input section) -> address
        self.piece_of: dict[tuple[int, str], tuple[OutputSection, Piece]] = {}
        for out in outputs:
            for piece in out.pieces:
                self.base[(piece.obj, piece.section.name)] = out.vma + piece.offset
                self.piece_of[(piece.obj, piece.section.name)] = (out, piece)
        self.locals = [{s.name: s for s in obj.symbols if s.binding == STB_LOCAL and s.defined}
                       for obj in objects]
        self.line_tables: dict[int, lines.LineTable] = {}    # object -> its line table, read on demand

    def address(self, obj: int, symbol: Symbol) -> int:
        """The final value of a defined symbol of object `obj`."""
        if symbol.section == ABS_SECTION:
            return symbol.value
        return self.base[(obj, symbol.section)] + symbol.value

    def symbol_value(self, obj: int, name: str) -> int | None:
        """S for a relocation of object `obj` naming `name`: its section, a local, a global, an
        undefined weak (0); None if undefined."""
        if (obj, name) in self.base:
            return self.base[(obj, name)]
        if name in self.locals[obj]:
            return self.address(obj, self.locals[obj][name])
        if name in self.table:
            found = self.table[name]
            return self.address(found.obj, found.symbol)
        weak = any(s.name == name and s.binding == STB_WEAK for s in self.objects[obj].symbols)
        return 0 if weak else None

    def source_place(self, obj: int, reloc: Relocation) -> str:
        """`b.o: b.s:5: ` for a relocation of an instruction the object's line table covers,
        else `b.o: `."""
        if obj not in self.line_tables:
            try:
                self.line_tables[obj] = lines.object_line_table(self.objects[obj])
            except lines.LineTableError:
                self.line_tables[obj] = lines.LineTable([], relocatable=True)
        source = self.line_tables[obj].lookup(reloc.r_offset, reloc.section)
        where = f"{printable(str(source))}: " if source else ""
        return f"{object_name(self.objects[obj], obj)}: {where}"

    def relocate_line_tables(self) -> None:
        """Add to every DW_LNE_set_address of every input line table the final address of the
        input section its sequence names (asm/lines.py: objects carry section offsets there)."""
        out = next((o for o in self.outputs if o.name == lines.SECTION), None)
        for piece in out.pieces if out else []:
            name = object_name(self.objects[piece.obj], piece.obj)
            try:
                sequences = lines.read_sequences(bytes(piece.section.data))
            except lines.LineTableError as error:
                self.errors.append(f"{name}: {lines.SECTION}: {error}")
                continue
            for sequence in sequences:
                base = self.base.get((piece.obj, sequence.section))
                if base is None:
                    self.errors.append(f"{name}: {lines.SECTION}: a sequence names section "
                                       f"'{printable(sequence.section)}', which the object has not")
                    continue
                for site in sequence.sites:
                    at = piece.offset + site
                    value = int.from_bytes(out.data[at:at + 4], "little")
                    out.data[at:at + 4] = _address(base, value).to_bytes(4, "little")

    def where(self, obj: int, reloc: Relocation) -> str:
        return f"{object_name(self.objects[obj], obj)}: {printable(reloc.section)}+{reloc.r_offset:#x}"

    def apply(self, obj: int, reloc: Relocation, undefined: set[tuple[int, str]]) -> None:
        """Apply one relocation to its output section's data, or record why it cannot be."""
        located = self.piece_of.get((obj, reloc.section))
        recipe = RECIPES.get(reloc.r_type)
        if located is None or recipe is None:
            problem = "unknown relocation type" if located else "relocation in an unknown section"
            self.errors.append(f"{self.where(obj, reloc)}: {problem} {reloc.r_type} "
                               f"against '{printable(reloc.symbol)}'")
            return
        out, piece = located
        if reloc.r_offset + recipe.size > piece.section.size or piece.section.sh_type == SHT_NOBITS:
            self.errors.append(f"{self.where(obj, reloc)}: relocation against '{printable(reloc.symbol)}' "
                               f"outside the section's contents")
            return
        s = self.symbol_value(obj, reloc.symbol)
        if s is None:
            if (obj, reloc.symbol) not in undefined:
                undefined.add((obj, reloc.symbol))
                self.errors.append(f"{self.source_place(obj, reloc)}undefined symbol "
                                   f"'{printable(reloc.symbol)}' (referenced from "
                                   f"{printable(reloc.section)}+{reloc.r_offset:#x})")
            return
        p = out.vma + piece.offset + reloc.r_offset
        problem = recipe.check(s, reloc.r_addend, p)
        if problem:
            self.errors.append(f"{self.where(obj, reloc)}: {isa.RELOC_NAMES.get(reloc.r_type)} against "
                               f"'{printable(reloc.symbol)}' out of range: {problem}")
            return
        patch(out.data, piece.offset + reloc.r_offset, recipe, recipe.calc(s, reloc.r_addend, p))

    def apply_relocations(self) -> None:
        """Fill every PROGBITS output and apply every relocation of every object."""
        for out in self.outputs:
            if out.sh_type != SHT_NOBITS:
                out.fill()
        undefined: set[tuple[int, str]] = set()
        for index, obj in enumerate(self.objects):
            for reloc in obj.relocations:
                self.apply(index, reloc, undefined)
        self.relocate_line_tables()

    # --- the image ---------------------------------------------------------------------

    def entry(self, options: LinkOptions, warnings: list[str]) -> int:
        """e_entry: the -e symbol (error if missing), else _start, else the start of .text
        (with a warning)."""
        name = options.entry or DEFAULT_ENTRY
        if name in self.table:
            return self.address(self.table[name].obj, self.table[name].symbol)
        if options.entry is not None:
            self.errors.append(f"entry symbol '{printable(name)}' is not defined (by a global symbol)")
            return 0
        text = next((out for out in self.outputs if out.name == ".text"), None)
        start = text.vma if text else options.text_address
        warnings.append(f"warning: cannot find entry symbol '{DEFAULT_ENTRY}'; defaulting to {start:#010x}")
        return start

    def image_symbols(self) -> list[ImageSymbol]:
        """Every object's locals (in input order), then the resolved globals and unresolved weaks."""
        out_name = {key: out.name for key, (out, _) in self.piece_of.items()}
        result, globals_ = [], {}
        for index, obj in enumerate(self.objects):
            for sym in obj.symbols:
                if sym.binding == STB_LOCAL and sym.defined:
                    result.append(self._image_symbol(index, sym, out_name))
                elif sym.binding != STB_LOCAL and sym.name not in self.table:
                    globals_.setdefault(sym.name, ImageSymbol(sym.name, 0, 0, sym.binding, sym.sym_type, None))
        for name, found in self.table.items():
            globals_[name] = self._image_symbol(found.obj, found.symbol, out_name)
        return result + [globals_[name] for name in sorted(globals_)]

    def _image_symbol(self, obj: int, sym: Symbol, out_name: dict) -> ImageSymbol:
        section = ABS_SECTION if sym.section == ABS_SECTION else out_name[(obj, sym.section)]
        return ImageSymbol(sym.name, self.address(obj, sym), sym.size, sym.binding, sym.sym_type, section)


# --- Image assembly --------------------------------------------------------------------------


def segment_flags(flags: int) -> int:
    """p_flags for a section's permission class."""
    return PF_R | (PF_X if flags & SHF_EXECINSTR else 0) | (PF_W if flags & SHF_WRITE else 0)


def build_segments(outputs: list[OutputSection], images: dict[str, ImageSection]) -> list[ImageSegment]:
    """Group the allocated sections, in output order, into PT_LOAD segments (see _starts_segment).
    Assumes placement succeeded (no overlaps)."""
    segments: list[ImageSegment] = []
    previous = None
    for out in (o for o in outputs if o.sh_flags & SHF_ALLOC):
        if _starts_segment(out, previous):
            segments.append(ImageSegment(out.vma, out.lma, segment_flags(out.sh_flags)))
        segments[-1].sections.append(images[out.name])
        previous = out
    return segments


def link_with_warnings(objects: list[ObjectFile], options: LinkOptions) -> LinkResult:
    """Link `objects` (in command-line order) into ELF32 ET_EXEC bytes.  Raises LinkError with
    every problem found; returns the image and any warnings."""
    errors: list[str] = []
    warnings: list[str] = []
    table = resolve_symbols(objects, errors)
    outputs = merge_sections(objects)
    before = len(errors)
    place_sections(outputs, options, errors)
    linker = Linker(objects, outputs, table, errors)
    if len(errors) == before:        # placed: only then are there contents to relocate
        linker.apply_relocations()
    entry = linker.entry(options, warnings)
    if errors:
        raise LinkError(errors)
    images = {out.name: ImageSection(out.name, out.sh_type, out.sh_flags, out.vma if out.sh_flags & SHF_ALLOC else 0,
                                     out.sh_addralign, bytes(out.data), out.size) for out in outputs}
    segments = build_segments(outputs, images)
    return LinkResult(write_executable(entry, list(images.values()), segments, linker.image_symbols()),
                      warnings, Placement(objects, outputs, table, options))


def link(objects: list[ObjectFile], options: LinkOptions) -> bytes:
    """The image bytes; see link_with_warnings (warnings are dropped)."""
    return link_with_warnings(objects, options).image


def read_objects(paths: list[str]) -> list[ObjectFile]:
    """ObjectFiles read from `paths` (each at most asm.files.MAX_INPUT_SIZE bytes).  Raises
    ElfFormatError (unreadable file included)."""
    return [read_object(read_file(path), path) for path in paths]


def link_files(paths: list[str], options: LinkOptions) -> bytes:
    """Link the .o files at `paths`; raises ElfFormatError or LinkError."""
    return link(read_objects(paths), options)


# --- Layout files -----------------------------------------------------------------------------


LAYOUT_KEYS = {"entry", "load", "section"}
SECTION_KEYS = {"name", "vma", "at"}
LOAD_KEYS = {"offset", "at"}


class LayoutError(ValueError):
    """A bad layout file; str() is `file: message`."""


def _int_value(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < ADDRESS_LIMIT:
        raise LayoutError(f"{where} must be an address (an integer in [0, 0xFFFFFFFF])")
    return value


def _check_keys(table: object, allowed: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise LayoutError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise LayoutError(f"{where}: unknown key '{printable(unknown[0])}' "
                          f"(known: {', '.join(sorted(allowed))})")
    return table


def apply_layout(options: LinkOptions, text: str, filename: str) -> LinkOptions:
    """`options` updated from the layout TOML `text` (format in docs/linker.md).  The layout's
    values replace those already in `options`.  Raises LayoutError naming `filename`."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LayoutError(f"{filename}: {error}") from None
    except RecursionError:
        raise LayoutError(f"{filename}: nested too deeply") from None
    _check_keys(table, LAYOUT_KEYS, filename)
    if "entry" in table:
        if not isinstance(table["entry"], str):
            raise LayoutError(f"{filename}: 'entry' must be a symbol name")
        options.entry = table["entry"]
    load = _check_keys(table.get("load", {}), LOAD_KEYS, f"{filename}: [load]")
    if "offset" in load:
        options.load_offset = _int_value(load["offset"], f"{filename}: [load] offset")
    if "at" in load:
        options.load_address = _int_value(load["at"], f"{filename}: [load] at")
    sections = table.get("section", [])
    if not isinstance(sections, list):
        raise LayoutError(f"{filename}: 'section' must be an array of tables ([[section]])")
    for number, entry in enumerate(sections, start=1):
        where = f"{filename}: [[section]] #{number}"
        _check_keys(entry, SECTION_KEYS, where)
        name = entry.get("name")
        if not isinstance(name, str):
            raise LayoutError(f"{where}: 'name' (a section name) is required")
        if "vma" in entry:
            options.section_starts[name] = _int_value(entry["vma"], f"{where} vma")
        if "at" in entry:
            options.section_loads[name] = _int_value(entry["at"], f"{where} at")
    return options

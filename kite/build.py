"""`kite build`: assemble and link every guest image listed in guestos/images.toml.

The data flow is the toolchain's own, in-process:

    guestos/<source>.s --assemble--> ObjectFile --write_object--> build/obj/<image>/<source>.o
    every object of the image --link--> build/<image>.elf

Outputs are written atomically and only when their bytes change, so an
unchanged tree leaves every file (and its mtime) alone.  Any error (bad
manifest, assembly or link error) is reported with its file and line and the
command exits 1; images built before the error stay valid.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click

from asm.files import write_atomically

GUESTOS = Path(__file__).resolve().parent.parent / "guestos"
MANIFEST = GUESTOS / "images.toml"
DEFAULT_TEXT = 0x00100000
IMAGE_KEYS = {"sources", "defines", "text", "load_offset"}


class BuildError(Exception):
    """A problem that stops the build; the message is ready to print."""


@dataclass(frozen=True)
class ImageSpec:
    """One [images.NAME] table of the manifest, validated."""
    name: str
    sources: tuple[Path, ...]
    defines: dict[str, int] = field(default_factory=dict)
    text: int = DEFAULT_TEXT
    load_offset: int = 0


def read_tables(path: Path, kind: str, error: type[Exception]) -> dict[str, object]:
    """The [KIND.NAME] tables of the TOML file `path`, by name, in file order.
    Raises `error` naming the file (and line, for a syntax error)."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{path}: {problem}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply") from None
    tables = table.get(kind)
    if not isinstance(tables, dict) or not tables:
        raise error(f"{path}: no [{kind}.NAME] tables")
    return tables


def read_manifest(path: Path = MANIFEST) -> list[ImageSpec]:
    """The image specs in `path`, in file order.  Raises BuildError naming
    the file and the bad entry."""
    return [_image_spec(path, name, entry) for name, entry in read_tables(path, "images", BuildError).items()]


def _image_spec(path: Path, name: str, entry: object) -> ImageSpec:
    """Validate one image table; source paths are made absolute."""
    where = f"{path}: images.{name}"
    if not isinstance(entry, dict):
        raise BuildError(f"{where}: must be a table")
    unknown = set(entry) - IMAGE_KEYS
    if unknown:
        raise BuildError(f"{where}: unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(IMAGE_KEYS))})")
    sources = entry.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise BuildError(f"{where}: 'sources' must be a non-empty list of paths")
    defines = entry.get("defines", {})
    if not isinstance(defines, dict) or not all(_is_int(v) for v in defines.values()):
        raise BuildError(f"{where}: 'defines' must be a table of NAME = integer")
    for key in ("text", "load_offset"):
        if key in entry and not _is_int(entry[key]):
            raise BuildError(f"{where}: '{key}' must be an integer address")
    return ImageSpec(name, tuple(path.parent / source for source in sources), dict(defines),
                     entry.get("text", DEFAULT_TEXT), entry.get("load_offset", 0))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically unless it already holds exactly
    that; returns whether the file was written."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)
    return True


def assemble_file(source: Path, defines: dict[str, int]):
    """The ObjectFile of one source.  Raises BuildError with the assembler's
    diagnostics."""
    from asm.assembler import assemble
    from asm.diagnostics import AssemblyError
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise BuildError(f"{source}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise BuildError(f"{source}: cannot read: not UTF-8 text") from None
    try:
        return assemble(text, str(source), defines, [str(source.parent)])
    except AssemblyError as error:
        raise BuildError(str(error)) from None


def build_image(spec: ImageSpec, out_dir: Path) -> list[Path]:
    """Assemble and link one image into `out_dir`; returns the files written
    (objects and image) that changed."""
    from asm.elf import write_object
    from asm.linker import LinkError, LinkOptions, link
    objects, written = [], []
    for source in spec.sources:
        obj = assemble_file(source, spec.defines)
        obj_path = out_dir / "obj" / spec.name / (source.stem + ".o")
        if write_if_changed(obj_path, write_object(obj)):
            written.append(obj_path)
        objects.append(obj)
    try:
        image = link(objects, LinkOptions(text_address=spec.text, load_offset=spec.load_offset))
    except LinkError as error:
        raise BuildError(f"{spec.name}: {error}") from None
    image_path = out_dir / f"{spec.name}.elf"
    if write_if_changed(image_path, image):
        written.append(image_path)
    return written


def build_all(manifest: Path = MANIFEST, out_dir: Path | None = None) -> list[Path]:
    """Build every image of `manifest` into `out_dir` (default: build/ beside
    the manifest); returns the files that changed."""
    out_dir = out_dir or manifest.parent / "build"
    written = []
    for spec in read_manifest(manifest):
        written += build_image(spec, out_dir)
    return written


@click.command("build", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: kite build && kite run --bare guestos/build/hello.elf")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=MANIFEST,
              show_default=True, help="The image list.")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to put the images (default: build/ beside the manifest).")
def build(manifest: Path, out_dir: Path | None) -> None:
    """Assemble and link every guest image listed in the manifest."""
    try:
        written = build_all(manifest, out_dir)
    except BuildError as error:
        click.echo(f"kite build: {error}", err=True)
        raise SystemExit(1) from None
    for path in written:
        click.echo(f"kite build: wrote {path}")
    if not written:
        click.echo("kite build: every image is up to date")

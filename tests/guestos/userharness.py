"""Build and boot Kite guest OS user programs, under the real kernel or on the
stand-in kernel of harness.s.

    run = run_under_kernel("bare", "user-hello", [])      # UserRun(output, exit_code, stderr)
    run = run_under_kernel("sim", "user-disktest", [], disk=tmp_path / "disk.img")
    image = build_on_harness(sources_of("user-fib"), tmp_path)
    run = run_on_harness(image)

Images for the kernel come from `kite build` (guestos/build/NAME.elf); the
harness images are linked here, in-process, from the same sources as
guestos/images.toml lists for the program.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from kite.build import GUESTOS, read_manifest
from vmm.cli import run as run_command

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "harness.s"
BUILD = GUESTOS / "build"
EXPECTED = GUESTOS / "user" / "expected"
USER_BASE = 0x00400000
KERNEL_PREFIX = "kernel: "
MAX_INSTRUCTIONS = 30_000_000     # far above any program's need: a runaway run stops with 124
ECHO_INPUT = ("echo: the first line\n"          # user-echo's console input: expected/echo.out again
              "a second line, longer than the 64-byte buffer, so that one line takes several reads\n"
              "the last line\n")
# configuration -> (kernel image, the `kite run` options selecting the machine)
CONFIGURATIONS = {
    "bare": ("kernel-native", ["--bare"]),
    "shadow": ("kernel-native", ["--paging", "shadow"]),
    "direct": ("kernel-pv", ["--paging", "direct"]),
}
# the disk programs also run under machine simulation (the native kernel, --sim)
DISK_CONFIGURATIONS = {**CONFIGURATIONS, "sim": ("kernel-native", ["--sim"])}
# the programs that need a disk (tests/guestos/test_disk.py boots them) -> their exit status
DISK_PROGRAMS = {"user-disktest": 0, "user-dcat": 0}


class UserRun(NamedTuple):
    """One boot: the console transcript, the exit code and what went to stderr."""
    output: str
    exit_code: int
    stderr: str


def sources_of(image: str) -> list[Path]:
    """The absolute source paths guestos/images.toml lists for `image`.
    Raises KeyError if the manifest has no such image."""
    specs = {spec.name: spec for spec in read_manifest()}
    return list(specs[image].sources)


def expected_output(program: str) -> str:
    """The hand-written transcript guestos/user/expected/PROGRAM.out (PROGRAM without 'user-')."""
    return (EXPECTED / f"{program.removeprefix('user-')}.out").read_text(encoding="utf-8")


def program_output(console: str) -> str:
    """The console transcript without the kernel's own lines (those starting
    "kernel: ", e.g. the note it prints when it kills a process): what the
    programs printed, which is what the golden files hold."""
    return "".join(line for line in console.splitlines(keepends=True) if not line.startswith(KERNEL_PREFIX))


def boot(arguments: list[str], input_text: str) -> UserRun:
    """`kite run ARGUMENTS` in-process with the console input `input_text`."""
    result = CliRunner().invoke(run_command, [*arguments, "--max-instructions", str(MAX_INSTRUCTIONS),
                                              "--input-text", input_text])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return UserRun(result.stdout_bytes.decode("utf-8", "replace"), result.exit_code, result.stderr)


def run_under_kernel(configuration: str, init: str, modules: list[str], input_text: str = "",
                     disk: Path | None = None, extra: list[str] | None = None) -> UserRun:
    """Boot the configuration's kernel (a key of DISK_CONFIGURATIONS) with
    guestos/build/INIT.elf as init and the other `modules` (image names)
    spawnable, with the disk image `disk` if given and the further `kite run`
    options `extra`.  Assumes `kite build` ran."""
    kernel, options = DISK_CONFIGURATIONS[configuration]
    arguments = [*options, str(BUILD / f"{kernel}.elf")]
    for module in [init, *modules]:
        arguments += ["--module", str(BUILD / f"{module}.elf")]
    if disk is not None:
        arguments += ["--disk", str(disk)]
    return boot([*arguments, *(extra or [])], input_text)


def build_on_harness(sources: list[Path], out_dir: Path, extra: dict[str, str] | None = None) -> Path:
    """Link `sources` (include dir: each source's directory), the generated
    sources `extra` (file name -> text) and harness.s at USER_BASE, entry
    harness_start, into out_dir/harness.elf; returns its path.  Raises
    AssemblyError or LinkError with the toolchain's diagnostics."""
    texts = [(path.read_text(encoding="utf-8"), path) for path in [*sources, HARNESS]]
    texts += [(text, out_dir / name) for name, text in (extra or {}).items()]
    objects = [assemble(text, str(path), {}, [str(path.parent)]) for text, path in texts]
    image = out_dir / "harness.elf"
    image.write_bytes(link(objects, LinkOptions(text_address=USER_BASE, entry="harness_start")))
    return image


def run_on_harness(image: Path, input_text: str = "") -> UserRun:
    """Boot a build_on_harness image on the bare machine."""
    return boot(["--bare", str(image)], input_text)

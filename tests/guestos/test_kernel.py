"""The Kite guest kernel (guestos/kernel/), end to end: each test program under
progs/ boots as init (with the modules it names) on the three configurations,
kernel-native on the bare machine and under shadow paging, kernel-pv under direct
paging, and must print exactly its inline expectation and exit with its code.

A program's header comments are its golden file:
    # modules: a, b          more boot modules (progs/a.s, progs/b.s), spawnable by name
    # input: TEXT            console input
    # cmdline: TEXT          kernel command line
    # text: ADDRESS          link address (default USER_BASE)
    # expect-exit: N         the run's exit code (init's status)
    # expect: LINE           one line of console output, in order
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import CliRunner
from elftools.elf.elffile import ELFFile

from asm.assembler import assemble
from asm.isa import decode
from asm.linker import LinkOptions, link
from kite.build import GUESTOS, ImageSpec, build_all, build_image, read_manifest
from vmm.cli import run as run_command

PROGS = Path(__file__).resolve().parent / "progs"
BUILD = GUESTOS / "build"
USER_BASE = 0x00400000
MAX_INSTRUCTIONS = 5_000_000
CONFIGS = {
    "bare": ["--bare", str(BUILD / "kernel-native.elf")],
    "shadow": ["--paging", "shadow", str(BUILD / "kernel-native.elf")],
    "direct": ["--paging", "direct", str(BUILD / "kernel-pv.elf")],
}
PROGRAMS = ["hello", "spawner", "preempt", "memory", "faults", "echo", "leak", "kernelspace", "nodisk"]
HEADER = re.compile(r"^# (modules|input|cmdline|text|expect-exit|expect): ?(.*)$")


class Program(NamedTuple):
    """A test program's header (see the module docstring); exit_code is None for a
    program that only runs as a spawned module."""
    name: str
    modules: list[str]
    input: str
    cmdline: str
    text: int
    exit_code: int | None
    expected: str


class Run(NamedTuple):
    output: str
    exit_code: int
    stats: dict


def read_program(name: str) -> Program:
    fields: dict[str, list[str]] = {}
    for line in (PROGS / f"{name}.s").read_text(encoding="utf-8").splitlines():
        match = HEADER.match(line)
        if match:
            fields.setdefault(match[1], []).append(match[2])
    expected = "".join(f"{line}\n" for line in fields.get("expect", []))
    modules = fields["modules"][0].replace(",", " ").split() if "modules" in fields else []
    return Program(name, modules, fields.get("input", [""])[0], fields.get("cmdline", [""])[0],
                   int(fields.get("text", [str(USER_BASE)])[0], 0), int(fields["expect-exit"][0]) if "expect-exit" in fields else None, expected)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """The kernels built by `kite build`, and every test program linked into a
    scratch directory; returns that directory."""
    build_all()
    out = tmp_path_factory.mktemp("progs")
    for source in PROGS.glob("*.s"):
        obj = assemble(source.read_text(encoding="utf-8"), str(source), {}, [str(PROGS)])
        text = read_program(source.stem).text
        (out / f"{source.stem}.elf").write_bytes(link([obj], LinkOptions(text_address=text)))
    return out


def boot(images: Path, config: str, program: Program, kernel: list[str] | None = None) -> Run:
    """Boot `program` as init on `config` through `kite run`."""
    modules = [arg for name in [program.name, *program.modules]
               for arg in ("--module", str(images / f"{name}.elf"))]
    with tempfile.TemporaryDirectory(prefix="kite-kernel-") as scratch:
        stats_path = Path(scratch) / "stats.json"
        arguments = [*(kernel or CONFIGS[config]), *modules, "--input-text", program.input,
                     "--cmdline", program.cmdline, "--max-instructions", str(MAX_INSTRUCTIONS),
                     "--stats-json", str(stats_path)]
        result = CliRunner().invoke(run_command, arguments)
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.stdout_bytes.decode("utf-8", "replace"), result.exit_code, stats)


def vm_stats(run: Run) -> dict:
    (stats,) = run.stats["vms"].values()
    return stats


def text_words(path: Path) -> list[int]:
    with open(path, "rb") as stream:
        data = ELFFile(stream).get_section_by_name(".text").data()
    return [int.from_bytes(data[at:at + 4], "little") for at in range(0, len(data), 4)]


def mnemonics(path: Path) -> set[str]:
    """The mnemonic of every word of the image's .text (all of it is code)."""
    return {decode(word).insn.mnemonic for word in text_words(path)}


# --- the images -------------------------------------------------------------------------------

def test_native_kernel_text_has_no_hypercall_but_the_pv_kernel_does(images):
    assert "hypercall" not in mnemonics(BUILD / "kernel-native.elf")
    assert "hypercall" in mnemonics(BUILD / "kernel-pv.elf")


def test_only_the_pv_kernel_carries_the_direct_paging_note(images):
    with open(BUILD / "kernel-pv.elf", "rb") as stream:
        assert ELFFile(stream).get_section_by_name(".note.Kite") is not None
    with open(BUILD / "kernel-native.elf", "rb") as stream:
        assert ELFFile(stream).get_section_by_name(".note.Kite") is None


def test_use_sensitive_flags_build_saves_interrupt_state_with_rdsr_wrsr(images, tmp_path):
    native = next(spec for spec in read_manifest() if spec.name == "kernel-native")
    spec = ImageSpec("kernel-sensitive", native.sources, {"USE_SENSITIVE_FLAGS": 1}, native.text,
                     native.load_offset)
    build_image(spec, tmp_path)
    image = tmp_path / "kernel-sensitive.elf"
    assert {"rdsr", "wrsr"} <= mnemonics(image)
    assert not {"rdsr", "wrsr"} & mnemonics(BUILD / "kernel-native.elf")
    hello = read_program("hello")
    for machine in (["--bare"], ["--paging", "shadow"]):
        run = boot(images, "bare", hello, [*machine, str(image)])
        assert (run.output, run.exit_code) == (hello.expected, hello.exit_code)


# --- end to end -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", [name for name in PROGRAMS if name != "leak"])
def test_program_prints_its_expectation_and_exits_with_its_code(images, name, config):
    program = read_program(name)
    run = boot(images, config, program)
    assert run.output == program.expected
    assert run.exit_code == program.exit_code


REAPED = re.compile(r"kernel: reaped pid \d+, (\d+) free frames\n")
POWER_OFF = re.compile(r"kernel: power off, (\d+) free frames\n")


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_spawning_and_reaping_many_processes_leaks_no_frame(images, config):
    run = boot(images, config, read_program("leak"))
    counts = [int(count) for count in REAPED.findall(run.output)]
    assert len(counts) == 8
    assert set(counts) == {int(POWER_OFF.search(run.output)[1])}
    assert run.exit_code == 0


@pytest.mark.slow
def test_direct_mode_changes_page_tables_only_by_hypercall(images):
    stats = vm_stats(boot(images, "direct", read_program("spawner")))
    assert "pt_write_traps" not in stats["counters"]
    assert stats["exits"]["hypercall: mmu_update"] > 0
    assert stats["exits"]["hypercall: pin_table"] > 0
    assert stats["exits"]["hypercall: set_base"] > 0
    assert stats["counters"]["updates_rejected"] == 0


@pytest.mark.slow
def test_shadow_mode_traps_the_native_kernels_page_table_writes(images):
    stats = vm_stats(boot(images, "shadow", read_program("spawner")))
    assert stats["counters"]["pt_write_traps"] > 0
    assert stats["hypercalls"] == 0

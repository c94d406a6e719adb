"""Build a test guest (tests/monitor/guests/NAME.s) with the in-process
toolchain and boot it through `kite run`, on the bare machine or under the
VMM; parse the access-matrix guest's transcript.

    image = build_guest("paging_demo", tmp_path)
    run = run_guest(image, "shadow")          # GuestRun(output, exit_code, stats, stderr)
    outcomes = parse_access_matrix(run.output) # {(pde, pte, access, user): Outcome}
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from tests.machine.test_mmu import Outcome
from vmm.cli import run as run_command

GUESTS = Path(__file__).resolve().parent / "guests"
TEXT_ADDRESS = 0x00100000
# machine -> the `kite run` options selecting it
MACHINE_OPTIONS = {"bare": ["--bare"], "shadow": ["--paging", "shadow"], "nested": ["--paging", "nested"],
                   "bt": ["--paging", "shadow", "--cpu", "bt"]}
MAX_INSTRUCTIONS = 20_000_000     # far above any guest's need: a runaway guest stops with 124


class GuestRun(NamedTuple):
    """One boot: the console transcript, the exit code, the --stats-json
    figures (None if the run wrote none) and what went to stderr."""
    output: str
    exit_code: int
    stats: dict | None
    stderr: str


def guest_source(name: str) -> Path:
    """The path of guests/NAME.s."""
    return GUESTS / f"{name}.s"


def expected_transcript(name: str) -> str:
    """The hand-written golden transcript guests/NAME.expected."""
    return (GUESTS / f"{name}.expected").read_text(encoding="utf-8")


def build_guest(name: str, out_dir: Path) -> Path:
    """Assemble guests/NAME.s (includes searched in guests/) and link it at
    TEXT_ADDRESS into out_dir/NAME.elf; returns that path.  Raises
    AssemblyError or LinkError with the toolchain's diagnostics."""
    source = guest_source(name)
    obj = assemble(source.read_text(encoding="utf-8"), str(source), {}, [str(GUESTS)])
    image = out_dir / f"{name}.elf"
    image.write_bytes(link([obj], LinkOptions(text_address=TEXT_ADDRESS)))
    return image


def run_guest(image: Path, machine: str, *options: str) -> GuestRun:
    """Boot `image` with `kite run` on `machine` ("bare" or "shadow"), extra
    `options` appended, console input empty, stats written as JSON."""
    with tempfile.TemporaryDirectory(prefix="kite-guest-") as scratch:
        stats_path = Path(scratch) / "stats.json"
        arguments = [*MACHINE_OPTIONS[machine], str(image), "--stats-json", str(stats_path),
                     "--max-instructions", str(MAX_INSTRUCTIONS), "--input-text", "", *options]
        result = CliRunner().invoke(run_command, arguments)
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return GuestRun(result.stdout_bytes.decode("utf-8", "replace"), result.exit_code, stats,
                    result.stderr)


def only_vm_counters(stats: dict) -> dict:
    """stats["vms"][the only VM]["counters"] of a VMM run (vms a list or a
    name -> stats table); asserts there is exactly one VM."""
    vms = stats["vms"]
    entries = list(vms.values()) if isinstance(vms, dict) else list(vms)
    assert len(entries) == 1, f"expected one VM, stats has {len(entries)}"
    return entries[0]["counters"]


# --- the access-matrix guest's transcript -------------------------------------------------------

ACCESS_NAMES = {"r": "read", "w": "write", "f": "fetch"}
MATRIX_LINE = re.compile(r"(?P<pde>[0-9a-f]{2}) (?P<pte>[0-9a-f]{2}) (?P<access>[rwf]) (?P<mode>[ku]): "
                         r"(?P<cause>[0-9a-f]{8}) (?P<badaddr>[0-9a-f]{8}|-) "
                         r"(?P<pde_after>[0-9a-f]{2}) (?P<pte_after>[0-9a-f]{2})")
MATRIX_FIRST, MATRIX_LAST = "access matrix: start", "access matrix: done"


class MatrixFormatError(AssertionError):
    """The matrix transcript does not have the documented shape."""


def parse_matrix_line(line: str) -> tuple[tuple[int, int, str, bool], Outcome]:
    """One case line "PDE PTE A M: CAUSE BADADDR PDE' PTE'" (see access_matrix.s)
    as ((pde, pte, access, user), Outcome).  Raises MatrixFormatError."""
    match = MATRIX_LINE.fullmatch(line)
    if match is None:
        raise MatrixFormatError(f"not a matrix case line: {line!r}")
    badaddr = None if match["badaddr"] == "-" else int(match["badaddr"], 16)
    case = (int(match["pde"], 16), int(match["pte"], 16), ACCESS_NAMES[match["access"]],
            match["mode"] == "u")
    return case, Outcome(int(match["cause"], 16), badaddr, int(match["pde_after"], 16),
                         int(match["pte_after"], 16))


def parse_access_matrix(output: str) -> dict[tuple[int, int, str, bool], Outcome]:
    """The cases of the matrix guest's transcript, in printed order (dicts keep
    it), between its start and done lines.  Raises MatrixFormatError on any
    other line or a case printed twice."""
    lines = output.splitlines()
    if not lines or lines[0] != MATRIX_FIRST or MATRIX_LAST not in lines:
        raise MatrixFormatError(f"no '{MATRIX_FIRST}' ... '{MATRIX_LAST}' frame in the output")
    outcomes = {}
    for line in lines[1:lines.index(MATRIX_LAST)]:
        case, outcome = parse_matrix_line(line)
        if case in outcomes:
            raise MatrixFormatError(f"case printed twice: {line!r}")
        outcomes[case] = outcome
    return outcomes


def matrix_runner(outcomes: dict[tuple[int, int, str, bool], Outcome]):
    """A run_access(pde, pte, access, user) for check_access_matrix that looks
    the case up in the guest's parsed transcript."""
    def run_access(pde: int, pte: int, access: str, user: bool) -> Outcome:
        return outcomes[(pde, pte, access, user)]
    return run_access


# --- paravirtual guests (tests/monitor/pvguests) ---------------------------------------------

PV_GUESTS = Path(__file__).parent / "pvguests"
GUEST_MEM = "2M"             # images are linked at 1 MiB; 2 MiB leaves free frames above them


def build_pv_guest(directory: Path, name: str, *defines: str) -> str:
    """Assemble pvguests/NAME.s (each of `defines` set to 1) and link it at 0x100000
    into `directory`; the image's path."""
    source = PV_GUESTS / f"{name}.s"
    obj = assemble(source.read_text(), str(source), dict.fromkeys(defines, 1), [str(PV_GUESTS)])
    image = directory / f"{'-'.join((name, *defines))}.elf"
    image.write_bytes(link([obj], LinkOptions(text_address=0x100000)))
    return str(image)

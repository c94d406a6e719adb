"""`kite compare` end to end on small workloads: a module workload under two tiny
guest kernels (native: UART and power device; paravirtual: hypercalls), and the
example images; the identical-output check; the files; the counters equal
`kite run --stats-json`'s; option errors.  Plus the report's pieces on
synthetic records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from kite.build import GUESTOS
from kite.compare import RECORD_FIELDS, compare, make_records, phase, read_csv, summary
from kite.runs import FAULT_EXITS, Kernels, Ran, RunOutcome, plan, read_workloads
from tests.kite.stats import run_stats
from vmm.cli import run as kite_run
from vmm.machine.costs import DEFAULT_COST_MODEL
from vmm.machine.devices.uart import ConsoleInput

EXAMPLES = GUESTOS / "build"
ECHO_OUTPUT = "kernel up, input: x\n"

# The native kernel prints its banner through the UART, echoes the first input byte, exits 3.
NATIVE_KERNEL = """
        .equ UART, 0xF0000000
        .equ POWER, 0xF0003000
        .text
        .globl _start
_start: li      t0, UART
        la      a0, banner
1:      lbu     t1, 0(a0)
        beqz    t1, 2f
        sw      t1, 0(t0)
        addi    a0, a0, 1
        j       1b
2:      lw      t1, 4(t0)               # RX: the first input byte
        sw      t1, 0(t0)
        li      t1, 10
        sw      t1, 0(t0)
        li      t0, POWER
        li      t1, 3
        sw      t1, 0(t0)
        halt
        .rodata
banner: .asciz "kernel up, input: "
"""

# The paravirtual kernel does the same through console_write (0), console_read (13), shutdown (9).
PV_KERNEL = """
        .section .note.Kite, "", @note
        .word   5, 4, 1
        .ascii  "Kite\\0\\0\\0\\0"
        .word   1
        .text
        .globl _start
_start: la      a1, banner
        li      a2, 18
        li      a0, 0
        hypercall
        la      a1, buffer
        li      a2, 1
        li      a0, 13
        hypercall
        la      a1, buffer
        li      a2, 1
        li      a0, 0
        hypercall
        la      a1, newline
        li      a2, 1
        li      a0, 0
        hypercall
        li      a1, 3
        li      a0, 9
        hypercall
        .rodata
banner: .ascii  "kernel up, input: "
newline: .ascii "\\n"
        .data
buffer: .word   0
"""

# Prints the KM bit `rdsr` shows and exits with it: 1 on the bare machine, 0 deprivileged (shadow).
SENSITIVE = """
        .equ UART, 0xF0000000
        .equ POWER, 0xF0003000
        .text
        .globl _start
_start: rdsr    a0
        andi    a0, a0, 1
        li      t0, UART
        addi    t1, a0, 48
        sw      t1, 0(t0)
        li      t1, 10
        sw      t1, 0(t0)
        li      t0, POWER
        sw      a0, 0(t0)
        halt
"""

SPIN = """
        .text
        .globl _start
_start: j       _start
"""


def image(directory: Path, name: str, source: str) -> Path:
    """Assemble and link `source` at 0x100000 into directory/NAME.elf."""
    path = directory / f"{name}.elf"
    path.write_bytes(link([assemble(source, f"{name}.s")], LinkOptions(text_address=0x100000)))
    return path


def workloads_file(directory: Path, text: str) -> Path:
    path = directory / "workloads.toml"
    path.write_text(text)
    return path


def invoke(*arguments) -> object:
    return CliRunner().invoke(compare, [str(argument) for argument in arguments])


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A directory with the two kernels, an init module, the expected output
    and a workload list: echo (modules, all four configurations) and the two
    example images."""
    from kite.build import build_all
    build_all()
    directory = tmp_path_factory.mktemp("compare")
    image(directory, "native", NATIVE_KERNEL)
    image(directory, "pv", PV_KERNEL)
    image(directory, "init", SPIN)
    (directory / "echo.out").write_text(ECHO_OUTPUT)
    workloads_file(directory, f"""
[workloads.echo]
modules = ["init.elf"]
input = "x"
expected = "echo.out"
exit_code = 3

[workloads.hello]
image = "{EXAMPLES / 'hello.elf'}"

[workloads.boot_demo]
image = "{EXAMPLES / 'boot_demo.elf'}"
exit_code = 7
""")
    return directory


@pytest.fixture(scope="module")
def full(tree):
    """One full compare of `tree` with every output file: (result, directory)."""
    result = invoke("--workloads-file", tree / "workloads.toml", "--kernel-native", tree / "native.elf",
                    "--kernel-pv", tree / "pv.elf", "--json", tree / "out.json", "--csv", tree / "out.csv",
                    "--plot", tree / "out.png")
    return result, tree


def kernel_options(tree: Path) -> list:
    return ["--workloads-file", tree / "workloads.toml", "--kernel-native", tree / "native.elf",
            "--kernel-pv", tree / "pv.elf"]


def records_of(directory: Path, phase: str = "total") -> list[dict]:
    """The records of one phase in the full compare's JSON file."""
    return [record for record in json.loads((directory / "out.json").read_text()) if record["phase"] == phase]


@pytest.mark.slow
def test_every_workload_runs_under_every_configuration_it_supports_and_they_agree(full):
    result, directory = full
    assert result.exit_code == 0, result.output + result.stderr
    pairs = [(record["workload"], record["config"]) for record in records_of(directory)]
    assert pairs == [("echo", "bare"), ("echo", "shadow"), ("echo", "shadow-basic"), ("echo", "direct"),
                     ("echo", "sim"), ("hello", "bare"), ("hello", "shadow"), ("hello", "shadow-basic"),
                     ("hello", "sim"), ("boot_demo", "bare"), ("boot_demo", "shadow"), ("boot_demo", "shadow-basic"),
                     ("boot_demo", "sim")]
    assert [record["exit_code"] for record in records_of(directory)] == [3] * 5 + [0] * 4 + [7] * 4
    for title in ("workload echo", "workload hello", "workload boot_demo"):
        assert title in result.stdout
    assert "hello: not run under direct" in result.stdout
    assert "All 13 runs of 3 workload(s) ended with the same output" in result.stdout
    assert "kite compare: [13/13] boot_demo under sim" in result.stderr


@pytest.mark.slow
def test_the_tables_show_each_runs_figures_and_a_dash_where_there_is_none(full):
    result, directory = full
    echo = {record["config"]: record for record in records_of(directory, "workload") if record["workload"] == "echo"}
    # console_write three times, console_read, shutdown
    assert echo["direct"]["exits"] == {"hypercall: console_write": 3, "hypercall: console_read": 1,
                                       "hypercall: shutdown": 1}
    assert echo["direct"]["hypercalls"] == 5
    assert echo["bare"]["overhead"] == 1.0
    assert echo["shadow"]["overhead"] == round(echo["shadow"]["modeled_cycles"] / echo["bare"]["modeled_cycles"], 4)
    bare_row = next(line for line in result.stdout.splitlines() if line.startswith("│ bare"))
    cells = [text.strip() for text in bare_row.strip("│").split("│")]
    assert cells[1] == f"{echo['bare']['guest_instructions']:,}"
    assert cells[2:5] == ["-"] * 3           # VM exits, per 1k, top exit reasons
    assert cells[5:] == [f"{echo['bare']['modeled_cycles']:,}", "1.00x"]


@pytest.mark.slow
def test_the_summary_is_generated_from_the_totals(full):
    result, directory = full
    records = records_of(directory, "workload")
    hypercalls = sum(r["hypercalls"] for r in records if r["config"] == "direct")
    writes = sum(r["pt_write_traps"] for r in records if r["config"] == "shadow")
    assert f"Direct mapping took {hypercalls:,} hypercalls where shadow paging took {writes:,} page-table " \
           f"write traps" in result.stdout


def stats_of_kite_run(tmp_path: Path, *arguments) -> dict:
    """`kite run ARGUMENTS --stats-json FILE`'s figures."""
    path = tmp_path / "stats.json"
    result = CliRunner().invoke(kite_run, [*map(str, arguments), "--stats-json", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return json.loads(path.read_text())


def expected_figures(config: str, stats: dict) -> dict:
    """What the record must say, read straight from `kite run`'s stats: the VM's
    figures under the VMM, the machine's TLB and walk counts, the machine's
    figures on bare."""
    if config == "bare":
        return {"guest_instructions": stats["instructions"], "tlb_misses": stats["tlb_misses"],
                "walk_refs": stats["walk_refs"], "modeled_cycles": stats["modeled_cycles"], "vm_exits": None}
    vm = stats["vms"]["vm1"]
    counters, exits = vm["counters"], vm["exits"]
    return {"guest_instructions": vm["guest_instructions"], "vm_exits": vm["vm_exits"], "exits": vm["exits"],
            "hypercalls": vm["hypercalls"], "hidden_faults": exits.get("hidden page fault", 0),
            "true_faults": exits.get("true page fault", 0), "pt_write_traps": exits.get("page-table write", 0),
            "shadow_entries_created": counters.get("shadow_entries_created"),
            "shadow_entries_invalidated": counters.get("shadow_entries_invalidated"),
            "tlb_misses": stats["tlb_misses"], "walk_refs": stats["walk_refs"],
            "modeled_cycles": vm["modeled_cycles"]}


@pytest.mark.slow
@pytest.mark.parametrize("workload, config, arguments", [
    ("echo", "bare", ["--bare", "native.elf", "--module", "init.elf", "--input-text", "x"]),
    ("echo", "shadow", ["--paging", "shadow", "native.elf", "--module", "init.elf", "--input-text", "x"]),
    ("echo", "direct", ["--paging", "direct", "pv.elf", "--module", "init.elf", "--input-text", "x"]),
    ("boot_demo", "bare", ["--bare", EXAMPLES / "boot_demo.elf", "--input-text", ""]),
    ("boot_demo", "shadow", ["--paging", "shadow", EXAMPLES / "boot_demo.elf", "--input-text", ""]),
])
def test_each_figure_equals_the_vmms_own_counter_for_that_run(full, tmp_path, workload, config, arguments):
    _, directory = full
    record = next(r for r in records_of(directory) if (r["workload"], r["config"]) == (workload, config))
    stats = stats_of_kite_run(tmp_path, *(directory / a if isinstance(a, str) and a.endswith(".elf") else a
                                          for a in arguments))
    want = expected_figures(config, stats)
    assert {key: record[key] for key in want} == want


@pytest.mark.slow
def test_sim_figures_equal_the_simulators_own_for_that_run(full):
    from vmm.monitor.simulate import Simulator
    _, directory = full
    record = next(r for r in records_of(directory) if (r["workload"], r["config"]) == ("echo", "sim"))
    simulator = Simulator(16 << 20, console_out=io.BytesIO(), console_in=ConsoleInput(b"x"))
    simulator.load(str(directory / "native.elf"), [str(directory / "init.elf")], "")
    stats = simulator.run(50_000_000).stats
    assert (record["guest_instructions"], record["walk_refs"], record["modeled_cycles"]) == \
        (stats.instructions, stats.walk_refs, stats.modeled_cycles)


@pytest.mark.slow
def test_json_and_csv_read_back_equal_the_records(full):
    _, directory = full
    records = json.loads((directory / "out.json").read_text())
    assert all(list(record) == list(RECORD_FIELDS) for record in records)
    assert [record["phase"] for record in records] == ["boot", "workload", "total"] * 13
    assert read_csv(directory / "out.csv") == records


@pytest.mark.slow
def test_the_plot_is_a_png(full):
    _, directory = full
    assert (directory / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(directory.glob(".kite-*"))                  # no temporary file left behind


# --- mismatches --------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_guest_that_sees_its_privilege_through_rdsr_is_a_reported_mismatch(tmp_path):
    image(tmp_path, "sensitive", SENSITIVE)
    path = workloads_file(tmp_path, '[workloads.sensitive]\nimage = "sensitive.elf"\n')
    result = invoke("--workloads-file", path, "--configs", "bare,shadow", "--json", tmp_path / "out.json")
    assert result.exit_code == 1
    assert "MISMATCH sensitive: shadow differs from bare" in result.stderr
    assert "exit code 1 (bare) vs 0 (shadow)" in result.stderr
    assert "-1\n" in result.stderr and "+0\n" in result.stderr          # the diff of the printed KM bit
    assert "1 problem(s) in 2 runs" in result.stdout
    assert len(json.loads((tmp_path / "out.json").read_text())) == 2 * 3   # still written: two runs, 3 phases


@pytest.mark.slow
def test_output_that_differs_from_the_expected_file_is_a_mismatch(tree, tmp_path):
    (tmp_path / "hello.out").write_text("goodbye\n")
    path = workloads_file(tmp_path, f'[workloads.hello]\nimage = "{EXAMPLES / "hello.elf"}"\n'
                                    f'expected = "hello.out"\n')
    result = invoke("--workloads-file", path, "--configs", "bare")
    assert result.exit_code == 1
    assert "MISMATCH hello: bare differs from what the workload expects" in result.stderr
    assert "-goodbye" in result.stderr and "+hello from kite32" in result.stderr


@pytest.mark.slow
def test_a_run_that_reaches_its_instruction_limit_did_not_finish(tmp_path):
    image(tmp_path, "spin", SPIN)
    path = workloads_file(tmp_path, '[workloads.spin]\nimage = "spin.elf"\nmax_instructions = 500\n')
    result = invoke("--workloads-file", path, "--configs", "bare")
    assert result.exit_code == 1
    assert "FAILED spin under bare did not finish: instruction limit 500 reached" in result.stderr


@pytest.mark.slow
def test_the_cost_model_option_prices_the_runs(tree, tmp_path):
    (tmp_path / "costs.toml").write_text("instruction = 3\nwalk_ref = 0\n")
    result = invoke(*kernel_options(tree), "--workloads", "boot_demo", "--configs", "bare",
                    "--cost-model", tmp_path / "costs.toml", "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.stderr
    (record,) = [r for r in json.loads((tmp_path / "out.json").read_text()) if r["phase"] == "total"]
    stats = stats_of_kite_run(tmp_path, "--bare", EXAMPLES / "boot_demo.elf", "--input-text", "",
                              "--cost-model", tmp_path / "costs.toml")
    assert record["modeled_cycles"] == stats["modeled_cycles"] != 16284


# --- option and file errors --------------------------------------------------------------------

def test_an_unknown_configuration_is_a_usage_error_listing_the_known_ones(tree):
    result = invoke(*kernel_options(tree), "--configs", "bare,kvm")
    assert result.exit_code == 2
    assert ("--configs: unknown name 'kvm'; known: bare, shadow, shadow-basic, bt, direct, nested, nested-nopwc, sim"
            in result.output)


def test_an_unknown_workload_is_a_usage_error_listing_the_known_ones(tree):
    result = invoke(*kernel_options(tree), "--workloads", "echo,nope")
    assert result.exit_code == 2
    assert "--workloads: unknown name 'nope'; known: echo, hello, boot_demo" in result.output


@pytest.mark.parametrize("option", ["--json", "--csv", "--plot"])
def test_an_output_file_in_a_missing_directory_is_an_error_before_any_run(tree, tmp_path, option):
    result = invoke(*kernel_options(tree), option, tmp_path / "no" / "such" / "file.png")
    assert result.exit_code == 2
    assert "no such directory" in result.output
    assert "kite compare: [" not in result.stderr


def test_a_bad_workload_list_is_a_one_line_error(tmp_path):
    path = workloads_file(tmp_path, "[workloads.a]\nimage = 'x'\nspeed = 9\n")
    result = invoke("--workloads-file", path)
    assert result.exit_code == 2
    assert result.stderr == f"kite compare: error: {path}: workloads.a: unknown key 'speed' " \
                            f"(known: category, disk, disk_sectors, exit_code, expected, image, input, " \
                            f"max_instructions, modules)\n"


def test_a_missing_image_is_built_once_then_named(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr("kite.build.build_all", lambda: built.append(True) or [])
    path = workloads_file(tmp_path, '[workloads.a]\nmodules = ["init.elf"]\n')
    result = invoke("--workloads-file", path, "--configs", "direct", "--kernel-pv", tmp_path / "pv.elf")
    assert result.exit_code == 2
    assert built == [True]
    assert f"missing after kite build: {tmp_path / 'pv.elf'}, {tmp_path / 'init.elf'}" in result.stderr


# --- the report on synthetic runs (a fake runner stands in for each configuration) ---------------

def fake_outcomes(tmp_path: Path, stats_by_config: dict, output: dict | None = None) -> list[RunOutcome]:
    path = workloads_file(tmp_path, '[workloads.w]\nmodules = ["init.elf"]\n')
    (workload,) = read_workloads(path)
    kernels = Kernels(tmp_path / "n.elf", tmp_path / "p.elf")
    return [RunOutcome(plan(workload, config, kernels, DEFAULT_COST_MODEL),
                       Ran((output or {}).get(config, b"same\n"), 0, "halt", "", stats), 1.0)
            for config, stats in stats_by_config.items()]


def vmm_run_stats(cycles: int, **figures):
    """A VMM run's stats as the VMM writes them: each fault figure both a counter and an exit reason."""
    counters = {key: figures.pop(key) for key in list(figures) if key.endswith(("faults", "traps"))}
    exits = {FAULT_EXITS[key]: count for key, count in counters.items()}
    return run_stats({"vm1": {"guest_instructions": 100, "vm_exits": sum(exits.values()), "exits": exits,
                              "counters": counters, "modeled_cycles": cycles, **figures}},
                     tlb_misses=1, walk_refs=2)


SYNTHETIC = {
    "bare": run_stats(instructions=100, tlb_misses=3, walk_refs=9, modeled_cycles=1000),
    "shadow": vmm_run_stats(7000, hypercalls=0, hidden_faults=600, true_faults=20, pt_write_traps=1980),
    "direct": vmm_run_stats(3000, hypercalls=412),
    "sim": run_stats(instructions=100, tlb_misses=200, page_walks=200, walk_refs=400, modeled_cycles=38000),
}


def test_the_summary_says_what_the_numbers_say(tmp_path):
    records = make_records(fake_outcomes(tmp_path, SYNTHETIC))
    assert summary(records, []) == [
        "Direct mapping took 412 hypercalls where shadow paging took 1,980 page-table write traps and "
        "600 hidden faults.",
        "Of shadow paging's 620 page faults, 20 were true faults reflected to the guest; the other 600 "
        "were hidden, the shadow tables filling like a cache (0 entries built).",
        "In modeled cycles of the workload phase, relative to the bare machine: shadow paging 7.0x, "
        "direct mapping 3.0x, machine simulation 38.0x.",
        "All 4 runs of 1 workload(s) ended with the same output and exit code in every configuration.",
    ]


def test_overhead_is_relative_to_bare_and_absent_without_a_bare_run(tmp_path):
    with_bare = make_records(fake_outcomes(tmp_path, SYNTHETIC))
    assert [record["overhead"] for record in phase(with_bare, "workload")] == [1.0, 7.0, 3.0, 38.0]
    assert [record["overhead"] for record in phase(with_bare, "boot")] == [None] * 4     # nothing to divide by
    without = make_records(fake_outcomes(tmp_path, {"sim": SYNTHETIC["sim"]}))
    assert [record["overhead"] for record in without] == [None] * 3


def test_a_fake_sim_run_differing_from_bare_fails_the_command(tmp_path, monkeypatch):
    image(tmp_path, "init", SPIN)
    path = workloads_file(tmp_path, '[workloads.w]\nmodules = ["init.elf"]\n')
    runners = {"bare": lambda spec: Ran(b"a\nb\n", 0, "halt", "", SYNTHETIC["bare"]),
               "sim": lambda spec: Ran(b"a\nc\n", 0, "halt", "", SYNTHETIC["sim"])}
    monkeypatch.setattr("kite.runs.RUNNERS", runners)
    result = invoke("--workloads-file", path, "--configs", "bare,sim", "--kernel-native", tmp_path / "init.elf")
    assert result.exit_code == 1
    assert "MISMATCH w: sim differs from bare" in result.stderr
    assert "-b\n" in result.stderr and "+c\n" in result.stderr
    sim_row = next(line for line in result.stdout.splitlines() if line.startswith("│ sim"))
    assert "38.00x" in sim_row and sim_row.count(" - ") == 3      # no VM exits, per 1k, top reasons


def test_a_narrow_terminal_gets_a_row_per_figure_and_per_exit_reason(tmp_path):
    from rich.console import Console
    from kite.compare import table
    records = phase(make_records(fake_outcomes(tmp_path, SYNTHETIC)), "workload")
    records[1]["exits"] = {"mmio": 19, "hidden page fault": 2}
    console = Console(width=80, file=io.StringIO())
    console.print(table("w", records, 80, wide=True))
    lines = console.file.getvalue().splitlines()
    assert [c.strip() for c in lines[2].split("┃")[1:-1]] == ["figure", "bare", "shadow", "direct", "sim"]
    rows = {line.split("│")[1].strip(): [text.strip() for text in line.split("│")[2:-1]]
            for line in lines if "│" in line}
    assert rows["mmio"] == ["-", "19", "0", "-"]
    assert rows["hidden page fault"] == ["-", "2", "0", "-"]
    assert rows["vs bare"] == ["1.00x", "7.00x", "3.00x", "38.00x"]


def test_an_expected_exit_code_alone_is_checked_and_a_final_newline_counts(tmp_path):
    from kite.compare import check
    path = workloads_file(tmp_path, '[workloads.w]\nmodules = ["init.elf"]\nexit_code = 7\n')
    (workload,) = read_workloads(path)
    kernels = Kernels(tmp_path / "n.elf", tmp_path / "p.elf")
    outcomes = [RunOutcome(plan(workload, config, kernels, DEFAULT_COST_MODEL), Ran(output, 7 if config == "bare"
                           else 0, "halt", "", run_stats()), 0.0) for config, output in (("bare", b"a\n"), ("sim", b"a"))]
    assert check(outcomes, {"w": None}) == [
        "MISMATCH w: sim differs from bare\n  exit code 7 (bare) vs 0 (sim)\n  output differs:\n"
        "    (only in line endings or the final newline)",
        "MISMATCH w: sim differs from what the workload expects\n  exit code 7 (expected) vs 0 (sim)",
    ]


def test_different_final_disk_bytes_are_a_mismatch_like_different_output(tmp_path):
    from kite.compare import check
    (workload,) = read_workloads(workloads_file(tmp_path, '[workloads.w]\nmodules = ["init.elf"]\n'
                                                          'disk_sectors = 4\n'))
    kernels = Kernels(tmp_path / "n.elf", tmp_path / "p.elf")
    outcomes = [RunOutcome(plan(workload, config, kernels, DEFAULT_COST_MODEL),
                           Ran(b"same\n", 0, "halt", "", run_stats(), digest), 0.0)
                for config, digest in (("bare", "aa"), ("shadow", "aa"), ("sim", "bb"))]
    assert check(outcomes, {"w": None}) == ["MISMATCH w: sim left other bytes on its disk than bare "
                                           "(SHA-256 bb vs aa)"]


# --- options: -j, --slice, --wide, categories, plot formats ----------------------------------

@pytest.mark.slow
def test_parallel_runs_give_the_same_records_as_one_process(tree, tmp_path):
    def records(*jobs):
        path = tmp_path / f"out{len(jobs)}.json"
        result = invoke(*kernel_options(tree), "--configs", "bare,shadow,direct", "--json", path, *jobs)
        assert result.exit_code == 0, result.stderr
        return [{key: value for key, value in record.items() if key != "wall_seconds"}
                for record in json.loads(path.read_text())]
    assert records("-j", "3") == records()


def test_the_slice_reaches_the_guest_kernel_as_its_command_line(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("kite.runs.RUNNERS", {"bare": lambda spec: seen.append(spec.cmdline) or
                                              Ran(b"", 0, "halt", "", run_stats())})
    image(tmp_path, "init", SPIN)
    path = workloads_file(tmp_path, '[workloads.w]\nmodules = ["init.elf"]\n')
    assert invoke("--workloads-file", path, "--configs", "bare", "--kernel-native", tmp_path / "init.elf",
                  "--slice", "250000").exit_code == 0
    assert invoke("--workloads-file", path, "--configs", "bare", "--kernel-native", tmp_path / "init.elf").exit_code == 0
    assert seen == ["slice=250000", "slice=1000000"]


def test_a_category_name_selects_its_workloads_and_the_output_is_grouped_by_category(tmp_path, monkeypatch):
    monkeypatch.setattr("kite.runs.RUNNERS", {"bare": lambda spec: Ran(b"x\n", 0, "halt", "", run_stats())})
    image(tmp_path, "init", SPIN)
    path = workloads_file(tmp_path, "".join(
        f'[workloads.{name}]\ncategory = "{category}"\nmodules = ["init.elf"]\n'
        for name, category in (("a", "cpu"), ("b", "fork"), ("c", "cpu"))))
    result = invoke("--workloads-file", path, "--configs", "bare", "--kernel-native", tmp_path / "init.elf",
                    "--workloads", "cpu")
    assert result.exit_code == 0, result.stderr
    assert "workload a (cpu)" in result.stdout and "workload c (cpu)" in result.stdout
    assert "workload b" not in result.stdout and result.stdout.count("category cpu") == 1
    unknown = invoke("--workloads-file", path, "--workloads", "gpu")
    assert unknown.exit_code == 2 and "or a category: cpu, fork" in unknown.output


def test_a_category_outside_the_six_is_refused(tmp_path):
    path = workloads_file(tmp_path, '[workloads.a]\ncategory = "gpu"\nmodules = ["init.elf"]\n')
    result = invoke("--workloads-file", path)
    assert result.exit_code == 2
    assert "workloads.a: 'category' must be one of cpu, syscall, fork, memory, ipc, io" in result.stderr


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_plot_format_comes_from_the_suffix(tmp_path, monkeypatch, suffix, magic):
    runners = {"bare": lambda spec: Ran(b"x\n", 0, "halt", "", SYNTHETIC["bare"]),
               "shadow": lambda spec: Ran(b"x\n", 0, "halt", "", SYNTHETIC["shadow"])}
    monkeypatch.setattr("kite.runs.RUNNERS", runners)
    image(tmp_path, "init", SPIN)
    path = workloads_file(tmp_path, '[workloads.w]\nmodules = ["init.elf"]\n')
    result = invoke("--workloads-file", path, "--configs", "bare,shadow", "--kernel-native", tmp_path / "init.elf",
                    "--plot", tmp_path / f"out{suffix}")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / f"out{suffix}").read_bytes().startswith(magic)


def test_a_plot_suffix_matplotlib_is_not_asked_for_is_refused_before_any_run(tree, tmp_path):
    result = invoke(*kernel_options(tree), "--plot", tmp_path / "out.gif")
    assert result.exit_code == 2
    assert "the format comes from the suffix, one of .png, .svg, .pdf" in result.output
    assert "kite compare: [" not in result.stderr


def test_every_exit_reason_has_one_colour_in_every_panel(tmp_path):
    from kite.compare import reason_colours
    records = phase(make_records(fake_outcomes(tmp_path, SYNTHETIC)), "workload")
    colours = reason_colours(records)
    assert set(colours) == {reason for record in records for reason in record["exits"] or {}}
    assert len(set(colours.values())) == len(colours)


def test_the_default_table_fits_120_columns_and_wide_shows_every_phase(tmp_path):
    from rich.console import Console
    from kite.compare import table
    records = make_records(fake_outcomes(tmp_path, SYNTHETIC))
    narrow = Console(width=120, file=io.StringIO(), record=True)
    narrow.print(table("w", records, 120))
    text = narrow.export_text()
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "┃ config ┃" in text and "boot" not in text
    wide = Console(width=400, file=io.StringIO(), record=True)
    wide.print(table("w", records, 400, wide=True))
    text = wide.export_text()
    assert all(name in text for name in ("boot", "workload", "total", "hidden PF", "wall s"))


def test_the_docs_column_table_names_every_record_key_in_order():
    """docs/compare.md "The table: every column" lists each JSON/CSV key; "Files" says the records hold
    workload, category, config, phase and exit_code, then the table's other keys in its order."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "compare.md").read_text()
    table = doc[doc.index("## The table: every column"):doc.index("## How the columns map to the ideas")]
    keys = [cells[1].strip("` ") for line in table.splitlines() if line.startswith("| ")
            for cells in [line.split("|")[1:-1]] if cells[1].strip().startswith("`")]
    leading = ["workload", "category", "config", "phase", "exit_code"]
    assert leading + [key for key in keys if key not in leading] == list(RECORD_FIELDS)

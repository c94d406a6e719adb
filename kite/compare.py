"""`kite compare`: every workload under bare, shadow, shadow-basic, direct and sim (and bt, nested,
nested-nopwc, when --configs names them), side by side.

    workloads.toml --> runs (kite.runs, -j N in parallel) --> records --> checks  (same output and exit code)
                                                                      --> tables, summary (stdout)
                                                                      --> --json / --csv / --plot files

A record is one phase (boot, workload, total) of one run: kite.runs.figures
plus `exits_per_kinsn` and `overhead`, its modeled cycles over bare's for the
same workload and phase.  The tables and the summary lead with the workload
phase and show boot apart; --wide shows every figure of every phase.  Exit
code: 0 when every run ended normally with the same output and exit code as
the others (and as expected); 1 when not, the differences reported on
stderr; 2 for a bad option or file.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path

import click

from asm.files import write_atomically
from kite.runs import (ALL_CONFIGS, CATEGORIES, CONFIGS, KERNEL_NATIVE, KERNEL_PV, PAGING_COUNTERS, WORKLOADS, Kernels,
                       RunOutcome, RunSpec, Workload, expected_output, figures, plan, read_workloads, run)
from vmm.machine.costs import DEFAULT_COST_MODEL, load_cost_model
from vmm.machine.errors import KiteError

EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130           # 128 + SIGINT, as `kite run`
DIFF_LINES = 12                  # lines of a unified diff shown per mismatch
TOP_REASONS = 3                  # exit reasons the default table names per run
DEFAULT_WIDTH = 120              # the default table's width when stdout is not a terminal
WIDE = 240                       # the --wide table's width when stdout is not a terminal
MEASURE_WIDTH = 10_000           # wide enough to measure a table's unwrapped width
DEFAULT_SLICE = 1_000_000        # instructions per guest timer tick: 1 kHz on a core retiring 10^9 per second
PLOT_SUFFIXES = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
PLOT_DPI = 150

# record key -> type, in column order (CSV columns, JSON keys)
RECORD_FIELDS = {
    "workload": str, "category": str, "config": str, "phase": str, "exit_code": int,
    "guest_instructions": int, "vm_exits": int, "exits_per_kinsn": float, "exits": dict, "hypercalls": int,
    **dict.fromkeys(PAGING_COUNTERS, int), "io_requests": int, "io_bytes": int, "mmio_exits_per_request": float,
    "requests_per_notification": float, "tlb_misses": int, "walk_refs": int, "walk_refs_per_miss": float,
    "modeled_cycles": int,
    "overhead": float, "wall_seconds": float,
}
# (table header, record key) after the configuration's name: the default table (the workload phase) ...
SHORT_COLUMNS = (
    ("guest insns", "guest_instructions"), ("VM exits", "vm_exits"), ("per 1k", "exits_per_kinsn"),
    ("top exit reasons", "top_exits"), ("modeled cycles", "modeled_cycles"), ("vs bare", "overhead"),
)
# ... and --wide (every phase)
COLUMNS = (
    ("phase", "phase"), ("guest insns", "guest_instructions"), ("VM exits", "vm_exits"),
    ("per 1k", "exits_per_kinsn"), ("exits by reason", "exits"),
    ("hypercalls", "hypercalls"), ("hidden PF", "hidden_faults"), ("true PF", "true_faults"),
    ("PT write traps", "pt_write_traps"), ("shadow built", "shadow_entries_created"),
    ("shadow inval.", "shadow_entries_invalidated"), ("nested faults", "nested_faults"),
    ("nested refs", "nested_walk_refs"), ("PWC hits", "pwc_hits"), ("callouts", "bt_callouts"),
    ("TC extra insns", "bt_overhead_instructions"), ("translated", "bt_instructions_translated"),
    ("I/O req", "io_requests"),
    ("I/O bytes", "io_bytes"), ("MMIO/req", "mmio_exits_per_request"), ("req/notify", "requests_per_notification"),
    ("TLB misses", "tlb_misses"), ("walk refs", "walk_refs"), ("refs/miss", "walk_refs_per_miss"),
    ("modeled cycles", "modeled_cycles"), ("vs bare", "overhead"),
    ("wall s", "wall_seconds"),
)
CONFIG_WORDS = {"shadow": "shadow paging", "shadow-basic": "basic shadow paging", "direct": "direct mapping",
                "nested": "nested paging", "nested-nopwc": "nested paging without the page-walk cache",
                "bt": "binary translation", "sim": "machine simulation"}


# --- records -------------------------------------------------------------------------------------

def make_records(outcomes: list[RunOutcome]) -> list[dict]:
    """The records of every outcome, in order (a record per phase), with
    `exits_per_kinsn` = VM exits per 1,000 guest instructions and `overhead`
    = modeled cycles / bare's for the same workload and phase (None without a
    bare run or a figure)."""
    records = [record for outcome in outcomes for record in figures(outcome)]
    bare = {(record["workload"], record["phase"]): record["modeled_cycles"]
            for record in records if record["config"] == "bare"}
    for record in records:
        base, cycles = bare.get((record["workload"], record["phase"])), record["modeled_cycles"]
        record["overhead"] = round(cycles / base, 4) if base and cycles is not None else None
        exits, insns = record["vm_exits"], record["guest_instructions"]
        record["exits_per_kinsn"] = round(1000 * exits / insns, 3) if exits is not None and insns else None
    return [{key: record[key] for key in RECORD_FIELDS} for record in records]


def phase(records: list[dict], name: str) -> list[dict]:
    """The records of one phase, in order."""
    return [record for record in records if record["phase"] == name]


def format_exits(exits: dict | None, separator: str) -> str | None:
    """"reason=n" per exit reason, most frequent first, joined by `separator`; None for None."""
    if exits is None:
        return None
    ranked = sorted(exits.items(), key=lambda item: (-item[1], item[0]))
    return separator.join(f"{reason}={count}" for reason, count in ranked)


def parse_exits(text: str) -> dict:
    """The inverse of format_exits(exits, "; ") ("none": no exits)."""
    pairs = (item.rpartition("=") for item in text.split("; ") if item and text != "none")
    return {reason: int(count) for reason, _, count in pairs}


def top_exits(exits: dict | None, count: int = TOP_REASONS) -> str | None:
    """The `count` most frequent exit reasons with their share, one per line."""
    if exits is None:
        return None
    total = sum(exits.values())
    ranked = sorted(exits.items(), key=lambda item: (-item[1], item[0]))[:count]
    return "\n".join(f"{reason} {100 * n / total:.0f}%" for reason, n in ranked) or "none"


def cell(key: str, record: dict) -> str:
    """A record's figure `key` as the table shows it: "-" for no figure."""
    if key == "top_exits":
        return top_exits(record["exits"]) or "-"
    value = record[key]
    if value is None:
        return "-"
    if key == "exits":
        return format_exits(value, "\n") or "none"
    if key == "overhead":
        return f"{value:,.2f}x"
    if key == "wall_seconds":
        return f"{value:.2f}"
    if key in ("exits_per_kinsn", "mmio_exits_per_request", "requests_per_notification", "walk_refs_per_miss"):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# --- checks --------------------------------------------------------------------------------------

def check(outcomes: list[RunOutcome], expected: dict[str, bytes | None]) -> list[str]:
    """Problems, one message each, starting with its label: FAILED for a run
    that ended abnormally, MISMATCH for a run whose output or exit code
    differs from the first run of its workload, or from the workload's
    expected output and exit code (`expected`: name -> bytes)."""
    problems, first = [], {}
    for outcome in outcomes:
        workload, config, ran = outcome.spec.workload, outcome.spec.config, outcome.ran
        if ran.message:
            problems.append(f"FAILED {workload.name} under {config} did not finish: {ran.message}")
        reference = first.setdefault(workload.name, outcome)
        if reference is not outcome:
            problems += differences(f"MISMATCH {workload.name}: {config} differs from {reference.spec.config}",
                                    reference.ran.output, reference.ran.exit_code, ran.output, ran.exit_code,
                                    (reference.spec.config, config))
            if ran.disk_digest != reference.ran.disk_digest:
                problems.append(f"MISMATCH {workload.name}: {config} left other bytes on its disk than "
                                f"{reference.spec.config} (SHA-256 {ran.disk_digest} vs {reference.ran.disk_digest})")
        want = expected.get(workload.name)
        if want is not None or workload.exit_code is not None:
            problems += differences(f"MISMATCH {workload.name}: {config} differs from what the workload expects",
                                    want, workload.exit_code, ran.output, ran.exit_code,
                                    (str(workload.expected or "expected"), config))
    return problems


def differences(title: str, want_output: bytes | None, want_code: int | None, output: bytes,
                exit_code: int, labels: tuple[str, str]) -> list[str]:
    """[] when the run matches what is wanted (None: not checked), else one
    message: `title`, the exit codes, a short unified diff of the outputs."""
    lines = []
    if want_code is not None and want_code != exit_code:
        lines.append(f"  exit code {want_code} ({labels[0]}) vs {exit_code} ({labels[1]})")
    if want_output is not None and want_output != output:
        diff = list(difflib.unified_diff(_lines(want_output), _lines(output), *labels, lineterm="", n=1))
        lines.append("  output differs:")
        lines += [f"    {line}" for line in diff[:DIFF_LINES]] or ["    (only in line endings or the final newline)"]
        if len(diff) > DIFF_LINES:
            lines.append(f"    ... ({len(diff) - DIFF_LINES} more diff lines)")
    return [title + "\n" + "\n".join(lines)] if lines else []


def _lines(output: bytes) -> list[str]:
    return output.decode("utf-8", "replace").splitlines()


# --- the report ------------------------------------------------------------------------------------

def table(workload: str, records: list[dict], width: int, wide: bool = False):
    """The rich Table of one workload: by default the workload phase and
    SHORT_COLUMNS; with `wide` every phase and every column.  A row per
    configuration (and phase) and a column per figure when that fits in
    `width`, else transposed (table_by_figure)."""
    from rich.console import Console
    from rich.measure import Measurement
    columns = COLUMNS if wide else SHORT_COLUMNS
    shown = records if wide else phase(records, "workload")
    grid = table_by_config(workload, shown, columns)
    unbounded = Console(width=MEASURE_WIDTH)
    if Measurement.get(unbounded, unbounded.options, grid).maximum <= width:
        return grid
    return table_by_figure(workload, shown, columns)


def title(workload: str, records: list[dict]) -> str:
    category = records[0]["category"] if records else None
    return f"workload {workload}" + (f" ({category})" if category else "")


def table_by_config(workload: str, records: list[dict], columns: tuple):
    """A row per record, a column per figure."""
    from rich.table import Table
    grid = Table(title=title(workload, records), title_justify="left", show_lines=True)
    grid.add_column("config", style="bold")
    for header, key in columns:
        if key in ("exits", "top_exits", "phase"):
            grid.add_column(header, no_wrap=True)
        else:
            grid.add_column(header, justify="right", overflow="fold")
    for record in records:
        grid.add_row(record["config"], *(cell(key, record) for _, key in columns))
    return grid


def table_by_figure(workload: str, records: list[dict], columns: tuple):
    """A row per figure (one per exit reason under "exits by reason"), a
    column per record: the layout for narrow terminals."""
    from rich.table import Table
    grid = Table(title=title(workload, records), title_justify="left")
    grid.add_column("figure", style="bold")
    phases = len({record["phase"] for record in records}) > 1
    for record in records:
        grid.add_column(f"{record['config']} {record['phase']}" if phases else record["config"], justify="right")
    for header, key in columns:
        if key not in ("exits", "top_exits"):
            if key != "phase":
                grid.add_row(header, *(cell(key, record) for record in records))
            continue
        reasons = sorted({reason for record in records for reason in record["exits"] or {}})
        grid.add_row("exits by reason", *("" if record["exits"] is not None else "-" for record in records))
        for reason in reasons:
            grid.add_row(f"  {reason}", *("-" if record["exits"] is None else f"{record['exits'].get(reason, 0):,}"
                                          for record in records))
    return grid


def boot_line(records: list[dict]) -> str:
    """The boot phase of one workload in a line, beside its table."""
    parts = [f"{record['config']} {record['guest_instructions']:,} insns"
             + (f", {record['vm_exits']:,} exits" if record["vm_exits"] is not None else "")
             + (f", {cell('overhead', record)}" if record["overhead"] is not None else "")
             for record in phase(records, "boot") if record["guest_instructions"] is not None]
    return "boot (not in the table): " + "; ".join(parts)


def totals(records: list[dict], config: str, key: str) -> int | None:
    """The sum of `key` over `config`'s records, or None if none has the figure."""
    values = [record[key] for record in records if record["config"] == config and record[key] is not None]
    return sum(values) if values else None


def overall_overhead(records: list[dict], config: str) -> float | None:
    """`config`'s modeled cycles over bare's, summed over the workloads both ran."""
    bare = {r["workload"]: r["modeled_cycles"] for r in records if r["config"] == "bare"}
    pairs = [(r["modeled_cycles"], bare[r["workload"]]) for r in records
             if r["config"] == config and r["workload"] in bare and r["modeled_cycles"] is not None]
    base = sum(b for _, b in pairs if b is not None)
    return sum(c for c, b in pairs if b is not None) / base if base else None


def walk_ratio(records: list[dict], config: str) -> float | None:
    """`config`'s walk references per TLB miss over all its records, or None."""
    misses, refs = totals(records, config, "tlb_misses"), totals(records, config, "walk_refs")
    return refs / misses if misses and refs is not None else None


def summary(records: list[dict], problems: list[str]) -> list[str]:
    """Plain-language sentences generated from the totals of the workload
    phase (and, last, whether every run agreed)."""
    runs = len(phase(records, "total"))
    records = phase(records, "workload")
    sentences = []
    hypercalls = totals(records, "direct", "hypercalls")
    writes, hidden = totals(records, "shadow", "pt_write_traps"), totals(records, "shadow", "hidden_faults")
    if hypercalls is not None and writes is not None:
        sentences.append(f"Direct mapping took {hypercalls:,} hypercalls where shadow paging took {writes:,} "
                         f"page-table write traps and {hidden or 0:,} hidden faults.")
    basic_exits, exits = totals(records, "shadow-basic", "vm_exits"), totals(records, "shadow", "vm_exits")
    if basic_exits is not None and exits is not None:
        basic_writes = totals(records, "shadow-basic", "pt_write_traps") or 0
        sentences.append(f"With write-flood detection, out-of-sync tables and prefetch, shadow paging took "
                         f"{exits:,} VM exits where the basic shadow took {basic_exits:,} ({writes or 0:,} "
                         f"page-table write traps against {basic_writes:,}).")
    nested_exits = totals(records, "nested", "vm_exits")
    if nested_exits is not None and exits is not None:
        per_miss = {config: ratio for config in ("bare", "shadow", "nested", "nested-nopwc")
                    for ratio in [walk_ratio(records, config)] if ratio is not None}
        sentences.append(f"Nested paging took {nested_exits:,} VM exits where shadow paging took {exits:,}"
                         + (f"; a TLB miss cost {', '.join(f'{r:.1f} walk references under {c}' for c, r in per_miss.items())}"
                            if per_miss else "") + ".")
    bt_exits, callouts = totals(records, "bt", "vm_exits"), totals(records, "bt", "bt_callouts")
    if bt_exits is not None and exits is not None:
        extra, guest = totals(records, "bt", "bt_overhead_instructions") or 0, totals(records, "bt", "guest_instructions")
        sentences.append(f"Binary translation took {bt_exits:,} VM exits and {callouts or 0:,} callouts where "
                         f"shadow paging took {exits:,} VM exits; its translated code ran {extra:,} instructions "
                         f"beyond the guest's {guest or 0:,}.")
    true = totals(records, "shadow", "true_faults")
    if hidden is not None and true is not None:
        built = totals(records, "shadow", "shadow_entries_created") or 0
        sentences.append(f"Of shadow paging's {hidden + true:,} page faults, {true:,} were true faults "
                         f"reflected to the guest; the other {hidden:,} were hidden, the shadow tables "
                         f"filling like a cache ({built:,} entries built).")
    costs = [f"{words} {ratio:,.1f}x" for config, words in CONFIG_WORDS.items()
             for ratio in [overall_overhead(records, config)] if ratio is not None]
    if costs:
        sentences.append(f"In modeled cycles of the workload phase, relative to the bare machine: "
                         f"{', '.join(costs)}.")
    workloads = len({record["workload"] for record in records})
    sentences.append(f"{len(problems)} problem(s) in {runs} runs of {workloads} workload(s): see above."
                     if problems else f"All {runs} runs of {workloads} workload(s) ended with the same "
                     f"output and exit code in every configuration.")
    return sentences


# --- files ---------------------------------------------------------------------------------------

def write_report(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (asm.files.write_atomically).
    Raises KiteError naming the file."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise KiteError(f"{path}: cannot write: {error.strerror}") from None


def records_json(records: list[dict]) -> bytes:
    """The records as a JSON list, one object per run."""
    return (json.dumps(records, indent=2) + "\n").encode("utf-8")


def records_csv(records: list[dict]) -> bytes:
    """The records as CSV: a header row of RECORD_FIELDS, no figure as an
    empty cell, exits as "reason=n; reason=n" ("none" for no exits)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(RECORD_FIELDS)
    for record in records:
        writer.writerow(["" if record[key] is None else format_exits(record[key], "; ") or "none" if key == "exits"
                         else record[key] for key in RECORD_FIELDS])
    return text.getvalue().encode("utf-8")


def read_csv(path: Path) -> list[dict]:
    """Records back from a records_csv file, typed as RECORD_FIELDS says."""
    with open(path, newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    decode = {str: str, int: int, float: float, dict: parse_exits}
    return [{key: None if row[key] == "" else decode[kind](row[key]) for key, kind in RECORD_FIELDS.items()}
            for row in rows]


def plot(records: list[dict], kind: str) -> bytes:
    """The charts of the workload phase as `kind` (png, svg or pdf) bytes: per
    workload, VM exits by reason (stacked, one fixed colour per reason across
    every panel) and the overhead per configuration on a log scale."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    records = phase(records, "workload")
    workloads = list(dict.fromkeys(record["workload"] for record in records))
    colours = reason_colours(records)
    figure = Figure(figsize=(13, 3.6 * len(workloads)), layout="constrained")
    axes = figure.subplots(len(workloads), 2, squeeze=False)
    for row, workload in zip(axes, workloads):
        mine = [record for record in records if record["workload"] == workload]
        _plot_exits(row[0], workload, mine, colours)
        _plot_overhead(row[1], workload, mine)
    out = io.BytesIO()
    figure.savefig(out, format=kind, dpi=PLOT_DPI)
    return out.getvalue()


def reason_colours(records: list[dict]) -> dict[str, str]:
    """One colour per exit reason, the same in every panel: reasons ranked by
    their total over all records, then the colours of tab20 in order."""
    from matplotlib import colormaps
    totals: dict[str, int] = {}
    for record in records:
        for reason, count in (record["exits"] or {}).items():
            totals[reason] = totals.get(reason, 0) + count
    palette = colormaps["tab20"].colors
    ranked = sorted(totals, key=lambda reason: (-totals[reason], reason))
    return {reason: palette[index % len(palette)] for index, reason in enumerate(ranked)}


def _plot_exits(axis, workload: str, records: list[dict], colours: dict) -> None:
    """Stacked bars: one per configuration, one segment per exit reason."""
    configs = [record["config"] for record in records]
    reasons = [reason for reason in colours if any(reason in (record["exits"] or {}) for record in records)]
    bottoms = [0] * len(records)
    for reason in reasons:
        heights = [(record["exits"] or {}).get(reason, 0) for record in records]
        axis.bar(configs, heights, bottom=bottoms, label=reason, color=colours[reason])
        bottoms = [low + height for low, height in zip(bottoms, heights)]
    axis.set_title(f"{workload}: VM exits by reason (workload phase)")
    axis.set_ylabel("exits")
    if reasons:
        axis.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _plot_overhead(axis, workload: str, records: list[dict]) -> None:
    """One bar per configuration: modeled cycles relative to bare, log scale
    (so simulation's 100x does not flatten the rest)."""
    shown = [record for record in records if record["overhead"]]
    bars = axis.bar([record["config"] for record in shown], [record["overhead"] for record in shown],
                    color="tab:gray")
    axis.bar_label(bars, labels=[cell("overhead", record) for record in shown], fontsize="small")
    axis.set_yscale("log")
    axis.axhline(1.0, color="black", linewidth=0.5)
    axis.set_title(f"{workload}: modeled cycles relative to bare (log scale)")
    axis.set_ylabel("x bare")


# --- running ---------------------------------------------------------------------------------------

class Progress:
    """Which run is under way, on stderr: a rich progress bar on a terminal,
    a plain line per run otherwise.  Use as a context manager; `advance`
    before each run."""

    def __init__(self, total: int):
        self.total, self.done, self._bar, self._task = total, 0, None, None

    def __enter__(self) -> "Progress":
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task("kite compare", total=self.total)
        return self

    def advance(self, spec: RunSpec) -> None:
        self.done += 1
        text = f"kite compare: [{self.done}/{self.total}] {spec.workload.name} under {spec.config}"
        if self._bar is None:
            click.echo(text, err=True)
        else:
            self._bar.update(self._task, completed=self.done - 1, description=text)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_specs(specs: list[RunSpec], jobs: int = 1) -> list[RunOutcome]:
    """Run every spec, showing progress; in `jobs` processes when more than
    one.  The outcomes are in the specs' order and, but for the host time,
    the same whatever `jobs` is: every run is deterministic and in-process."""
    with Progress(len(specs)) as progress:
        if jobs <= 1 or len(specs) <= 1:
            outcomes = []
            for spec in specs:
                progress.advance(spec)
                outcomes.append(run(spec))
            return outcomes
        with multiprocessing.get_context("fork").Pool(min(jobs, len(specs))) as pool:
            outcomes = []
            for spec, outcome in zip(specs, pool.imap(run, specs)):
                progress.advance(spec)
                outcomes.append(outcome)
            return outcomes


def ensure_images(specs: list[RunSpec]) -> None:
    """Every image and module the specs boot exists, building the guest
    images (kite build) once if any is missing.  Raises KiteError listing
    the files still missing."""
    from kite.build import BuildError, build_all
    needed = list(dict.fromkeys(path for spec in specs for path in (spec.image, *spec.modules)))
    if all(path.is_file() for path in needed):
        return
    try:
        build_all()
    except BuildError as error:
        raise KiteError(f"building the guest images: {error}") from None
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise KiteError(f"missing after kite build: {', '.join(missing)} "
                        f"(give the kernels with --kernel-native / --kernel-pv)")


def choose(value: str | None, known: list[str], option: str, groups: dict[str, list[str]] | None = None) -> list[str]:
    """The comma-separated names in `value` (all of `known` when None), in
    the order given; a name of `groups` stands for its members.  Raises
    click.UsageError listing the known names."""
    if value is None:
        return list(known)
    groups = groups or {}
    given = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in given if name not in known and name not in groups]
    if unknown or not given:
        listed = ", ".join(known) + (f"; or a category: {', '.join(groups)}" if groups else "")
        raise click.UsageError(f"{option}: unknown name {', '.join(repr(n) for n in unknown) or '(none given)'}; "
                               f"known: {listed}")
    return list(dict.fromkeys(member for name in given for member in groups.get(name, [name])))


OUTPUT_OPTIONS = (("json_path", "--json"), ("csv_path", "--csv"), ("plot_path", "--plot"))


def check_output_path(path: Path | None, option: str, inputs: set[Path]) -> None:
    """An output file's directory must exist and be writable, and the path
    must be neither a directory nor one of the command's `inputs` (resolved
    paths).  Checked before any run, so no run's work is lost to a bad path.
    Raises click.BadParameter."""
    if path is None:
        return
    if path.is_dir():
        raise click.BadParameter(f"'{path}' is a directory", param_hint=option)
    directory = path.resolve().parent
    if not directory.is_dir():
        raise click.BadParameter(f"'{path}': no such directory '{directory}'", param_hint=option)
    if path.resolve() in inputs:
        raise click.BadParameter(f"'{path}' would overwrite an input of the comparison", param_hint=option)
    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as error:
        raise click.BadParameter(f"'{path}': cannot write in '{directory}': {error.strerror}",
                                 param_hint=option) from None


def input_paths(options: dict, workloads: list[Workload]) -> set[Path]:
    """Every file the comparison reads, resolved."""
    paths = [options["workloads_file"], options["kernel_native"], options["kernel_pv"], options["cost_model"]]
    for workload in workloads:
        paths += [workload.image, *workload.modules, workload.expected]
    return {Path(path).resolve() for path in paths if path}


def plan_runs(workloads: list[Workload], configs: list[str], kernels: Kernels, cost_model,
              cmdline: str = "") -> list[RunSpec]:
    """Every (workload, configuration) pair the workload supports, workloads outer."""
    return [plan(workload, config, kernels, cost_model, cmdline)
            for workload in workloads for config in configs if config in workload.configs(ALL_CONFIGS)]


def report(records: list[dict], problems: list[str], skipped: list[str], wide: bool = False) -> None:
    """The tables grouped by category, each with its boot line, and the
    summary on stdout; the problems loudly on stderr."""
    from rich.console import Console
    from rich.text import Text
    out = Console(width=None if sys.stdout.isatty() else WIDE if wide else DEFAULT_WIDTH, highlight=False)
    for category in dict.fromkeys(record["category"] for record in records):
        out.rule(f"category {category}" if category else "uncategorized", align="left")
        mine = [record for record in records if record["category"] == category]
        for workload in dict.fromkeys(record["workload"] for record in mine):
            own = [record for record in mine if record["workload"] == workload]
            out.print(table(workload, own, out.width, wide))
            if not wide:
                out.print(f"[dim]{boot_line(own)}[/dim]")
    for line in skipped:
        out.print(f"[dim]{line}[/dim]")
    errors = Console(stderr=True, highlight=False)
    for problem in problems:
        label, _, rest = problem.partition(" ")
        errors.print(Text.assemble((label, "bold red"), " " + rest), soft_wrap=True)
    out.print("\n".join(summary(records, problems)), soft_wrap=True)


def compare_main(options: dict) -> int:
    """The command behind the click wrapper; returns the exit code.  Raises
    KiteError for bad files and click.UsageError for bad options."""
    configs = choose(options["configs"], list(ALL_CONFIGS), "--configs") if options["configs"] else list(CONFIGS)
    available = read_workloads(options["workloads_file"])
    categories = {category: [workload.name for workload in available if workload.category == category]
                  for category in CATEGORIES if any(workload.category == category for workload in available)}
    names = choose(options["workloads"], [workload.name for workload in available], "--workloads", categories)
    workloads = [workload for name in names for workload in available if workload.name == name]
    outputs = [(options[key], option) for key, option in OUTPUT_OPTIONS if options[key] is not None]
    if len({path.resolve() for path, _ in outputs}) != len(outputs):
        raise click.UsageError("--json, --csv and --plot must name different files")
    if options["plot_path"] is not None and options["plot_path"].suffix.lower() not in PLOT_SUFFIXES:
        raise click.BadParameter(f"'{options['plot_path']}': the format comes from the suffix, one of "
                                 f"{', '.join(PLOT_SUFFIXES)}", param_hint="--plot")
    inputs = input_paths(options, available)
    for path, option in outputs:
        check_output_path(path, option, inputs)
    model = load_cost_model(options["cost_model"]) if options["cost_model"] else DEFAULT_COST_MODEL
    expected = {workload.name: expected_output(workload) for workload in workloads}
    specs = plan_runs(workloads, configs, Kernels(options["kernel_native"], options["kernel_pv"]), model,
                      f"slice={options['slice']}")
    skipped = [f"{w.name}: not run under {', '.join(c for c in configs if c not in w.configs(ALL_CONFIGS))} "
               f"(it gives its own image; direct needs the PV kernel)"
               for w in workloads if set(configs) - set(w.configs(ALL_CONFIGS))]
    if not specs:
        raise click.UsageError("no workload runs under the chosen configurations")
    ensure_images(specs)
    outcomes = run_specs(specs, options["jobs"])
    records = make_records(outcomes)
    problems = check(outcomes, expected)
    report(records, problems, skipped, options["wide"])
    write_outputs(records, options)
    return EXIT_MISMATCH if problems else 0


def write_outputs(records: list[dict], options: dict) -> None:
    """The --json, --csv and --plot files that were asked for: each one is
    attempted; raises KiteError naming every one that could not be written."""
    failures = []
    plot_kind = PLOT_SUFFIXES.get(options["plot_path"].suffix.lower()) if options["plot_path"] else None
    for key, render in (("json_path", records_json), ("csv_path", records_csv),
                        ("plot_path", lambda records: plot(records, plot_kind))):
        if options[key] is not None:
            try:
                write_report(options[key], render(records))
            except OSError as error:
                failures.append(f"{options[key]}: cannot write: {error.strerror}")
    if failures:
        raise KiteError("; ".join(failures))


@click.command("compare", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="Example: kite compare --workloads hello --configs bare,shadow,sim --plot compare.png")
@click.option("--workloads", metavar="A,B", help="Run only these workloads or categories (cpu, syscall, fork, "
              "memory, ipc, io; default: all in the file).")
@click.option("--configs", metavar="bare,shadow,shadow-basic,bt,direct,nested,sim",
              help="Run only these configurations (default: all but bt, nested and nested-nopwc, which run when "
                   "named).")
@click.option("--workloads-file", type=click.Path(dir_okay=False, path_type=Path), default=WORKLOADS,
              show_default=True, help="The workload list.")
@click.option("--kernel-native", type=click.Path(dir_okay=False, path_type=Path), default=KERNEL_NATIVE,
              show_default=True, help="The unmodified guest kernel (bare, shadow, nested, sim).")
@click.option("--kernel-pv", type=click.Path(dir_okay=False, path_type=Path), default=KERNEL_PV,
              show_default=True, help="The paravirtual guest kernel (direct).")
@click.option("--cost-model", type=click.Path(dir_okay=False), help="JSON or TOML file overriding the cycle costs.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the records as JSON.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Write the records as CSV.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Write charts (.png, .svg or .pdf by the suffix): exits by reason and overhead, per workload.")
@click.option("--slice", type=click.IntRange(min=0), default=DEFAULT_SLICE, show_default=True,
              help="The guest kernel's timer tick, in instructions (kernel command line slice=N; 0: none).")
@click.option("--wide", is_flag=True, help="Show every figure of every phase, not the workload phase's summary.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the runs in this many processes (the results are the same).")
def compare(**options) -> None:
    """Run every workload under bare, shadow, shadow-basic, direct and sim (bt, nested and
    nested-nopwc too, if --configs names them); check they print the same output and exit code;
    show their figures side by side.

    Exit code: 0 when every run agrees; 1 on a mismatch or a run that did not
    finish; 2 for a bad option or file."""
    try:
        exit_code = compare_main(options)
    except KiteError as error:
        click.echo(f"kite compare: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("kite compare: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_code)

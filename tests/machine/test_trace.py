"""`kite run --trace` (docs/tracing.md): categories, the address filter, JSON Lines, symbols of modules,
file:line, --sim; the docs' examples replayed; and a trace never changes the run."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from kite.build import build_all
from vmm.cli import run as run_command

ROOT = Path(__file__).resolve().parents[2]
BUILD = "guestos/build"
DOC = ROOT / "docs" / "tracing.md"
COMMON = {"event", "vm", "pc"}
KEYS = {       # docs/tracing.md "The JSON Lines format": every key of every event, always present
    "insn": COMMON | {"symbol", "word", "disasm", "file", "line"},
    "trap": COMMON | {"cause", "name", "badaddr"},
    "exit": COMMON | {"cause", "name", "badaddr", "reasons", "resume"},
    "hypercall": COMMON | {"name", "args", "result"},
    "mmu": COMMON | {"va", "access", "user", "entry", "fault"},
    "io": COMMON | {"device", "op", "offset", "width", "value"},
}


@pytest.fixture(scope="module", autouse=True)
def built_images():
    build_all()


@pytest.fixture(autouse=True)
def at_the_root(monkeypatch):
    monkeypatch.chdir(ROOT)          # the docs' commands name guestos/build/... and print paths from here


def kite_run(*args):
    return CliRunner().invoke(run_command, [str(arg) for arg in args])


def doc_examples() -> list[tuple[list[str], str]]:
    """Each `<!-- trace example -->` of docs/tracing.md: (the kite run arguments, the trace it shows)."""
    found = re.findall(r"<!-- trace example -->\n```console\n\$ kite run (.*?) >/dev/null\n(.*?)```",
                       DOC.read_text(), re.S)
    assert len(found) >= 4, "docs/tracing.md lost its examples"
    return [(shlex.split(command), trace) for command, trace in found]


EXAMPLES = doc_examples()


@pytest.mark.slow
@pytest.mark.parametrize("args, trace", EXAMPLES, ids=[f"example{n}" for n in range(1, len(EXAMPLES) + 1)])
def test_the_examples_of_the_docs_replay_verbatim(args, trace):
    result = kite_run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == trace


RUNS = {     # the arguments, --trace-events, the events the trace then holds
    "bare": (["--bare", f"{BUILD}/boot_demo.elf"], "insn,trap,mmu,io", "insn,trap,mmu,io"),
    "sim": (["--sim", f"{BUILD}/boot_demo.elf"], "insn,trap,io", "insn,trap,io"),
    "shadow": (["--paging", "shadow", f"{BUILD}/boot_demo.elf"], "all", "insn,trap,exit,mmu,io"),  # no hypercall
    "direct": (["--paging", "direct", f"{BUILD}/kernel-pv.elf", "--module", f"{BUILD}/user-hello.elf"],
               "trap,exit,hypercall", "trap,exit,hypercall"),
}


@pytest.mark.slow
@pytest.mark.parametrize("machine", RUNS)
def test_a_trace_changes_neither_the_output_nor_any_figure_and_every_event_has_the_documented_keys(
        tmp_path, machine):
    args, events, seen = RUNS[machine]
    plain = kite_run(*args, "--stats-json", tmp_path / "plain.json")
    traced = kite_run(*args, "--stats-json", tmp_path / "traced.json", "--trace", tmp_path / "trace.jsonl",
                      "--trace-events", events, "--trace-format", "jsonl")
    assert (traced.exit_code, traced.stdout_bytes) == (plain.exit_code, plain.stdout_bytes), traced.stderr
    assert (tmp_path / "traced.json").read_text() == (tmp_path / "plain.json").read_text()
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    wanted = set(seen.split(","))
    assert {record["event"] for record in records} == wanted
    for record in records:
        assert set(record) == KEYS[record["event"]], record
        assert (record["vm"] == "vm1") == (machine in ("shadow", "direct")), record
    stats = json.loads((tmp_path / "plain.json").read_text())
    if "insn" in wanted:
        assert sum(record["event"] == "insn" for record in records) >= stats["instructions"]
    if "mmu" in wanted and machine == "bare":
        assert sum(record["event"] == "mmu" for record in records) == stats["page_walks"]
    if "io" in wanted and machine != "shadow":
        io = [record["op"] for record in records if record["event"] == "io"]
        assert (io.count("read"), io.count("write")) == (stats["device_reads"], stats["device_writes"])


@pytest.mark.slow
def test_the_simulator_traces_the_same_instructions_and_traps_as_the_bare_machine(tmp_path):
    traces = {}
    for machine in ("--bare", "--sim"):
        path = tmp_path / f"{machine[2:]}.txt"
        result = kite_run(machine, f"{BUILD}/boot_demo.elf", "--trace", path)
        assert result.exit_code == 7, result.stderr
        traces[machine] = path.read_text()
    assert traces["--sim"] == traces["--bare"]
    assert "trap: interrupt timer" in traces["--bare"]


@pytest.mark.slow
def test_module_code_is_named_after_the_module_with_its_source_line_and_the_filter_keeps_only_it(tmp_path):
    trace = tmp_path / "trace.jsonl"
    result = kite_run("--paging", "shadow", f"{BUILD}/kernel-native.elf", "--module", f"{BUILD}/user-hello.elf",
                      "--trace", trace, "--trace-format", "jsonl", "--trace-events", "insn",
                      "--trace-filter", "user-hello:main..user-hello:main+0x10")
    assert result.exit_code == 0 and result.stdout_bytes == b"hello from user space\n", result.stderr
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert records and all(0x00400228 <= record["pc"] < 0x00400238 for record in records)
    first = records[0]
    assert (first["symbol"], first["disasm"]) == ("user-hello:main", "addi sp, sp, -4")
    assert first["file"].endswith("guestos/user/hello.s") and first["line"] == 7


@pytest.mark.parametrize("arguments, complaint", [
    (["--trace", "-", "--trace-events", "insn,frob"], "'frob' is not a trace category"),
    (["--trace", "-", "--trace-filter", "0x1000"], "'0x1000' is not a range START..END"),
    (["--trace", "-", "--trace-format", "xml"], "Invalid value for '--trace-format'"),
    (["--trace-events", "insn"], "--trace-events needs --trace FILE|-"),
    (["--trace-filter", "1..2", "--trace-format", "jsonl"], "--trace-filter and --trace-format need --trace"),
    (["--trace", "-", "--trace-events", "exit"], "--trace-events exit: only the VMM makes exits"),
])
def test_bad_trace_options_are_usage_errors(arguments, complaint):
    result = kite_run(f"{BUILD}/hello.elf", "--bare", *arguments)
    assert result.exit_code == 2 and complaint in result.stderr, result.stderr


@pytest.mark.parametrize("arguments, complaint", [
    (["--sim", "--trace-events", "mmu"], "the simulator has no MMU or TLB"),
    (["--sim", "--trace-events", "hypercall"], "--trace-events hypercall: only the VMM"),
    (["--bare", "--trace-filter", "nosuch..main"], "no symbol 'nosuch' in the kernel or a module"),
    (["--bare", "--trace-filter", "_start+8.._start"], "the range is empty (0x00100008..0x00100000)"),
])
def test_trace_options_the_machine_or_the_image_cannot_serve_are_errors_with_exit_2(arguments, complaint):
    result = kite_run(f"{BUILD}/hello.elf", "--trace", "-", *arguments)
    assert result.exit_code == 2 and complaint in result.stderr, result.stderr
    assert "hello from kite32" not in result.stdout and "Traceback" not in result.stderr


def test_exits_and_hypercalls_alone_leave_the_cpu_its_fast_loop():
    from vmm.launch import machine_mem_for
    from vmm.monitor.monitor import Monitor
    from vmm.monitor.vm import VmConfig
    from vmm.tracing import TraceConfig, attach_monitor
    config = VmConfig(f"{BUILD}/boot_demo.elf", "shadow", 4 << 20, "vm1", ())
    for events, traced_loop in (({"exit", "hypercall", "trap"}, False), ({"io"}, True)):
        monitor = Monitor(machine_mem_for([config]))
        monitor.create_vm(config)
        attach_monitor(monitor, TraceConfig(lambda line: None, frozenset(events)))
        assert (monitor.cpu.trace is not None) == traced_loop
        assert (monitor.trace_hypercall is not None) == ("hypercall" in events)

"""Random differential fuzzing: COUNT random programs (tests/differential) on the bare
machine, the simulator and the VMM with shadow paging, every piece of architectural
state compared.

    .venv/bin/python bench/fuzz.py [--seed S] [--count N] [--jobs J] [--out DIR]
                                   [--ops MIN,MAX] [--disable OP,...]
    .venv/bin/python bench/fuzz.py --replay FILE.s ...
    .venv/bin/python bench/fuzz.py --reduce FILE.s ...

Program i has seed S + i (S is printed first; random unless given), so any
program can be generated again alone with --seed S+i --count 1.  Each program
that diverges or crashes an engine is saved as DIR/seed-N.s, its verdict in
its header; --replay runs saved files again, --reduce shrinks each to the
operations it needs to diverge the same way (tests/differential/reduce.py) and
saves that as FILE.min.s.  Prints one line per finding, a count per kind of
finding, and last one summary line:

    programs: 10000, divergences: 0, crashes: 0

A crash is a Python exception out of an engine or a "VMM error" stop of the
VM; a program both crashing and diverging counts as a crash.  Exits 1 if
there was any finding.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.differential.generator import KERNEL_OPS, OP_MARK, Program, generate   # noqa: E402
from tests.differential.harness import Outcome, check, save               # noqa: E402
from tests.differential.reduce import reduce                              # noqa: E402

_settings: dict = {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replay:
        return replay(args.replay)
    if args.reduce:
        return shrink(args.reduce)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    out = Path(args.out) if args.out else Path(tempfile.gettempdir()) / f"kite-fuzz-{seed}"
    print(f"fuzz: seed {seed}, {args.count} programs, {args.jobs} jobs, findings saved under {out}", flush=True)
    started = time.perf_counter()
    divergences = crashes = 0
    classes: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="kite-fuzz-work-") as scratch, multiprocessing.Pool(
            args.jobs, initializer=_init, initargs=({"ops": args.ops, "disabled": frozenset(args.disable),
                                                     "out": out, "scratch": Path(scratch)},)) as pool:
        for program_seed, verdict, crashed, signature in pool.imap_unordered(
                _run_one, range(seed, seed + args.count), chunksize=4):
            if verdict is None:
                continue
            crashes += crashed
            divergences += not crashed
            classes[signature] += 1
            print(f"seed {program_seed}: {verdict}", flush=True)
    for signature, count in classes.most_common():
        print(f"  {count:6d} x {signature}")
    print(f"  ({time.perf_counter() - started:.0f} s)")
    print(f"programs: {args.count}, divergences: {divergences}, crashes: {crashes}")
    return 1 if divergences or crashes else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, help="seed of the first program (default: random, printed)")
    parser.add_argument("--count", type=int, default=10_000, help="programs to run (default 10000)")
    parser.add_argument("--jobs", type=int, default=multiprocessing.cpu_count(), help="worker processes")
    parser.add_argument("--out", help="directory for diverging programs (default: a temp dir named after the seed)")
    parser.add_argument("--ops", type=_range, default=KERNEL_OPS, help="MIN,MAX operations per program body")
    parser.add_argument("--disable", type=lambda text: [op for op in text.split(",") if op], default=[],
                        help="generator operations never to emit, e.g. program_timer,user_excursion")
    parser.add_argument("--replay", nargs="+", metavar="FILE.s", help="run saved programs again")
    parser.add_argument("--reduce", nargs="+", metavar="FILE.s", help="shrink saved programs")
    return parser.parse_args(argv)


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition(",")
    return int(low), int(high or low)


def _init(settings: dict) -> None:
    """A worker's settings; its own scratch directory inside the run's."""
    _settings.update(settings, scratch=Path(tempfile.mkdtemp(dir=settings["scratch"])))


def _run_one(seed: int) -> tuple[int, str | None, bool, str]:
    """Generate and check one program in a worker: (seed, verdict or None if
    all agree, whether an engine crashed, a signature for grouping)."""
    program = generate(seed, _settings["ops"], _settings["disabled"])
    outcome = check(program, _settings["scratch"])
    for leftover in _settings["scratch"].glob(f"seed-{seed}.*"):
        leftover.unlink()
    if outcome.ok:
        return seed, None, False, ""
    path = save(program, outcome.summary(), _settings["out"])
    return seed, f"{outcome.summary().replace(chr(10), '; ')} -> {path}", bool(outcome.crashes), signature(outcome)


def signature(outcome: Outcome) -> str:
    """A coarse name for grouping findings: the engine and what differed first."""
    if outcome.crashes:
        name, text = next(iter(outcome.crashes.items()))
        return f"{name} crash: {text.strip().splitlines()[-1][:100]}"
    first = outcome.divergences[0]
    engine, _, rest = first.partition(" vs ")
    what = rest.split(": ", 1)[1]
    if what.startswith("RAM word"):
        what = "RAM " + what.split("(")[1].split(")")[0].split("+")[0] + (
            " " + what.split(": ")[-1].split(")")[0] if "kdata" in what else "")
    else:
        what = what.split(" ")[0]
    return f"{engine}: " + re.sub(r"(entry|checkpoint) [0-9]+", r"\1 N", what)


def generated_part(text: str) -> str:
    """A saved program without the verdict lines save() put above it."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("# Kite32 differential program")), 0)
    return "".join(lines[start:])


def shrink(paths: list[str]) -> int:
    """Reduce each saved program to the operations its divergence needs."""
    with tempfile.TemporaryDirectory(prefix="kite-reduce-") as scratch:
        for number, name in enumerate(paths):
            source = generated_part(Path(name).read_text(encoding="utf-8"))
            outcome = check(Program(number, source), Path(scratch))
            if outcome.ok:
                print(f"{name}: all engines agree, nothing to reduce")
                continue
            wanted = signature(outcome)

            def keeps_failing(candidate: str) -> bool:
                try:
                    return signature(check(Program(number, candidate), Path(scratch))) == wanted
                except Exception:         # no longer assembles or fits the layout
                    return False
            smaller = Program(number, reduce(source, keeps_failing))
            target = Path(name).with_suffix(".min.s")
            save(smaller, check(smaller, Path(scratch)).summary(), target.parent, target.name)
            print(f"{name}: {wanted} -> {target} ({smaller.source.count(OP_MARK)} operations left)")
    return 0


def replay(paths: list[str]) -> int:
    """Run saved programs again and print each verdict."""
    failed = 0
    with tempfile.TemporaryDirectory(prefix="kite-replay-") as scratch:
        for number, name in enumerate(paths):
            program = Program(number, generated_part(Path(name).read_text(encoding="utf-8")))
            outcome = check(program, Path(scratch))
            failed += not outcome.ok
            print(f"{name}: {'all engines agree' if outcome.ok else outcome.summary()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

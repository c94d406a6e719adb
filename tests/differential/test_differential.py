"""Random differential testing in the suite (issue 9, item 3).

PROGRAMS random programs with fixed seeds (tests/differential/generator.py) run
on the bare machine, the simulator and the VMM with shadow paging (with and
without the production shadow-MMU techniques), and every
piece of architectural state must agree at the end (harness.py).  They run in
a pool of up to two processes, once per session, for the seeds selected; a
diverging program is saved as a .s file whose path the failure names.

bench/fuzz.py (`make fuzz`) runs thousands more from a random seed.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.differential import harness
from tests.differential.encodings import illegal_word
from tests.differential.generator import FIXED_MARK, OP_MARK, Program, generate
from tests.differential.reduce import reduce

PROGRAMS = 300
OPS = (30, 100)                 # shorter bodies than the fuzz's: the suite's share of time
JOBS = min(2, os.cpu_count() or 1)
EXCEPTIONS = ("illegal instruction", "privileged instruction", "misaligned access", "page fault",
              "divide by zero", "breakpoint", "system call", "bus error")
FEATURES = ("paging", "second-directory", "user", "user-paging-off", "timer", "wfi", "wfi-maybe-no-source",
            "console-irq", "pte-rewrite", "partial-pte-store", "alias-pte-store", "fetch-fault",
            "misaligned-jalr", "self-modifying", "tlb-touch", "unhandled", "triple-fault", "rdsr", "wrsr")


class Verdict(NamedTuple):
    """What a worker sends back for one seed: the problems (empty if none),
    the program's source when there are any, the bare machine's trap counts
    and the program's features."""
    seed: int
    problems: str
    source: str
    counts: dict[str, int]
    features: frozenset[str]


def run_seed(seed: int) -> Verdict:
    """Generate and check one program in a scratch directory."""
    program = generate(seed, OPS)
    with tempfile.TemporaryDirectory(prefix="kite-differential-") as scratch:
        outcome = harness.check(program, Path(scratch))
    bare = outcome.states.get(harness.REFERENCE)
    return Verdict(seed, outcome.summary(), "" if outcome.ok else program.source,
                   bare.counts if bare else {}, frozenset(program.features))


@pytest.fixture(scope="module")
def verdicts(request) -> dict[int, Verdict]:
    """The verdict of every seed selected in this session, computed in parallel."""
    seeds = sorted({item.callspec.params["seed"] for item in request.session.items
                    if getattr(item, "callspec", None) and item.module is request.module
                    and "seed" in item.callspec.params} or set(range(PROGRAMS)))
    with multiprocessing.get_context("fork").Pool(JOBS) as pool:
        return {verdict.seed: verdict for verdict in pool.imap_unordered(run_seed, seeds, chunksize=8)}


@pytest.mark.parametrize("seed", range(PROGRAMS))
def test_random_program_ends_in_the_same_state_on_bare_sim_and_both_shadows(seed, verdicts, tmp_path_factory):
    verdict = verdicts[seed]
    if verdict.problems:
        path = harness.save(Program(seed, verdict.source, set(verdict.features)), verdict.problems,
                            tmp_path_factory.getbasetemp() / "differential")
        pytest.fail(f"seed {seed}: {verdict.problems}\nreproducer: {path}", pytrace=False)


REPRODUCERS = sorted((Path(__file__).resolve().parent / "repro").glob("*.s"))


@pytest.mark.parametrize("path", REPRODUCERS, ids=lambda path: path.stem)
def test_reduced_reproducer_ends_in_the_same_state_on_every_engine(path, tmp_path):
    outcome = harness.check(Program(0, path.read_text(encoding="utf-8")), tmp_path)
    assert outcome.ok, f"{path}: {outcome.summary()}"


def test_the_fixed_seeds_raise_every_exception_kind_and_the_timer_interrupt(verdicts):
    seen: dict[str, int] = {}
    for verdict in verdicts.values():
        for name, count in verdict.counts.items():
            seen[name] = seen.get(name, 0) + count
    if len(verdicts) < PROGRAMS:
        pytest.skip("only some seeds selected")
    assert [name for name in EXCEPTIONS + ("timer",) if not seen.get(name)] == []


def test_the_fixed_seeds_exercise_every_generator_feature(verdicts):
    if len(verdicts) < PROGRAMS:
        pytest.skip("only some seeds selected")
    covered = frozenset().union(*(verdict.features for verdict in verdicts.values()))
    assert [feature for feature in FEATURES if feature not in covered] == []


def test_same_seed_gives_the_same_program():
    assert generate(12345).source == generate(12345).source
    assert generate(12345).source != generate(12346).source


def test_every_illegal_word_the_generator_emits_does_not_decode():
    import random
    from asm.isa import decode
    rng = random.Random(9)
    accepted = {word for word in (illegal_word(rng) for _ in range(20_000)) if decode(word) is not None}
    assert sorted(f"{word:#010x}" for word in accepted)[:5] == []


def test_reduce_keeps_only_the_operations_the_failure_needs_and_every_fixed_part():
    source = generate(3, OPS).source
    smaller = reduce(source, lambda candidate: candidate.count(f"{OP_MARK}memory\n") >= 2)
    assert smaller.count(OP_MARK) == 2 and smaller.count(f"{OP_MARK}memory\n") == 2
    assert smaller.count(FIXED_MARK) == source.count(FIXED_MARK)


def test_a_difference_in_one_register_is_reported_with_the_engine_and_the_register(tmp_path):
    def sim_with_a_wrong_a1(image, console_in):
        state = harness.run_sim(image, console_in)
        return replace(state, regs=state.regs[:5] + (state.regs[5] ^ 1,) + state.regs[6:])
    engines = dict(harness.ENGINES, sim=sim_with_a_wrong_a1)
    outcome = harness.check(generate(7, OPS), tmp_path, engines)
    assert outcome.divergences[0].startswith("sim vs bare: r5 (a1) ")


def test_a_difference_in_one_byte_of_ram_is_reported_with_its_address(tmp_path):
    def shadow_with_a_changed_byte(image, console_in):
        state = harness.run_shadow(image, console_in)
        ram = bytearray(state.ram)
        ram[0x15003] ^= 0x80
        return replace(state, ram=bytes(ram))
    engines = dict(harness.ENGINES, shadow=shadow_with_a_changed_byte)
    outcome = harness.check(generate(7, OPS), tmp_path, engines)
    assert outcome.divergences == [
        "shadow vs bare: RAM word 0x00015000 (data0+0x0) "
        f"{int.from_bytes(bytes(outcome.states['shadow'].ram[0x15000:0x15004]), 'little'):#010x} != "
        f"{int.from_bytes(outcome.states['bare'].ram[0x15000:0x15004], 'little'):#010x} (1 words differ)"]


def test_an_engine_that_raises_is_a_crash_not_a_divergence(tmp_path):
    def broken_sim(image, console_in):
        raise RuntimeError("simulator bug")
    outcome = harness.check(generate(7, OPS), tmp_path, dict(harness.ENGINES, sim=broken_sim))
    assert list(outcome.crashes) == ["sim"] and "simulator bug" in outcome.summary()

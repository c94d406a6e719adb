"""Build a generated program and run it on the four engines (bare, sim, shadow,
shadow-basic); compare every piece of architectural state at the end.

    outcome = check(program, directory)   # Outcome: states, crashes, divergences
    outcome.ok                            # no divergence and no crash
    save(program, outcome, directory)     # the .s file, with the verdict in its header

The engines, each on RAM of layout.RAM_SIZE with the console input the program
names (generator.console_input):

    bare     vmm.machine.machine.Machine          state from its CPU
    sim      vmm.monitor.simulate.Simulator       state from the simulator
    shadow   vmm.monitor.monitor.Monitor, one VM, shadow paging with every technique
             (shadow-basic: none of them, docs/shadow.md "Optimizations"; run_bt: the guest
             kernel's code binary-translated, --cpu bt, checked by tests/monitor/test_bt.py): registers and pc
             from the CPU while the VM is switched in (else from the VM), status
             = vm.vcpu.status(machine status), the other CRs from vm.vcpu.cr, RAM
             through the VM's guest-physical map (vm.memory)

The state compared (State): how the run ended and its exit code, retired
instructions, pc, r0-r15, the eight control registers, console output and all
of RAM.  The end messages are not compared: docs/isa.md fixes the exit codes,
not the wording.  A crash is a Python exception out of an engine, or a VM
the VMM stopped for a failure of its own (state "vmm error", or a message
naming a VMM error), not for the guest's doing.
Every allowed difference is excluded by the generator (generator.py's module
doc), so any difference here is a divergence.
"""

from __future__ import annotations

import io
import traceback
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

from asm.assembler import assemble
from asm.isa import CR_NAMES, CR_STATUS
from asm.linker import LinkOptions, link
from tests.differential import layout as L
from tests.differential.generator import Program, console_input

REFERENCE = "bare"
END_DONE, END_LIMIT, END_FAULT, END_NO_SOURCE = "done", "instruction limit", "fault", "wfi with no interrupt source"
VMM_ERROR = "vmm error"   # the state (and in the message) of a VM the VMM stopped for its own failure


class LayoutError(Exception):
    """The generated program does not fit the layout: a generator bug."""


@dataclass
class State:
    """The architectural state at the end of one run."""
    end: str
    exit_code: int
    instructions: int
    pc: int
    regs: tuple[int, ...]
    crs: tuple[int, ...]
    console: bytes
    ram: bytes
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict, compare=False)   # traps by name: coverage, not compared


@dataclass
class Outcome:
    """One program run on every engine.  `crashes`: engine -> what went
    wrong inside it; `divergences`: one line per engine that differs from
    the reference, naming the first differing piece of state."""
    seed: int
    states: dict[str, State] = field(default_factory=dict)
    crashes: dict[str, str] = field(default_factory=dict)
    divergences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.crashes and not self.divergences

    def summary(self) -> str:
        """One line per problem, crashes first."""
        lines = [f"{name}: crash: {text.strip().splitlines()[-1]}" for name, text in self.crashes.items()]
        return "\n".join(lines + self.divergences)


# --- building ----------------------------------------------------------------------------------

def build(program: Program, directory: Path) -> Path:
    """Assemble and link `program` into directory/seed-N.elf (the source goes
    next to it as seed-N.s); returns the image path.  Raises LayoutError if
    the program does not fit layout.py's map (a generator bug)."""
    source = directory / f"seed-{program.seed}.s"
    source.write_text(program.source, encoding="utf-8")
    obj = assemble(program.source, str(source))
    labels = {symbol.name: symbol.value for symbol in obj.symbols if symbol.section == ".text"}
    if "ktext" in labels:                   # a generated program (a hand-written one has its own layout)
        check_layout(labels)
    image = directory / f"seed-{program.seed}.elf"
    image.write_bytes(link([obj], LinkOptions(text_address=L.TEXT)))
    return image


def check_layout(labels: dict[str, int]) -> None:
    """Every page label where layout.py puts it, and the kernel text inside its pages."""
    for name, address in L.LAYOUT_LABELS.items():
        if L.TEXT + labels[name] != address:
            raise LayoutError(f"{name} at {L.TEXT + labels[name]:#x}, expected {address:#x}")
    end = L.TEXT + labels["ktext_end"]
    if end > L.KTEXT + L.KTEXT_PAGES * L.PAGE:
        raise LayoutError(f"kernel text ends at {end:#x}, past its {L.KTEXT_PAGES} pages")


# --- the engines ---------------------------------------------------------------------------------

def end_of(reason: object) -> str:
    """A run's end as one of END_*: halt and power off are both "done"."""
    reason = str(getattr(reason, "value", reason))
    return END_DONE if reason in ("halt", "power off") else reason


def run_bare(image: Path, console_in: bytes) -> State:
    """`image` on the bare machine."""
    from vmm.machine.machine import Machine
    console = io.BytesIO()
    machine = Machine(L.RAM_SIZE, console_in=console_in, console_out=console)
    machine.load(str(image))
    result = machine.run(L.MAX_INSTRUCTIONS)
    cpu = machine.cpu
    stats = figures(result.stats)
    return State(end_of(result.reason), result.exit_code, cpu.counters.instructions, cpu.pc, tuple(cpu.regs),
                 tuple(cpu.cr), console.getvalue(), machine.memory.read_bytes(0, L.RAM_SIZE), result.message,
                 {**stats.get("exceptions", {}), **stats.get("interrupts", {})})


def figures(stats: object) -> dict:
    """A run's stats as a dict, whether the engine gives a dict or a stats type with as_dict()."""
    return stats.as_dict() if hasattr(stats, "as_dict") else dict(stats)


def machine_mem_for(configs: list) -> int:
    """The machine RAM `kite run` gives these VMs (wherever the VMM's launcher keeps that rule)."""
    try:
        from vmm.launch import machine_mem_for as rule
    except ImportError:
        from vmm.cli import machine_mem_for as rule
    return rule(configs)


def run_sim(image: Path, console_in: bytes) -> State:
    """`image` under machine simulation."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.monitor.simulate import Simulator
    console = io.BytesIO()
    simulator = Simulator(L.RAM_SIZE, console_out=console, console_in=ConsoleInput(console_in))
    simulator.load(str(image))
    result = simulator.run(L.MAX_INSTRUCTIONS)
    return State(end_of(result.reason), result.exit_code, simulator.instructions, simulator.pc,
                 tuple(simulator.regs), tuple(simulator.cr), console.getvalue(),
                 simulator.memory.read_bytes(0, L.RAM_SIZE), result.message)


def run_shadow(image: Path, console_in: bytes, options: str = "all", cpu: str = "trap") -> State:
    """`image` as the only VM under the VMM with shadow paging (its techniques
    `options`, as --shadow-opt), its state read as the module doc says.
    Raises VmmError when the VMM stopped the guest for a failure of its own."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.monitor.monitor import Monitor
    from vmm.monitor.shadow import ShadowOptions
    from vmm.monitor.vm import VmConfig
    console = io.BytesIO()
    config = VmConfig(str(image), "shadow", L.RAM_SIZE, shadow=ShadowOptions.parse(options), cpu=cpu)
    monitor = Monitor(machine_mem_for([config]), console_out=console, console_in=ConsoleInput(console_in))
    vm = monitor.create_vm(config)
    result, (vm_result,) = monitor.run(L.MAX_INSTRUCTIONS)
    if VMM_ERROR in vm_result.message.lower() or str(vm_result.state) == VMM_ERROR:
        raise VmmError(vm_result.message)
    cpu = monitor.cpu
    if monitor.current is vm:
        regs, pc, machine_status = tuple(cpu.regs), cpu.pc, cpu.cr[CR_STATUS]
    else:
        regs, pc, machine_status = tuple(vm.regs), vm.pc, vm.user_flags
    crs = (vm.vcpu.status(machine_status),) + tuple(vm.vcpu.cr[1:])
    if end_of(result.reason) == END_LIMIT:
        end, exit_code = END_LIMIT, result.exit_code
    else:
        end = {"done": END_DONE, "crashed": END_FAULT}.get(str(vm_result.state), end_of(result.reason))
        if end == END_FAULT and END_NO_SOURCE in vm_result.message:
            end = END_NO_SOURCE    # docs/isa.md names this stop by its error, "wfi with no interrupt source"
        exit_code = vm_result.exit_code
    return State(end, exit_code, figures(vm_result.stats)["guest_instructions"], pc, regs, crs, console.getvalue(),
                 vm.memory.read_bytes(0, L.RAM_SIZE), vm_result.message)


class VmmError(Exception):
    """The VMM stopped the guest because the VMM itself failed."""


Engine = Callable[[Path, bytes], State]          # (image, console input) -> the state at the end
ENGINES: dict[str, Engine] = {"bare": run_bare, "sim": run_sim, "shadow": run_shadow,
                              "shadow-basic": partial(run_shadow, options="none")}
run_bt = partial(run_shadow, cpu="bt")           # the shadow engine under --cpu bt (tests/monitor/test_bt.py)


# --- comparing -------------------------------------------------------------------------------------

def differences(reference: State, other: State, unspecified: frozenset[str] = frozenset()) -> list[str]:
    """Every differing piece of state, most telling first: the end, the exit
    code, the instruction count, pc, each register, each control register,
    the console, then RAM (the first differing word, and how many differ).
    `unspecified` names State fields the docs leave open for this program."""
    reference = replace(reference, **{name: None for name in unspecified})
    other = replace(other, **{name: None for name in unspecified})
    found = []
    for name in ("end", "exit_code", "instructions"):
        if getattr(reference, name) != getattr(other, name):
            found.append(f"{name} {getattr(other, name)!r} != {getattr(reference, name)!r}")
    if reference.pc != other.pc:
        found.append(f"pc {other.pc:#010x} != {reference.pc:#010x}")
    for i, (mine, theirs) in enumerate(zip(reference.regs, other.regs)):
        if mine != theirs:
            found.append(f"r{i} ({L.REG_NAMES[i]}) {theirs:#010x} != {mine:#010x}")
    for i, (mine, theirs) in enumerate(zip(reference.crs or (), other.crs or ())):
        if mine != theirs:
            found.append(f"{CR_NAMES[i]} {theirs:#010x} != {mine:#010x}")
    if reference.console != other.console:
        found.append(f"console {other.console[-40:]!r} != {reference.console[-40:]!r}")
    if reference.ram != other.ram:
        found.append(ram_difference(reference.ram, other.ram))
    return found


def ram_difference(reference: bytes, other: bytes) -> str:
    """The first differing RAM word, where it is in the layout, and the count."""
    words = [a for a in range(0, len(reference), 4) if reference[a:a + 4] != other[a:a + 4]]
    first = words[0]
    mine, theirs = (int.from_bytes(ram[first:first + 4], "little") for ram in (reference, other))
    return (f"RAM word {first:#010x} ({where(first)}) {theirs:#010x} != {mine:#010x}"
            f" ({len(words)} words differ)")


def where(address: int) -> str:
    """label+offset of a physical address in the layout."""
    pages = sorted(((start, name) for name, start in L.LAYOUT_LABELS.items()), reverse=True)
    for start, name in pages:
        if address >= start and (name == "ktext" or address < start + L.PAGE):
            if name == "kdata":
                return f"kdata+{address - start:#x}" + kdata_field(address - start)
            return f"{name}+{address - start:#x}"
    return "free RAM"


def kdata_field(offset: int) -> str:
    """': trap log entry N, epc' and the like for an offset in kdata."""
    if offset >= L.LOG:
        entry, slot = divmod(offset - L.LOG, 16)
        return f": trap log entry {entry}, {('cause', 'epc', 'badaddr', 'status')[slot // 4]}"
    if offset >= L.CHECKPOINTS:
        slot, reg = divmod(offset - L.CHECKPOINTS, L.CHECKPOINT_SIZE)
        return f": checkpoint {slot}, {L.REG_NAMES[reg // 4]}"
    return {L.TRAP_COUNT: ": trap count", L.TIMER_COUNT: ": timer interrupt count", L.CONT: ": continuation"}.get(
        offset, "")


def check(program: Program, directory: Path, engines: dict[str, Engine] | None = None) -> Outcome:
    """Build `program` in `directory`, run it on every engine, and compare
    each with the reference (bare).  Raises LayoutError for a generator bug."""
    image, console_in = build(program, directory), console_input(program.source)
    outcome = Outcome(program.seed)
    for name, run in (engines or ENGINES).items():
        try:
            outcome.states[name] = run(image, console_in)
        except Exception:                  # an engine failed: that is a finding, not a test error
            outcome.crashes[name] = traceback.format_exc()
    reference = outcome.states.get(REFERENCE)
    for name, state in outcome.states.items():
        if name != REFERENCE and reference is not None:
            found = differences(reference, state, frozenset(program.unspecified))
            if found:
                outcome.divergences.append(f"{name} vs {REFERENCE}: {found[0]}"
                                           + (f" (and {len(found) - 1} more: {', '.join(f.split(' ')[0] for f in found[1:])})"
                                              if len(found) > 1 else ""))
    return outcome


def save(program: Program, verdict: str, directory: Path, name: str = "") -> Path:
    """Write the program to directory/NAME (default seed-N.s) with `verdict`
    (Outcome.summary) as a header comment; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or f"seed-{program.seed}.s")
    verdict = "".join(f"# {line}\n" for line in verdict.splitlines())
    features = " ".join(sorted(program.features))
    path.write_text(f"{verdict}# features: {features}\n# replay: .venv/bin/python bench/fuzz.py --replay {path}\n"
                    + program.source, encoding="utf-8")
    return path

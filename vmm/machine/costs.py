"""The cost model: turns event counts into modelled cycles.

Kite's machine counts events exactly (instructions, page-walk memory
references, traps, device accesses); this module puts a price on each so runs
can be compared in one figure.  The prices are ROUGH, order-of-magnitude
figures for a modern out-of-order x86-64 core at ~3 GHz, chosen to keep the
ratios between events realistic, not to predict any real machine.  Each
default names what it is modelled on.  Override any of them with a JSON or
TOML file (`--cost-model FILE`): a flat table of the field names below.

    modeled_cycles = instructions * instruction
                   + (walk_refs - nested_walk_refs) * walk_ref + nested_walk_refs * nested_walk_ref
                   + (exceptions + interrupts) * trap
                   + (device reads + device writes) * mmio
                   + vm_exits * vm_exit + hypercalls * hypercall   (the VMM's counts; 0 on bare)
                   + bt_callouts * bt_callout + bt_instructions_translated * bt_translate
                                                                   (binary translation's, --cpu bt)

`vm_exits` is whatever the counts passed call so: the VMM's exits under the
VMM, and on the bare machine the hardware exits of its virtualization
extension (Counters.as_dict(): a guest-mode exit is the very event vm_exit is
modelled on), 0 for a machine that never entered a guest.

Under machine simulation every instruction costs `sim_instruction` instead of
`instruction`, and every access walks the page tables (no TLB).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, fields, replace

from vmm.machine.errors import KiteError


@dataclass(frozen=True)
class CostModel:
    """Cycles per event."""

    # One retired instruction.  Our CPU has no pipeline model, so IPC = 1 by definition.
    instruction: int = 1
    # One memory reference of the hardware page walker.  A walk reference that misses the
    # paging-structure caches typically hits L2/L3: ~14 cycles (L2) to ~40-50 (L3) on
    # Intel Skylake-class cores (Intel Optimization Reference Manual, "cache latencies";
    # 7-cpu.com measurements).  We charge an L3-ish 40.
    walk_ref: int = 40
    # One reference of the nested (guest-physical -> machine) walk: the same hardware walker reading an
    # EPT / NPT entry through the same cache hierarchy, so the same L3-ish 40 as walk_ref.  Bhargava et
    # al. (ASPLOS 2008, "Accelerating two-dimensional page walks for virtualized systems") count each
    # nested reference as one more page-walk memory reference; a separate price lets a student make the
    # nested entries cheaper (they are few and hot) or dearer.  Charged for nested_walk_refs, which are
    # part of walk_refs (so they are not also charged walk_ref).
    nested_walk_ref: int = 40
    # Exception / interrupt entry and return.  A null system call (entry + return) is commonly
    # measured at roughly 100-200 cycles on x86 cores of the last decade without page-table
    # isolation, and several times that with it (FlexSC, Soares & Stumm, OSDI 2010, discusses
    # the direct cost; lmbench `lat_syscall null` gives the same order).  We charge 150.
    trap: int = 150
    # One uncached MMIO access: a UC load/store to a device register takes a bus round trip,
    # ~several hundred ns to ~1 us on PCIe (commonly quoted 0.5-1 us for a PCIe read);
    # an emulated device on this machine is on-chip, so we charge a modest 100.
    mmio: int = 100
    # One guest instruction interpreted in software (machine simulation, `kite run --sim`): an
    # interpreting emulator fetches, decodes and dispatches every instruction in host code, commonly
    # measured at tens of host instructions per guest instruction (Bochs-class interpreters run
    # roughly 20-100x slower than native; Bellard, "QEMU, a Fast and Portable Dynamic Translator",
    # USENIX ATC 2005, compares).  We charge 40.  Charged instead of `instruction` under simulation.
    sim_instruction: int = 40
    # Charged only under the VMM (not on the bare machine):
    # A hardware VM exit + entry round trip: in the low thousands of cycles on first-generation
    # VT-x (Adams & Agesen, ASPLOS 2006) and several hundred to ~1000 on later cores (the
    # figures KVM developers quote for Haswell-era and newer parts).  We charge 1000.
    vm_exit: int = 1000
    # A paravirtual hypercall: a VM exit plus a dispatch in the monitor; same order as vm_exit.
    hypercall: int = 1000
    # Binary translation (--cpu bt; the extra instructions translated code runs are charged as
    # instructions, in the VM's instruction figure's modeled cycles):
    # A callout from translated code into the VMM: translated code and the VMM share one address
    # space and privilege level, so it is a call that saves and restores the guest's registers and
    # dispatches, with no mode switch and no VM exit.  Adams & Agesen (ASPLOS 2006, section 3.3) measure
    # rdtsc at 2030 cycles by trap-and-emulate and 1254 by a callout on a Pentium 4: about 0.6 of an
    # exit.  We charge 600 (vm_exit's 1000 times that).
    bt_callout: int = 600
    # Translating one guest instruction into the translation cache (decode, choose a translation,
    # emit, link): once per block, amortised by the cache.  Adams & Agesen put VMware's translator at
    # about 2300 cycles per x86 instruction translated.  Kite32's instructions are simpler to decode;
    # we charge 2000.
    bt_translate: int = 2000


DEFAULT_COST_MODEL = CostModel()


def load_cost_model(path: str) -> CostModel:
    """A CostModel from a JSON (`.json`) or TOML (anything else) file: a flat
    table of non-negative integers keyed by CostModel field name; missing
    fields keep their defaults.  Raises KiteError naming the file and the
    problem (unreadable, unparsable, unknown field, bad value)."""
    try:
        with open(path, "rb") as model_file:
            raw = model_file.read()
        table = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
    except OSError as error:
        raise KiteError(f"{path}: cannot read cost model: {error.strerror}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise KiteError(f"{path}: cannot parse cost model: {error}") from None
    except RecursionError:
        raise KiteError(f"{path}: cannot parse cost model: nested too deeply") from None
    return _cost_model_from_table(table, path)


def _cost_model_from_table(table: object, path: str) -> CostModel:
    """Validate `table` against CostModel's fields."""
    if not isinstance(table, dict):
        raise KiteError(f"{path}: cost model must be a table of field = cycles")
    known = {field.name for field in fields(CostModel)}
    for name, value in table.items():
        if name not in known:
            raise KiteError(f"{path}: unknown cost '{name}' (known: {', '.join(sorted(known))})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise KiteError(f"{path}: cost '{name}' must be a non-negative integer, got {value!r}")
    return replace(DEFAULT_COST_MODEL, **table)


def modeled_cycles(counters: dict, bus_counters: dict, model: CostModel = DEFAULT_COST_MODEL) -> int:
    """Total modelled cycles.

    `counters` is Counters.as_dict() (keys used: instructions, walk_refs,
    exceptions, interrupts, and nested_walk_refs / vm_exits / hypercalls /
    bt_callouts / bt_instructions_translated if present);
    `bus_counters` has `reads` and `writes`.  Idle ticks in wfi cost nothing."""
    traps = sum(counters.get("exceptions", {}).values()) + sum(counters.get("interrupts", {}).values())
    return (counters.get("instructions", 0) * model.instruction
            + (counters.get("walk_refs", 0) - counters.get("nested_walk_refs", 0)) * model.walk_ref
            + counters.get("nested_walk_refs", 0) * model.nested_walk_ref
            + traps * model.trap
            + (bus_counters.get("reads", 0) + bus_counters.get("writes", 0)) * model.mmio
            + counters.get("vm_exits", 0) * model.vm_exit
            + counters.get("hypercalls", 0) * model.hypercall
            + counters.get("bt_callouts", 0) * model.bt_callout
            + counters.get("bt_instructions_translated", 0) * model.bt_translate)

"""The phases of a run, from the figures snapshotted at each phase mark
(vmm/machine/devices/marker.py):

    boot       from the start to the first BOOT_DONE (nothing without one)
    workload   every region from a ROI_BEGIN to the next ROI_END, summed (a
               region still open at the end runs to the end); without any
               ROI_BEGIN, from the first BOOT_DONE (or the start) to the end
    total      the whole run: the figures themselves

A snapshot is a stats dataclass (MachineStats, VmStats).  Phases are
differences of snapshots, field by field: counts subtract, tables of counts
subtract key by key, and everything else is the later snapshot's: the fields
that are not counts (strings, and those the class names in LATEST, such as
exit_code) and the gauges inside tables (the class's GAUGES).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Callable, TypeVar

from vmm.machine.devices.marker import BOOT_DONE, ROI_BEGIN, ROI_END

PHASES = ("boot", "workload", "total")
S = TypeVar("S")


def difference(later: S, earlier: S) -> S:
    """`later` minus `earlier`, field by field (module doc)."""
    return _merged(earlier, later, lambda old, new: new - old)


def combined(first: S, second: S) -> S:
    """The figures of two phases together (`second` the later one)."""
    return _merged(first, second, lambda one, two: one + two)


def zero_like(stats: S) -> S:
    """`stats` with every count 0 and every table of counts empty."""
    return replace(stats, **{name: {} if isinstance(value, dict) else 0 for name, value in _counts(stats)})


def _counts(stats) -> list[tuple[str, int | dict]]:
    """(name, value) of the fields that are counts or tables of counts."""
    latest = getattr(stats, "LATEST", frozenset())
    return [(field.name, getattr(stats, field.name)) for field in fields(stats)
            if field.name not in latest and isinstance(getattr(stats, field.name), (int, dict))
            and not isinstance(getattr(stats, field.name), bool)]


def _merged(first: S, second: S, count: Callable[[int, int], int]) -> S:
    """`second` with each count c replaced by count(first's c, second's c),
    tables of counts key by key (a key missing counts 0; gauges and zero
    results dropped or kept as module doc says); no phases of its own."""
    gauges = getattr(second, "GAUGES", frozenset())
    changes = {}
    for name, value in _counts(second):
        other = getattr(first, name)
        if name == "phases":
            changes[name] = {}
        elif isinstance(value, dict):
            keys = list(other) + [key for key in value if key not in other]
            merged = {key: value.get(key, 0) if key in gauges else count(other.get(key, 0), value.get(key, 0))
                      for key in keys}
            changes[name] = {key: figure for key, figure in merged.items() if figure or key in gauges}
        else:
            changes[name] = count(other, value)
    return replace(second, **changes)


def split(marks: list[tuple[int, S]], final: S) -> dict[str, S]:
    """The boot and workload phases of a run that ended with figures `final`,
    from `marks`: (marker, figures at that mark) in the order they were made."""
    start = zero_like(final)
    boot_end = next((stats for marker, stats in marks if marker == BOOT_DONE), start)
    regions, begun = [], None
    for marker, stats in marks:
        if marker == ROI_BEGIN and begun is None:
            begun = stats
        elif marker == ROI_END and begun is not None:
            regions.append(difference(stats, begun))
            begun = None
    if begun is not None:
        regions.append(difference(final, begun))
    if not any(marker == ROI_BEGIN for marker, _ in marks):
        regions = [difference(final, boot_end)]
    workload = regions[0]
    for region in regions[1:]:
        workload = combined(workload, region)
    return {"boot": difference(boot_end, start), "workload": workload}

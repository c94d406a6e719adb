"""How a run ends: the CPU's states, the end reasons, the exit codes and the
end-of-run message, shared by the bare machine, the simulator and the VMM.

The enums are StrEnums: a member equals its value ("halt", "instruction
limit", ...), which is also what `--stats-json` writes as "reason".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CpuState(enum.StrEnum):
    """What a CPU (or the simulator) is doing."""
    RUNNING = "running"
    WAITING = "waiting"          # in wfi until an interrupt line is asserted
    HALTED = "halted"            # halt retired
    STOPPED = "stopped"          # a stop was requested: a fault, power off, or the run loop's own preemption
    OFF = "off"                  # the simulator's guest wrote the power device


class EndReason(enum.StrEnum):
    """Why a run ended (RunResult.reason)."""
    HALT = "halt"
    POWER_OFF = "power off"
    INSTRUCTION_LIMIT = "instruction limit"
    FAULT = "fault"
    NO_INTERRUPT_SOURCE = "wfi with no interrupt source"


EXIT_INSTRUCTION_LIMIT = 124   # like timeout(1)
EXIT_FAULT = 125               # a fault stopped the machine, or the VMM stopped a guest
EXIT_VMM_ERROR = 70            # the VMM failed while serving a guest (EX_SOFTWARE of sysexits.h)


@dataclass
class RunResult:
    """How a run ended.  `exit_code` is the process exit code to use;
    `message` explains an abnormal end (empty for halt and power off)."""
    exit_code: int
    reason: EndReason
    message: str
    pc: int
    stats: dict = field(default_factory=dict)


def end_of_run(reason: EndReason, power_exit_code: int | None, stop_reason: str | None, where: str,
               max_instructions: int | None) -> tuple[int, str]:
    """(exit code, message) of a run that ended for `reason` at pc `where`
    (a symbolized address): the guest's power-device code after halt or
    power off (0 if it wrote none), 124 at the instruction limit, 125 for a
    fault or a wfi nothing can wake, with the message docs/isa.md gives."""
    if reason is EndReason.HALT:
        return power_exit_code or 0, ""
    if reason is EndReason.POWER_OFF:
        return power_exit_code or 0, ""
    if reason is EndReason.INSTRUCTION_LIMIT:
        return EXIT_INSTRUCTION_LIMIT, f"instruction limit {max_instructions} reached at pc {where}"
    if reason is EndReason.NO_INTERRUPT_SOURCE:
        return EXIT_FAULT, f"wfi with no interrupt source at pc {where}"
    return EXIT_FAULT, f"{stop_reason or 'stopped'} (pc {where})"

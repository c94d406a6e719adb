"""Checkpoints under machine simulation (`kite run --sim --checkpoint-at`,
docs/snapshot.md "Under machine simulation"), in the file format of
vmm/machine/snapshot.py with the engine "sim".

The simulated machine is a Kite32 machine as the bare one is, so its
checkpoint is the bare one's: the same state.json, built by
snapshot.capture_machine, checked by snapshot.check_state and restored by
snapshot.restore_devices; only the CPU part comes from the Simulator itself
(Simulator.checkpoint and restore, in the machine CPU's form but without
calling it: the simulator stays the independent oracle).  The manifest's
engine says which implementation goes on; either can restore the other's
state, which the tests use as a differential check from the middle of a run.

Not saved, being caches: the decode cache and the remembered walks.  The
simulator has no TLB and counts a remembered walk as the walk it stands for,
so a resumed run's figures are all the uninterrupted run's, walks included.
"""

from __future__ import annotations

from vmm.machine import snapshot

ENGINE = "sim"
check_state = snapshot.check_state      # the bare engine's checker: the state is the same


def capture(simulator) -> tuple[dict, bytes]:
    """(state, ram) of `simulator`, stopped between two instructions, its disk
    (if any) written back by the run's end.  CheckpointError for what this
    version cannot save."""
    return snapshot.capture_machine(simulator, simulator.checkpoint())


def restore(path: str, state: dict, ram: bytes, console_out, cost_model):
    """A fresh Simulator in the checkpoint's state (state and ram as
    snapshot.read checked them for the checkpoint at `path`), its disk
    opened as snapshot.open_disk does.  CheckpointError (nothing run) for a
    disk that is not the checkpoint's."""
    from vmm.machine.devices.uart import ConsoleInput
    from vmm.monitor.simulate import Simulator
    simulator = Simulator(state["mem_size"], console_out=console_out,
                          console_in=ConsoleInput(bytes.fromhex(state["input"])), cost_model=cost_model,
                          disk=snapshot.open_disk(path, state, ram))
    snapshot.restore_devices(simulator, state, ram)
    simulator.symbols, simulator.cmdline = snapshot.symbols_of(state), state["cmdline"]
    simulator.restore(state["cpu"])
    return simulator

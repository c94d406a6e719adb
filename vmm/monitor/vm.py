"""One virtual machine: its guest-physical memory, virtual CPU, saved machine
context, virtual devices and counters.

The guest sees the bare machine's devices at the bare machine's physical
addresses, modelled by the same device classes on the VM's own interrupt
lines; the disk, when the VM has one, does DMA in guest-physical addresses
(vmm/monitor/vdisk.py).  Guest-physical memory is contiguous from 0 and lives in the
machine frames of `physmap`.
"""

from __future__ import annotations

import enum
import io
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import BinaryIO, Callable, ClassVar

from asm.isa import (DISK_BASE, IRQ_TIMER, MARKER_BASE, NUM_REGS, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, POWER_BASE,
                     TIMER_BASE, UART_BASE)
from vmm.machine.devices.disk import Disk, DiskImage
from vmm.monitor.blkback import BlockCounts
from vmm.machine.devices.marker import Marker
from vmm.machine.devices.power import Power
from vmm.machine.devices.timer import Timer
from vmm.machine.devices.uart import ConsoleInput, Uart
from vmm.machine.errors import BusError
from vmm.machine.irq import InterruptLines
from vmm.machine.outcome import EXIT_FAULT, EXIT_VMM_ERROR
from vmm.monitor.nested import NestedOptions
from vmm.monitor.physmap import GuestPhysMap
from vmm.monitor.shadow import ShadowOptions
from vmm.monitor.vcpu import VirtualCPU

class VmState(enum.StrEnum):
    """VM.state."""
    RUNNABLE = "runnable"
    WAITING = "waiting"        # in wfi, until one of its virtual lines is asserted
    DONE = "done"              # halted or powered off: exit_code is the guest's
    CRASHED = "crashed"        # stopped by the VMM: message says why, exit code EXIT_FAULT
    VMM_ERROR = "vmm error"    # stopped by the VMM's own failure: message says what, exit code EXIT_VMM_ERROR
    MOVED = "moved"            # checkpointed or migrated away: it goes on elsewhere (message says where)


RUNNABLE, WAITING, DONE, CRASHED, VMM_ERROR, MOVED = VmState


@dataclass(frozen=True)
class VmStats:
    """One VM's figures (docs/vmm.md "Figures"); `as_dict()` is its part of
    `--stats-json`."""
    paging: str
    state: str
    exit_code: int | None
    message: str
    guest_instructions: int            # retired on the machine plus completed by emulation
    emulated_instructions: int
    vm_exits: int
    hypercalls: int
    tlb_misses: int                    # the machine's, while this VM ran
    walk_refs: int
    exits: dict[str, int]              # by reason
    counters: dict[str, int]           # the paging mode's own
    modeled_cycles: int
    io: dict[str, int] = field(default_factory=dict)          # the disk's: requests, bytes, notifications, mmio_exits
    phases: dict[str, VmStats] = field(default_factory=dict)   # "boot", "workload" (vmm/machine/phases.py)

    LATEST: ClassVar[frozenset[str]] = frozenset({"exit_code"})     # not a count: a phase keeps the later value
    GAUGES: ClassVar[frozenset[str]] = frozenset({"shadow_pages", "nested_frames"})  # in counters: levels, not counts

    def as_dict(self) -> dict:
        """The figures by name, JSON-ready; "phases" only when there are phases."""
        figures = asdict(self)
        if not self.phases:
            del figures["phases"]
        return figures


CPU_MODES = ("trap", "bt")     # --cpu: trap-and-emulate, or binary translation of the guest kernel


@dataclass(frozen=True)
class VmConfig:
    """What `kite run` says about one VM."""
    image: str
    paging: str                       # a name of paging.MODES: "shadow", "direct" or "nested"
    mem: int                          # bytes of guest RAM
    name: str = "vm1"
    modules: tuple[str, ...] = ()
    cmdline: str = ""
    shadow: ShadowOptions = ShadowOptions()   # shadow paging's techniques (--shadow-opt)
    disk: str | None = None           # the disk image file (--disk, disk= in --vm)
    disk_readonly: bool = False       # never write the guest's disk writes back
    nested: NestedOptions = NestedOptions()   # nested paging's page-walk cache (--nested-opt)
    cpu: str = "trap"                 # how the guest kernel's code runs: CPU_MODES (--cpu)


class GuestMemory:
    """A VM's guest-physical RAM, as the loader and the VMM write it: every
    access is checked to lie inside guest RAM and goes to machine memory
    through the p2m.  Raises BusError outside guest RAM."""

    def __init__(self, memory, physmap: GuestPhysMap):
        self.memory, self.physmap = memory, physmap
        self.size = physmap.size

    def _chunks(self, gpa: int, length: int):
        """(machine address, offset in the buffer, length) per page touched."""
        if gpa < 0 or gpa + length > self.size:
            raise BusError(gpa)
        done = 0
        while done < length:
            here = gpa + done
            step = min(length - done, PAGE_SIZE - (here & PAGE_MASK))
            yield self.physmap.gpa_to_ma(here), done, step
            done += step

    def write_bytes(self, gpa: int, data: bytes) -> None:
        for ma, offset, step in self._chunks(gpa, len(data)):
            self.memory.write_bytes(ma, data[offset:offset + step])

    def read_bytes(self, gpa: int, length: int) -> bytes:
        return b"".join(self.memory.read_bytes(ma, step) for ma, _, step in self._chunks(gpa, length))


class SharedConsole:
    """One console several VMs print on, each line with its VM's prefix.

    Each VM's output is line-buffered separately (VmConsole), so a line
    reaches the console whole and no VM's bytes land inside another's line.
    A partial line is written when its VM's console is flushed (a prompt
    before input, the end of the run); should another VM print next, the
    partial line is ended first, so every line names the VM that wrote it."""

    def __init__(self, output: BinaryIO):
        self.output = output
        self._open: VmConsole | None = None        # whose partial line the console ends with

    def emit(self, writer: VmConsole, text: bytes, partial: bool) -> None:
        """Write `text` (whole lines, or a partial line) of `writer`."""
        if self._open is not None and self._open is not writer:
            self.output.write(b"\n")
        if self._open is not writer:
            self.output.write(writer.prefix)
        self.output.write(text)
        self._open = writer if partial else None


class VmConsole(io.RawIOBase):
    """A VM's console stream on a SharedConsole: prefixed, line-buffered."""

    def __init__(self, console: SharedConsole, prefix: bytes):
        self.console, self.prefix, self._pending = console, prefix, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        """Buffer `data`; write each line it completes."""
        self._pending += data
        while (end := self._pending.find(b"\n")) >= 0:
            self.console.emit(self, bytes(self._pending[:end + 1]), partial=False)
            del self._pending[:end + 1]
        return len(data)

    def flush(self) -> None:
        """Write the partial line, if any, then flush the console."""
        if self._pending:
            self.console.emit(self, bytes(self._pending), partial=True)
            self._pending.clear()
        self.console.output.flush()


@dataclass
class VM:
    """A guest and everything the VMM keeps for it.  `mode` is its paging
    mode (a paging.PagingMode)."""
    vm_id: int
    config: VmConfig
    physmap: GuestPhysMap
    mode: object
    console_out: BinaryIO
    console_in: ConsoleInput
    clock: Callable[[], int]
    timer_changed: Callable[[], None]
    vcpu: VirtualCPU = field(default_factory=VirtualCPU)
    regs: list[int] = field(default_factory=lambda: [0] * NUM_REGS)
    pc: int = 0
    user_flags: int = 0              # the machine status's user-flag byte while switched out
    state: VmState = RUNNABLE
    exit_code: int | None = None
    message: str = ""
    exits: Counter = field(default_factory=Counter)
    instructions: int = 0            # guest instructions retired on the machine
    emulated: int = 0                # guest instructions the VMM completed by emulation
    tlb_misses: int = 0              # the machine's TLB misses while this VM ran
    walk_refs: int = 0               # the machine's page-walk memory references while this VM ran
    entering_trap: bool = False      # a trap was reflected and no instruction has retired since
    stalled: int = 0                 # exits in a row with no instruction retired or emulated
    symbols: object = None           # the image's Symbolizer
    torn_down: bool = False          # its tables and frames have gone back to the VMM
    final_counters: dict = field(default_factory=dict)   # the paging counters when it was torn down
    pvcpu: object = None             # the registered per-vCPU page (pvcpu.PvCpu), direct mode only
    disk: Disk | None = None         # the emulated disk (attach_disk)
    disk_mmio_exits: int = 0         # MMIO exits at the disk's registers
    reflections: int = 0             # traps delivered to the guest (Monitor.reflect)
    blk: object = None               # the paravirtual disk's ring (blkback.BlockBackend), direct mode only
    blk_counts: object = None        # its figures across registrations (blkback.BlockCounts)
    bt: object = None                # the binary translator (bt/runner.py), --cpu bt only
    tick_offset: int = 0             # instructions its translated code ran beyond the guest's own
    accounted_offset: int = 0        # tick_offset when its instructions were last counted

    def __post_init__(self) -> None:
        self.irq = InterruptLines()
        self.uart = Uart(self.irq, self.console_out, self.console_in)
        self.timer = Timer(self.irq, self.guest_clock, self.timer_changed)
        self.power = Power(self._powered_off)
        self.pending_marks: list[int] = []   # phase marks the VM made in the exit being handled
        self.marks: list[tuple[int, VmStats]] = []   # (marker, the VM's figures right after its store)
        self.devices = {UART_BASE: self.uart, TIMER_BASE: self.timer, POWER_BASE: self.power,
                        MARKER_BASE: Marker(self.pending_marks.append)}
        self.memory = GuestMemory(self.mode.memory, self.physmap)
        self._retime()

    @property
    def name(self) -> str:
        return self.config.name

    def guest_clock(self) -> int:
        """The VM's virtual time: machine ticks less the overhead of its
        translated code (tick_offset), so its devices see its own instructions."""
        return self.clock() - self.tick_offset

    @property
    def alive(self) -> bool:
        return self.state in (RUNNABLE, WAITING)

    def _powered_off(self, reason: str | None) -> None:
        """The guest wrote its power device: it is done with that exit code."""
        self.finish(self.power.exit_code)

    def finish(self, exit_code: int) -> None:
        """The guest stopped by itself (halt, power off, shutdown)."""
        if self.alive:
            self.state, self.exit_code = DONE, exit_code

    def move(self, message: str) -> None:
        """The VM left this monitor whole (a checkpoint, a migration): it runs
        no more here, and its end is not this run's (exit code 0)."""
        if self.alive:
            self.state, self.exit_code, self.message = MOVED, 0, message

    def crash(self, message: str) -> None:
        """The VMM stops this guest (and only it) for what the guest did."""
        if self.alive:
            self.state, self.exit_code, self.message = CRASHED, EXIT_FAULT, message

    def fail_internally(self, message: str) -> None:
        """The VMM stops this guest (and only it) because the VMM itself
        failed while serving it: not the guest's doing.  Replaces how the
        guest ended (a failing teardown comes after it); the first internal
        error is kept."""
        if self.state != VMM_ERROR:
            self.state, self.exit_code, self.message = VMM_ERROR, EXIT_VMM_ERROR, message

    def device_at(self, gpa: int):
        """(device, register offset) of the virtual device page holding `gpa`, or None."""
        device = self.devices.get(gpa & ~PAGE_MASK)
        return None if device is None else (device, gpa & PAGE_MASK)

    def attach_disk(self, image: DiskImage) -> None:
        """Give the VM an emulated disk over `image`, its DMA checked by GuestDma."""
        from vmm.monitor.vdisk import GuestDma
        self.disk = Disk(self.irq, GuestDma(self.mode.memory, self.physmap, self.mode), image, self.guest_clock,
                         self.timer_changed)
        self.devices[DISK_BASE] = self.disk
        self._retime()

    def set_block_ring(self, backend) -> None:
        """The paravirtual disk's ring back end (blkback.BlockBackend), or None."""
        self.blk = backend
        self._retime()

    def _retime(self) -> None:
        """timed: the devices with events in time, the UART, the timer, the disk and its ring if any."""
        self.timed = tuple(device for device in (self.uart, self.timer, self.disk, self.blk) if device is not None)

    def advance_devices(self, now: int) -> None:
        """Bring the virtual devices up to virtual tick `now` (guest_clock)."""
        for device in self.timed:
            device.advance(now)

    def io_figures(self) -> dict[str, int]:
        """The disk's figures (VmStats.io), {} without a disk."""
        if self.disk is None:
            return {}
        ring = self.blk_counts or BlockCounts()
        return {"requests": self.disk.requests + ring.requests, "bytes": self.disk.bytes_moved + ring.bytes,
                "notifications": ring.notifications, "mmio_exits": self.disk_mmio_exits}

    def next_device_event(self) -> int | None:
        """The virtual tick the VM's devices next need time at, or None.  A timer whose
        line is still asserted needs none: another expiry changes nothing the
        guest can see until it acknowledges (an exit, which looks again)."""
        event = None
        for device in self.timed:
            if device is not self.timer or not self.irq.pending & (1 << IRQ_TIMER):
                event = earliest(event, device.next_event())
        return event


def earliest(a: int | None, b: int | None) -> int | None:
    """The earlier of two ticks, either of which may be None (no event)."""
    if a is None:
        return b
    return a if b is None or a <= b else b


def frames_for(mem: int) -> int:
    """Guest frames for `mem` bytes (a multiple of the page size)."""
    return mem >> PAGE_SHIFT

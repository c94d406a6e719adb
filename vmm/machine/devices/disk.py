"""The block device: 512-byte sectors moved by DMA.

Registers (offsets from isa.DISK_BASE, all 32-bit):

    0x00 SECTOR    first sector of the transfer
    0x04 DMA_ADDR  physical RAM address of the buffer
    0x08 COUNT     number of sectors
    0x0C CMD       write 1 (read sectors into memory) or 2 (write memory to sectors): starts the command
    0x10 STATUS    bit0 BUSY, bit1 ERROR, bit2 DONE (read-only)
    0x14 CTRL      bit0 IRQ_ENABLE
    0x18 CAPACITY  sectors on the disk (read-only)
    0x1C ACK       write: clear DONE and deassert isa.IRQ_DISK

Timing: a command completes DISK_LATENCY_TICKS ticks after the CMD store,
whatever its size.  The registers are latched at the CMD store.  At completion
the transfer happens in one go through PhysicalMemory.read_bytes/write_bytes
(so decoded code in the buffer is invalidated), then STATUS becomes DONE (or
DONE | ERROR) and isa.IRQ_DISK is asserted if IRQ_ENABLE.  ERROR, with nothing
transferred: a sector range beyond CAPACITY, a DMA buffer not wholly in RAM,
or an unknown command.  A CMD store while BUSY is ignored.

The image lives in memory (DiskImage); only sectors the guest wrote are
written back, at the end of the run, atomically: a run killed at any moment
leaves the file with every sector entirely old or entirely new.  An image
opened from a file holds an advisory lock on it (flock) until closed:
exclusive when writable, shared when read-only, so a second writer (another
VM, another kite process) is refused with a DiskError.

A checkpoint (vmm/machine/snapshot.py, docs/snapshot.md "A disk") saves the
device whole (Disk.checkpoint: the registers, the command in flight and the
tick it completes at, the figures) and names the image by its path and the
SHA-256 of its contents (DiskImage.sha256).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from typing import Callable, Protocol

from asm.files import write_atomically
from asm.isa import IRQ_DISK
from vmm.machine.devices import is_register_access
from vmm.machine.errors import BusError, DiskError
from vmm.machine.irq import InterruptLines

SECTOR_SIZE = 512
DISK_LATENCY_TICKS = 1000   # a fixed, round figure: long enough that a guest notices it waits
MAX_DISK_SIZE = 1 << 30    # bytes of a disk image: the whole image is held in memory (docs/vmm.md)

DISK_SECTOR = 0x00
DISK_DMA_ADDR = 0x04
DISK_COUNT = 0x08
DISK_CMD = 0x0C
DISK_STATUS = 0x10
DISK_CTRL = 0x14
DISK_CAPACITY = 0x18
DISK_ACK = 0x1C
DISK_REGISTERS = (DISK_SECTOR, DISK_DMA_ADDR, DISK_COUNT, DISK_CMD, DISK_STATUS, DISK_CTRL,
                  DISK_CAPACITY, DISK_ACK)

CMD_READ = 1
CMD_WRITE = 2
STATUS_BUSY = 1 << 0
STATUS_ERROR = 1 << 1
STATUS_DONE = 1 << 2
CTRL_IRQ_ENABLE = 1 << 0


class DmaMemory(Protocol):
    """The part of PhysicalMemory the disk uses."""

    def read_bytes(self, paddr: int, length: int) -> bytes: ...

    def write_bytes(self, paddr: int, data: bytes) -> None: ...

    def contains(self, paddr: int, length: int) -> bool: ...


class DiskImage:
    """A disk image held in memory, with the set of sectors written since load.
    A `read_only` image takes the guest's writes in memory but never writes back."""

    def __init__(self, data: bytes, path: str | None = None, read_only: bool = False):
        if not data or len(data) % SECTOR_SIZE:
            raise DiskError(f"{path or 'disk image'}: size {len(data)} is not a positive "
                            f"multiple of {SECTOR_SIZE} bytes")
        self.data = bytearray(data)
        self.path = path
        self.read_only = read_only
        self.dirty: set[int] = set()
        self._lock = None          # the open file holding the lock (DiskImage.open)

    @classmethod
    def open(cls, path: str, read_only: bool = False) -> "DiskImage":
        """Read the image at `path` and lock it (module doc).  Raises
        DiskError if it is missing, unreadable, not a regular file (a FIFO or
        a device would block or never end), larger than MAX_DISK_SIZE, locked
        by another user, empty or not a whole number of sectors."""
        try:
            lock = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
        except OSError as error:
            raise DiskError(f"{path}: cannot read disk image: {error.strerror}") from None
        size = os.fstat(lock.fileno())
        if not stat.S_ISREG(size.st_mode) or size.st_size > MAX_DISK_SIZE:
            lock.close()
            raise DiskError(f"{path}: not a disk image (not a regular file)" if not stat.S_ISREG(size.st_mode)
                            else f"{path}: disk image of {size.st_size} bytes, more than the "
                                 f"{MAX_DISK_SIZE >> 20} MiB allowed")
        try:
            fcntl.flock(lock, (fcntl.LOCK_SH if read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise DiskError(f"{path}: disk image in use (another VM or kite process has it "
                            f"{'open for writing' if read_only else 'open'})") from None
        try:
            data = lock.read()
            image = cls(data, path, read_only)
        except (OSError, DiskError) as error:
            lock.close()
            if isinstance(error, DiskError):
                raise
            raise DiskError(f"{path}: cannot read disk image: {error.strerror}") from None
        image._lock = lock
        return image

    def close(self) -> None:
        """Release the file's lock (nothing for an image without one)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def sha256(self) -> str:
        """The SHA-256 (hex) of the contents as the guest sees them."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def capacity(self) -> int:
        """Size in sectors."""
        return len(self.data) // SECTOR_SIZE

    def read_sectors(self, first: int, count: int) -> bytes:
        """The bytes of sectors [first, first + count); caller checked the range."""
        return bytes(self.data[first * SECTOR_SIZE:(first + count) * SECTOR_SIZE])

    def write_sectors(self, first: int, data: bytes) -> None:
        """Overwrite sectors from `first` with `data` (whole sectors) and mark them dirty."""
        self.data[first * SECTOR_SIZE:first * SECTOR_SIZE + len(data)] = data
        self.dirty.update(range(first, first + len(data) // SECTOR_SIZE))

    def write_back(self) -> int:
        """Write the dirty sectors into the file at `path`; returns how many.

        Copies the current file to a temporary file beside it, patches only the
        dirty sectors and renames it over the original, so the file is never
        half-written.  Does nothing (does not touch the file) if nothing is
        dirty, the image is read-only or has no path.  Raises DiskError on an
        I/O failure."""
        if not self.dirty or self.read_only or self.path is None:
            return 0
        try:
            with open(self.path, "rb") as original:
                contents = bytearray(original.read())
            for sector in self.dirty:
                start = sector * SECTOR_SIZE
                contents[start:start + SECTOR_SIZE] = self.data[start:start + SECTOR_SIZE]
            mode = os.stat(self.path).st_mode & 0o7777
            write_atomically(self.path, bytes(contents), durable=True)
            os.chmod(self.path, mode)           # the image keeps its own permissions, whatever the umask
        except OSError as error:
            raise DiskError(f"{self.path}: cannot write disk image back: {error}") from None
        written = len(self.dirty)
        self.dirty.clear()
        return written


class Disk:
    """The block device model over a DiskImage and physical memory."""

    name = "disk"

    def __init__(self, irq: InterruptLines, memory: DmaMemory, image: DiskImage,
                 clock: Callable[[], int], schedule_changed: Callable[[], None] = lambda: None):
        self._irq = irq
        self._memory = memory
        self.image = image
        self._clock = clock
        self._schedule_changed = schedule_changed
        self.sector = self.dma_addr = self.count = 0
        self.status = 0
        self.ctrl = 0
        self._pending: tuple[int, int, int, int] | None = None   # (cmd, sector, dma_addr, count)
        self._completes_at: int | None = None
        self.requests = 0            # commands completed (failed ones included)
        self.bytes_moved = 0         # bytes the completed commands transferred

    def checkpoint(self) -> dict:
        """The device's state as JSON values (vmm/machine/snapshot.py): the
        registers, the command latched and not yet completed, the tick it
        completes at, and the figures.  The image is not part of it."""
        return {"sector": self.sector, "dma_addr": self.dma_addr, "count": self.count, "status": self.status,
                "ctrl": self.ctrl, "pending": None if self._pending is None else list(self._pending),
                "completes_at": self._completes_at, "requests": self.requests, "bytes": self.bytes_moved}

    def restore(self, saved: dict) -> None:
        """Take checkpoint()'s `saved` (checked by the caller): the command in
        flight completes at its saved tick."""
        self.sector, self.dma_addr, self.count = saved["sector"], saved["dma_addr"], saved["count"]
        self.status, self.ctrl = saved["status"], saved["ctrl"]
        self._pending = None if saved["pending"] is None else tuple(saved["pending"])
        self._completes_at = saved["completes_at"]
        self.requests, self.bytes_moved = saved["requests"], saved["bytes"]

    def read(self, offset: int, width: int) -> int:
        """The register's value; CMD and ACK read 0."""
        if not is_register_access(offset, width, DISK_REGISTERS):
            return 0
        return {
            DISK_SECTOR: self.sector, DISK_DMA_ADDR: self.dma_addr, DISK_COUNT: self.count,
            DISK_STATUS: self.status, DISK_CTRL: self.ctrl, DISK_CAPACITY: self.image.capacity,
        }.get(offset, 0)

    def write(self, offset: int, width: int, value: int) -> None:
        """Set a parameter register, start a command, or acknowledge."""
        if not is_register_access(offset, width, DISK_REGISTERS):
            return
        if offset == DISK_SECTOR:
            self.sector = value
        elif offset == DISK_DMA_ADDR:
            self.dma_addr = value
        elif offset == DISK_COUNT:
            self.count = value
        elif offset == DISK_CMD:
            self._start(value)
        elif offset == DISK_CTRL:
            self.ctrl = value & CTRL_IRQ_ENABLE
        elif offset == DISK_ACK:
            self.status &= ~STATUS_DONE
            self._irq.clear_line(IRQ_DISK)

    def _start(self, cmd: int) -> None:
        """Latch the command; it completes DISK_LATENCY_TICKS from now.  Ignored while BUSY."""
        if self.status & STATUS_BUSY:
            return
        self.status = STATUS_BUSY
        self._pending = (cmd, self.sector, self.dma_addr, self.count)
        self._completes_at = self._clock() + DISK_LATENCY_TICKS
        self._schedule_changed()

    def next_event(self) -> int | None:
        """The completion tick of the command in flight, or None."""
        return self._completes_at

    def advance(self, now: int) -> None:
        """Complete the command in flight if its time has come."""
        if self._completes_at is None or now < self._completes_at:
            return
        ok = self._transfer(*self._pending)
        self.requests += 1
        self.bytes_moved += self._pending[3] * SECTOR_SIZE if ok else 0
        self._pending = self._completes_at = None
        self.status = STATUS_DONE if ok else STATUS_DONE | STATUS_ERROR
        if self.ctrl & CTRL_IRQ_ENABLE:
            self._irq.assert_line(IRQ_DISK)

    def _transfer(self, cmd: int, sector: int, dma_addr: int, count: int) -> bool:
        """Move the data for one command; False (nothing moved) if it is invalid."""
        length = count * SECTOR_SIZE
        if cmd not in (CMD_READ, CMD_WRITE) or sector + count > self.image.capacity:
            return False
        if not self._memory.contains(dma_addr, length):
            return False
        try:
            if cmd == CMD_READ:
                self._memory.write_bytes(dma_addr, self.image.read_sectors(sector, count))
            else:
                self.image.write_sectors(sector, self._memory.read_bytes(dma_addr, length))
        except BusError:
            return False
        return True

"""The back end of the paravirtual disk: a split driver's VMM half, in the
style of Xen's blkback and virtio-blk (docs/hypercalls.md "The block ring").

A direct-mode guest registers one page of its RAM as the ring (blk_setup):
request slots it fills, and a header with its req_prod and the VMM's
rsp_prod.  blk_notify queues every request req_prod added; the queued
requests complete together BLK_LATENCY_TICKS later (one device latency per
batch, as the emulated disk's per command), in order, each with its status
in its slot, then rsp_prod moves and the virtual disk interrupt is raised:
one hypercall and one interrupt for the whole batch, where the emulated disk
costs an MMIO exit per register access.

Everything the guest supplies is checked: the ring indices at notify (never
more than BLK_RING_SIZE outstanding, never behind), each request's op, count
and sector range at completion, and every page of its buffer through the
guest kernel's own tables at completion (`translate`: writable for a read
into memory, so never a page table in direct mode, and only this VM's
frames).  A bad request fails alone, with nothing moved.

Invariants: the ring page is one machine frame of this VM, held typed
`writable` by the caller while registered; `done` (responses written) never
passes `queued` (requests queued), and queued - done <= BLK_RING_SIZE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from asm.arch import Access
from asm.isa import IRQ_DISK, PAGE_MASK, PAGE_SIZE
from vmm.machine.devices.disk import SECTOR_SIZE, DiskImage
from vmm.machine.irq import InterruptLines
from vmm.monitor.hypercall_abi import (BLK_BUFFER, BLK_COUNT, BLK_LATENCY_TICKS, BLK_MAX_SECTORS, BLK_OP,
                                       BLK_OP_READ, BLK_OP_WRITE, BLK_REQ_PROD, BLK_RING_SIZE, BLK_RSP_PROD,
                                       BLK_SECTOR, BLK_SLOT_SIZE, BLK_SLOTS_OFFSET, BLK_STATUS, EFAULT, EINVAL, EIO)
from vmm.monitor.physmap import GVA, MA

M32 = 0xFFFFFFFF
Translate = Callable[[GVA, Access], "MA | None"]


@dataclass
class BlockCounts:
    """A VM's paravirtual-disk figures, kept across ring registrations."""
    requests: int = 0          # requests completed (failed ones included)
    bytes: int = 0             # bytes the completed requests moved
    notifications: int = 0     # blk_notify calls that queued requests


class BlockBackend:
    """The ring registered at machine address `ring` over disk `image`."""

    def __init__(self, memory, ring: MA, image: DiskImage, irq: InterruptLines, clock: Callable[[], int],
                 schedule_changed: Callable[[], None], translate: Translate, counts: BlockCounts,
                 written: Callable[[MA, int], None]):
        self.memory, self.ring, self.image, self.irq = memory, ring, image, irq
        self._clock, self._schedule_changed, self._translate = clock, schedule_changed, translate
        self._written, self.counts = written, counts
        self.queued = self.done = self.batch_end = 0     # free-running request numbers
        self._completes_at: int | None = None

    def _read(self, offset: int) -> int:
        return self.memory.read(self.ring + offset, 4)

    def _write(self, offset: int, value: int) -> None:
        self.memory.write(self.ring + offset, 4, value & M32)

    # --- the front end's notification ---------------------------------------------------

    def notify(self) -> int:
        """blk_notify: queue the requests up to the ring's req_prod; 0, or
        -EINVAL (nothing queued) for indices behind the queue or more than
        BLK_RING_SIZE ahead of the responses."""
        req_prod = self._read(BLK_REQ_PROD)
        if (req_prod - self.queued) & M32 > BLK_RING_SIZE or (req_prod - self.done) & M32 > BLK_RING_SIZE:
            return -EINVAL
        if req_prod == self.queued:
            return 0
        self.counts.notifications += 1
        self.queued = req_prod
        if self._completes_at is None:
            self._start_batch(self._clock())
        return 0

    def _start_batch(self, now: int) -> None:
        """The requests queued so far complete BLK_LATENCY_TICKS from `now`."""
        self.batch_end = self.queued
        self._completes_at = now + BLK_LATENCY_TICKS
        self._schedule_changed()

    # --- time ---------------------------------------------------------------------------

    def next_event(self) -> int | None:
        """The completion tick of the batch in flight, or None."""
        return self._completes_at

    def advance(self, now: int) -> None:
        """Complete the batch in flight if its time has come: every request
        in order, rsp_prod, the interrupt; then start the next batch if
        requests were queued meanwhile."""
        if self._completes_at is None or now < self._completes_at:
            return
        self._completes_at = None
        while self.done != self.batch_end:
            self._complete(self.done)
            self.done = (self.done + 1) & M32
        self._write(BLK_RSP_PROD, self.done)
        self.irq.assert_line(IRQ_DISK)
        if self.queued != self.batch_end:
            self._start_batch(now)

    # --- checkpoints (vmm/monitor/checkpoint.py) ------------------------------------------

    def saved_state(self) -> dict:
        """The back end's progress: its request numbers and the tick the batch
        in flight completes at (None: none in flight).  The ring page itself
        is guest RAM."""
        return {"queued": self.queued, "done": self.done, "batch_end": self.batch_end,
                "completes_at": self._completes_at}

    def restore(self, saved: dict) -> None:
        """Go on from `saved` (a saved_state that state_ok accepted)."""
        self.queued, self.done, self.batch_end = saved["queued"], saved["done"], saved["batch_end"]
        self._completes_at = saved["completes_at"]

    # --- one request ----------------------------------------------------------------------

    def _complete(self, number: int) -> None:
        """Perform request `number` and write its status into its slot."""
        slot = BLK_SLOTS_OFFSET + BLK_SLOT_SIZE * (number % BLK_RING_SIZE)
        op, sector, count, buffer = (self._read(slot + field) for field in (BLK_OP, BLK_SECTOR, BLK_COUNT,
                                                                            BLK_BUFFER))
        status = self._perform(op, sector, count, GVA(buffer))
        self._write(slot + BLK_STATUS, status)
        self.counts.requests += 1
        if status == 0:
            self.counts.bytes += count * SECTOR_SIZE

    def _perform(self, op: int, sector: int, count: int, buffer: GVA) -> int:
        """Move the data of one request; its status (0 or -errno), nothing moved on an error."""
        if op not in (BLK_OP_READ, BLK_OP_WRITE) or not 1 <= count <= BLK_MAX_SECTORS:
            return -EINVAL
        if sector + count > self.image.capacity:
            return -EIO
        pieces = self._buffer(buffer, count * SECTOR_SIZE, Access.WRITE if op == BLK_OP_READ else Access.READ)
        if pieces is None:
            return -EFAULT
        if op == BLK_OP_READ:
            data = self.image.read_sectors(sector, count)
            for ma, offset, length in pieces:
                self.memory.write_bytes(ma, data[offset:offset + length])
                self._written(ma, length)
        else:
            self.image.write_sectors(sector, b"".join(self.memory.read_bytes(ma, length)
                                                      for ma, _, length in pieces))
        return 0

    def _buffer(self, buffer: GVA, length: int, access: Access) -> list[tuple[MA, int, int]] | None:
        """(machine address, offset, length) per page of the guest buffer, each
        translated for `access`; None if any is not (or the buffer wraps past 2^32)."""
        if buffer + length > 1 << 32:
            return None
        pieces, done = [], 0
        while done < length:
            here = buffer + done
            step = min(length - done, PAGE_SIZE - (here & PAGE_MASK))
            ma = self._translate(GVA(here), access)
            if ma is None:
                return None
            pieces.append((ma, done, step))
            done += step
        return pieces


def state_ok(saved, now: int) -> bool:
    """Whether `saved` is a saved_state a back end can be in at tick `now`:
    32-bit request numbers with the invariants (module doc); with nothing in
    flight every queued request is answered, else a batch of 1 to
    BLK_RING_SIZE requests completes after `now`, within BLK_LATENCY_TICKS."""
    if not isinstance(saved, dict) or set(saved) != {"queued", "done", "batch_end", "completes_at"}:
        return False
    numbers = [saved[key] for key in ("queued", "done", "batch_end")]
    if not all(type(number) is int and 0 <= number <= M32 for number in numbers):
        return False
    queued, done, batch_end = numbers
    at = saved["completes_at"]
    if at is None:
        return queued == done == batch_end
    return (type(at) is int and now < at <= now + BLK_LATENCY_TICKS
            and 1 <= (batch_end - done) & M32 <= (queued - done) & M32 <= BLK_RING_SIZE)

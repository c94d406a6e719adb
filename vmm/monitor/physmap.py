"""Machine frames and each VM's guest-physical → machine map.

The three memory abstractions, named as in the rest of the monitor:

    guest-virtual  (gva)  what guest instructions use
    guest-physical (gpa)  what the guest kernel believes is RAM: contiguous from 0, frame numbers `gfn`
    machine        (ma)   the Kite32 machine's physical RAM, frame numbers `mfn`

Each has its own type at the monitor's boundaries (GVA, GPA, MA: NewTypes of
int, so a signature says which one a function takes and returns).

The VMM owns every machine frame.  It hands frames to VMs (recorded here as
their owner) and keeps some for itself (shadow page tables).  Nothing here
touches memory contents or the CPU.
"""

from __future__ import annotations

import heapq
from typing import NewType

from asm.isa import PAGE_SHIFT

GVA = NewType("GVA", int)      # guest-virtual address
GPA = NewType("GPA", int)      # guest-physical address
MA = NewType("MA", int)        # machine (physical RAM) address

OWNER_FREE = -1
OWNER_VMM = 0          # VM ids start at 1


class OutOfFrames(Exception):
    """The machine has fewer free frames than a request needs."""


class MachineFrames:
    """Ownership of every machine RAM frame.  MMIO pages are not RAM frames:
    any mfn >= `count` is not owned by anyone and `owner()` says so."""

    def __init__(self, count: int):
        self.count = count
        self._owner = [OWNER_FREE] * count
        self._free = list(range(count))        # a heap of the free frames: the lowest is first

    def owner(self, mfn: int) -> int | None:
        """The owner of `mfn`, OWNER_FREE, or None if `mfn` is not a RAM frame."""
        if 0 <= mfn < self.count:
            return self._owner[mfn]
        return None

    def allocate(self, owner: int, how_many: int) -> list[int]:
        """Give `how_many` free frames to `owner`, lowest first.  Raises
        OutOfFrames (and gives nothing) if there are not enough."""
        if len(self._free) < how_many:
            raise OutOfFrames(f"need {how_many} frames, {len(self._free)} free")
        given = [heapq.heappop(self._free) for _ in range(how_many)]
        for mfn in given:
            self._owner[mfn] = owner
        return given

    def release(self, owner: int, mfns: list[int]) -> None:
        """Return `mfns` to the free pool.  Each must belong to `owner`."""
        for mfn in mfns:
            if self.owner(mfn) != owner:
                raise ValueError(f"release: frame {mfn:#x} is not owned by {owner}")
        for mfn in dict.fromkeys(mfns):
            self._owner[mfn] = OWNER_FREE
            heapq.heappush(self._free, mfn)

    def owned_by(self, owner: int) -> list[int]:
        """Every frame `owner` holds, in ascending order."""
        return [mfn for mfn in range(self.count) if self._owner[mfn] == owner]


class GuestPhysMap:
    """One VM's guest-physical RAM: gfn i lives in machine frame p2m[i].

    The guest sees len(p2m) frames of RAM from guest-physical address 0."""

    def __init__(self, vm_id: int, p2m: list[int]):
        self.vm_id = vm_id
        self.p2m = list(p2m)
        self.m2p = {mfn: gfn for gfn, mfn in enumerate(self.p2m)}

    @property
    def frames(self) -> int:
        return len(self.p2m)

    @property
    def size(self) -> int:
        """Guest RAM size in bytes."""
        return len(self.p2m) << PAGE_SHIFT

    def mfn(self, gfn: int) -> int | None:
        """The machine frame behind guest frame `gfn`, or None outside guest RAM."""
        if 0 <= gfn < len(self.p2m):
            return self.p2m[gfn]
        return None

    def gfn(self, mfn: int) -> int | None:
        """The guest frame that machine frame `mfn` backs, or None if not this VM's."""
        return self.m2p.get(mfn)

    def gpa_to_ma(self, gpa: GPA) -> MA | None:
        """Machine address of guest-physical `gpa`, or None outside guest RAM."""
        gfn = gpa >> PAGE_SHIFT
        if 0 <= gfn < len(self.p2m):                    # mfn(gfn), without the call: every emulated access
            return MA((self.p2m[gfn] << PAGE_SHIFT) | (gpa & ((1 << PAGE_SHIFT) - 1)))
        return None

"""Walk references per TLB miss: the bare machine's two-level walk against the
two-dimensional walk of nested paging (docs/isa.md "Virtualization extension
(optional)"), without and with the page-walk cache.

The same kernel code (tests/machine/test_guest_mode.py, page_walk_program)
reads one word of each of PAGES pages (setting A), flushes the TLB, and
reads them all again; only the second pass is measured, so every miss finds
A set and makes no write-back.  It runs on the bare machine (its tables at
machine addresses) and as a guest entered with CPU.enter_guest, its tables
at guest-physical addresses mapped by nested tables.  Expected: 2 on bare,
(2+1)(2+1)-1 = 8 nested, 4 with the page-walk cache (the nested translations
of the guest's PDE and PTE pages are cached; only the data frame's 2 nested
references and the 2 guest entries remain).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.machine.test_guest_mode import second_pass_refs_per_miss   # noqa: E402

PAGES = 256


def main() -> None:
    figures = {}
    for name, nested, pwc in (("bare", False, False), ("nested, page-walk cache off", True, False),
                              ("nested, page-walk cache on", True, True)):
        figures[name] = refs = second_pass_refs_per_miss(PAGES, nested, pwc)
        print(f"{name}: {refs:.2f} walk references per TLB miss ({PAGES} pages)")
    off, on = figures["nested, page-walk cache off"], figures["nested, page-walk cache on"]
    print(f"page-walk cache: saves {off - on:.2f} references per miss ({(off - on) / off:.0%})")


if __name__ == "__main__":
    main()

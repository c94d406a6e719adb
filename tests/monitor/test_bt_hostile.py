"""Hostile guest kernels against binary translation (`kite run --paging shadow --cpu bt`).

The issue's done-means: "Hostile kernels (jump into the translation cache,
store into it, point a PTE at it, compute a load address into the VMM
window, modify code after it was translated) are tested and each behaves as
on the bare machine".  Each test boots a small kernel (FRAME below, its case
code generated here) on the bare machine and under bt and asserts the same
console transcript, exit code and guest instruction count; the transcript
shows every trap the kernel's handler took (cause, badaddr, epc) and the
registers after each probe, and the tests also check it against
docs/isa.md (the bare machine's answer is the right one).  Every bt run must
end without an internal VMM error (exit code 70) or a traceback.

The one documented difference (bt/layout.py, docs/vmm.md "The VMM window"):
the top 4 MiB belongs to the VMM, so a guest's OWN mapping there is ignored
under bt (test_guest_mapping_of_the_window_is_ignored_under_bt_...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from tests.monitor.guestrun import GUESTS, TEXT_ADDRESS, GuestRun, run_guest
from vmm.monitor.bt.translator import op

BT = ("--cpu", "bt")
EXIT_CODE = 42
EXIT_INTERNAL = 70
EXIT_STOPPED = 125
SENTINEL = 0x5EED5EED            # t1 before every probe: a faulting load must leave it so
EXTRA_BASE = 0x00400000          # PDE 1 (pt_extra): the cases' own PTEs, paging on
BUS, MISALIGNED, BREAKPOINT = 0x8, 0x3, 0x6
PF_READ, PF_WRITE, PF_FETCH = 0x004, 0x204, 0x804          # kernel, not present: cause with error code
PF_USER_READ, PF_USER_WRITE = 0x404, 0x604

# The kernel every test boots: trap handler, optional paging, the cases (MAIN).
# The handler prints "  trap cause=C badaddr=B epc=E" (E is "probe" when epc
# is s3, the probe's address), then: breakpoint with bp_orig set: puts
# bp_orig back at epc and returns there (a debugger's breakpoint); syscall:
# back to kernel mode at the interrupted ra; a fetch fault (epc = badaddr):
# back at the interrupted ra; a timer interrupt: counted (and its epc summed),
# acknowledged, back at epc; anything else: the next instruction.  It saves
# and restores every register it uses (t0-t3, a0, a1, ra).  QUIET: no trap
# lines, only the sum of cause + badaddr + epc; TIMER: a periodic timer of
# that interval runs, with interrupts on, while main does.
FRAME = r"""
        .include "kernel.inc"
        .equ SENTINEL,   0x5EED5EED
        .equ EXIT_CODE,  42
        .equ MAX_TRAPS,  QUIET * 1000 + 500
        .equ SNAP,       0x100             # low RAM where a probe's registers are kept (zero-based)

        .text
        .globl _start
_start:
        la      sp, stack_top
        la      t0, trap_entry
        mtcr    tvec, t0
        .if PAGING
        call    paging_on
        .endif
        print   "boot\n"
        li      s3, 0
        .if TIMER
        li      t0, TIMER_INTERVAL      # a fast periodic timer: interrupts land all over the code
        li      t1, TIMER
        sw      t1, 0(t0)
        li      t0, TIMER_CTRL
        li      t1, TIMER_ENABLE | TIMER_PERIODIC
        sw      t1, 0(t0)
        ei
        .endif
        call    main
        .if TIMER
        di
        li      t0, TIMER_CTRL
        sw      zero, 0(t0)
        print   "ticks "
        la      t0, ticks
        lw      a0, 0(t0)
        call    put_dec
        print   " epc sum "
        la      t0, ticks
        lw      a0, 4(t0)
        call    put_hex
        print   "\n"
        .endif
        print   "traps "
        la      t0, trap_count
        lw      a0, 0(t0)
        call    put_dec
        print   "\ndone\n"
        li      a0, EXIT_CODE
        j       power_off

# snap: after a probe: keep at a0 t0-t3 ra at SNAP (zero-based stores, no
# register needed), then print them.
        .macro snap
        sw      at, SNAP(zero)
        sw      a0, SNAP+4(zero)
        sw      t0, SNAP+8(zero)
        sw      t1, SNAP+12(zero)
        sw      t2, SNAP+16(zero)
        sw      t3, SNAP+20(zero)
        sw      ra, SNAP+24(zero)
        call    dump
        .endm

# preset: known values in the registers a probe may touch (t0 is the address).
        .macro preset
        li      at, 0xA7A7A7A7
        li      a0, 0xA0A0A0A0
        li      t1, SENTINEL
        li      t2, 0x7E27E27E
        li      t3, 0x7E37E37E
        li      ra, 0x0BADC0DC
        .endm

dump:
        push    ra
        print   "  at="
        lw      a0, SNAP(zero)
        call    put_hex
        print   " a0="
        lw      a0, SNAP+4(zero)
        call    put_hex
        print   " t0="
        lw      a0, SNAP+8(zero)
        call    put_hex
        print   " t1="
        lw      a0, SNAP+12(zero)
        call    put_hex
        print   " t2="
        lw      a0, SNAP+16(zero)
        call    put_hex
        print   " t3="
        lw      a0, SNAP+20(zero)
        call    put_hex
        print   " ra="
        lw      a0, SNAP+24(zero)
        call    put_hex
        print   "\n"
        pop     ra
        ret

# show "NAME": print "  NAME=value of s0".
        .macro show text
        print   "  "
        print   \text
        print   "="
        print_hex s0
        print   "\n"
        .endm

trap_entry:
        mtcr    scratch, t0
        la      t0, trap_save
        sw      t1, 4(t0)
        sw      t2, 8(t0)
        sw      a0, 12(t0)
        sw      a1, 16(t0)
        sw      ra, 20(t0)
        sw      t3, 24(t0)
        mfcr    t1, scratch
        sw      t1, 0(t0)
        mfcr    t1, cause
        li      t2, CAUSE_TIMER
        beq     t1, t2, timer_tick
        la      t0, trap_count
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        li      t2, MAX_TRAPS
        bgeu    t1, t2, trap_storm
        .if QUIET
        la      t0, ticks               # quiet: only the sum of cause, badaddr and epc
        lw      t1, 8(t0)
        mfcr    t2, cause
        add     t1, t1, t2
        mfcr    t2, badaddr
        add     t1, t1, t2
        mfcr    t2, epc
        add     t1, t1, t2
        sw      t1, 8(t0)
        j       trap_resume
        .endif
        print   "  trap cause="
        mfcr    t0, cause
        print_hex t0
        print   " badaddr="
        mfcr    t0, badaddr
        print_hex t0
        mfcr    t0, epc
        beq     t0, s3, 1f
        print   " epc="
        mfcr    t0, epc
        print_hex t0
        j       2f
1:      print   " epc=probe"
2:      print   "\n"
trap_resume:
        mfcr    t0, cause
        li      t1, EXC_BREAKPOINT
        beq     t0, t1, 5f
        li      t1, EXC_SYSCALL
        beq     t0, t1, 6f
        mfcr    t0, epc
        mfcr    t1, badaddr
        bne     t0, t1, 3f
7:      la      t1, trap_save           # a fetch fault: back at the caller (ra)
        lw      t0, 20(t1)
        j       4f
3:      mfcr    t0, epc
        addi    t0, t0, 4
4:      mtcr    epc, t0
trap_return:
        la      t0, trap_save
        lw      t1, 4(t0)
        lw      t2, 8(t0)
        lw      a0, 12(t0)
        lw      a1, 16(t0)
        lw      ra, 20(t0)
        lw      t3, 24(t0)
        lw      t0, 0(t0)
        rfe
5:      la      t0, bp_orig             # a breakpoint: put the instruction back, run it
        lw      t1, 0(t0)
        beqz    t1, 3b
        sw      zero, 0(t0)
        mfcr    t0, epc
        sw      t1, 0(t0)
        j       4b
6:      mfcr    t0, status              # a syscall: back to kernel mode at the caller (ra)
        ori     t0, t0, STATUS_PKM
        mtcr    status, t0
        j       7b
timer_tick:                             # count it, add its epc to the sum, go on (epc unchanged)
        li      t0, TIMER_ACK
        sw      zero, 0(t0)
        la      t0, ticks
        lw      t1, 0(t0)
        addi    t1, t1, 1
        sw      t1, 0(t0)
        lw      t1, 4(t0)
        mfcr    t2, epc
        add     t1, t1, t2
        sw      t1, 4(t0)
        j       trap_return
trap_storm:
        print   "trap storm\n"
        li      a0, EXIT_UNEXPECTED
        j       power_off

        .if PAGING
# paging_on: identity-map the low 4 MiB (kernel, read-write, PDE 0), the
# MMIO pages (PDE 960), pt_extra at PDE 1 (empty: the cases fill it); no PDE 1023.
paging_on:
        fill_table pt_low, PTE_P | PTE_W | USER_BIT, 1024
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W | USER_BIT
        sw      t1, 0(t0)
        la      t1, pt_extra
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 4(t0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        ret
        .endif

main:
        push    ra
@MAIN@
        pop     ra
        ret

        .data
        .balign 4
trap_count:     .word 0
ticks:          .word 0, 0, 0           # timer interrupts, the sum of their epcs, the quiet traps' sum
trap_save:      .space 32
bp_orig:        .word 0

        .bss
        .balign 4096
page_dir:       .space 4096
pt_low:         .space 4096
pt_mmio:        .space 4096
pt_extra:       .space 4096
pt_top:         .space 4096
stack:          .space 2048
stack_top:
"""


# --- building and running ------------------------------------------------------------------------

def build(tmp_path: Path, main: str, paging: bool, name: str = "guest", extra: str = "",
          user: bool = False, timer: int = 0, quiet: int = 0) -> Path:
    """The FRAME kernel with `main` (the case code) and `extra` (more code or
    data after it), paging on or off, linked at TEXT_ADDRESS."""
    source = FRAME.replace("@MAIN@", main) + extra
    defines = {"PAGING": int(paging), "USER_BIT": 4 if user else 0, "TIMER": timer, "QUIET": quiet}
    obj = assemble(source, f"{name}.s", defines, [str(GUESTS)])
    image = tmp_path / f"{name}-{'paging' if paging else 'flat'}-{timer}.elf"
    image.write_bytes(link([obj], LinkOptions(text_address=TEXT_ADDRESS)))
    return image


def assert_healthy(run: GuestRun) -> None:
    """A bt run the VMM survived: no internal error, no traceback."""
    assert run.exit_code != EXIT_INTERNAL, run.stderr
    assert "internal VMM error" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "Traceback" not in run.output, run.stderr


def both(image: Path) -> tuple[GuestRun, GuestRun]:
    """(bare, bt) runs of `image`; the bt run checked healthy."""
    bare, bt = run_guest(image, "bare"), run_guest(image, "shadow", *BT)
    assert_healthy(bt)
    return bare, bt


def bt_counters(run: GuestRun) -> dict:
    return run.stats["vms"]["vm1"]["counters"]


def assert_as_on_bare(bare: GuestRun, bt: GuestRun) -> None:
    """Same transcript, exit code and guest instruction count."""
    assert bare.exit_code == EXIT_CODE, bare.output + bare.stderr
    assert bt.output == bare.output, bt.stderr
    assert bt.exit_code == bare.exit_code, bt.stderr
    assert bt.stats["vms"]["vm1"]["guest_instructions"] == bare.stats["instructions"]


# --- probe cases ---------------------------------------------------------------------------------

class Case(NamedTuple):
    """One probe: `setup` (after preset; t0 holds `address` unless it sets
    otherwise), then `probe`, one instruction at label 1 (s3 = its address).
    `trap` is the expected (cause, badaddr, epc) or None (no trap); epc
    "probe" means the probe itself."""
    name: str
    setup: str
    probe: str
    trap: tuple[int, int, str] | None
    regs: dict[str, int] = {}           # registers the dump must show (after the probe)


def case_code(cases: list[Case]) -> str:
    lines = []
    for case in cases:
        lines += [f'        print   "case {case.name}\\n"',
                  "        la      s3, 1f",
                  "        preset",
                  case.setup,
                  f"1:      {case.probe}",
                  "        snap"]
    return "\n".join(lines)


def transcript_cases(output: str) -> dict[str, list[str]]:
    """case name -> its lines (trap lines and the dump) in the transcript."""
    cases, current = {}, None
    for line in output.splitlines():
        if line.startswith("case "):
            current = cases.setdefault(line[5:], [])
        elif line.startswith("  ") and current is not None:
            current.append(line.strip())
        else:
            current = None
    return cases


def trap_line(trap: tuple[int, int, str]) -> str:
    cause, badaddr, epc = trap
    return f"trap cause={cause:#010x} badaddr={badaddr:#010x} epc={epc}"


def check_cases(output: str, cases: list[Case]) -> None:
    """Every case in `output` took exactly its expected trap (or none) and
    shows its expected registers."""
    seen = transcript_cases(output)
    for case in cases:
        lines = seen[case.name]
        traps = [line for line in lines if line.startswith("trap ")]
        expected = [] if case.trap is None else [trap_line(case.trap)]
        assert traps == expected, (case.name, lines)
        dump = dict(item.split("=") for item in lines[-1].split())
        for reg, value in case.regs.items():
            assert int(dump[reg], 16) == value, (case.name, reg, lines)


def checked_in_software(cases: list[Case]) -> int:
    """How many of `cases` fault at an address the translated code's own check
    catches (at or above the TC; below it the machine's walk does)."""
    return sum(case.trap is not None and case.trap[1] >= 0xFFFE0000 for case in cases)


def address_setup(address: int) -> str:
    return f"        li      t0, {address:#x}"


def hexs(value: int) -> str:
    return f"{value:#010x}"


# --- 1. jumps into the translation cache and the virtual-CPU page --------------------------------

JUMP_TARGETS = (0xFFFE0000, 0xFFFE0100, 0xFFFFEFFC, 0xFFFFF000, 0xFFFFF020, 0xFFFFFFFC, 0xFFC00000, 0xFFFDFFFC)


def jump_cases(paging: bool) -> list[Case]:
    cause = PF_FETCH if paging else BUS
    cases = [Case(f"jalr {target:#010x}", address_setup(target), "jalr    ra, t0, 0",
                  (cause, target, hexs(target)), {"t1": SENTINEL}) for target in JUMP_TARGETS]
    # a misaligned target: the jalr itself raises misaligned, rd unchanged
    cases.append(Case("jalr 0xfffff002 misaligned", address_setup(0xFFFFF002), "jalr    ra, t0, 0",
                      (MISALIGNED, 0xFFFFF002, "probe"), {"ra": 0x0BADC0DC}))
    cases.append(Case("jalr 0xfffe0000 via offset", address_setup(0xFFFE0010), "jalr    ra, t0, -16",
                      (cause, 0xFFFE0000, hexs(0xFFFE0000))))
    return cases


EDGE_MAIN = r"""
        la      t0, page_dir            # PDE 1022 -> pt_top, its last PTE -> edge_page: 0xFFBFF000
        la      t1, pt_top
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 4088(t0)
        la      t0, pt_top
        la      t1, edge_page
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 4092(t0)
        tlbflush
@CASES@
"""
EDGE_PAGE = r"""
        .text
        .balign 4096
edge_page:
        .space  4088
        li      a0, 0x33                # 0xFFBFFFF8
        addi    a0, a0, 1               # 0xFFBFFFFC, the last word below the window
        .balign 4096
"""


def test_code_running_off_the_last_page_below_the_window_faults_at_its_fetch_as_on_bare(tmp_path):
    """Kernel code on the page just below the window (0xFFBFF000, mapped)
    runs to its end and falls through into 0xFFC00000: both instructions
    run (a0 = 0x34), then the fetch in the window faults not-present,
    epc = badaddr = 0xFFC00000; from a jalr and from a jal to it."""
    cases = [Case("run off 0xffbffff8 by jalr", address_setup(0xFFBFFFF8), "jalr    ra, t0, 0",
                  (PF_FETCH, 0xFFC00000, hexs(0xFFC00000)), {"a0": 0x34}),
             Case("run off 0xffbffff8 by jal", jal_patch(0xFFBFFFF8, True), "nop",
                  (PF_FETCH, 0xFFC00000, hexs(0xFFC00000)), {"a0": 0x34}),
             Case("run off again by jalr", address_setup(0xFFBFFFF8), "jalr    ra, t0, 0",
                  (PF_FETCH, 0xFFC00000, hexs(0xFFC00000)), {"a0": 0x34})]
    bare, bt = both(build(tmp_path, EDGE_MAIN.replace("@CASES@", case_code(cases)), True, extra=EDGE_PAGE))
    check_cases(bare.output, cases)
    assert_as_on_bare(bare, bt)


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
def test_jalr_into_the_translation_cache_or_vcpu_page_faults_at_fetch_as_on_bare(tmp_path, paging):
    """jalr to the TC, the virtual-CPU page and the rest of the window: the
    jalr retires (ra = its pc + 4), the fetch at the target faults with
    epc = badaddr = target: a bus error with paging off, a not-present
    kernel fetch fault with paging on (nothing is mapped there)."""
    cases = jump_cases(paging)
    bare, bt = both(build(tmp_path, case_code(cases), paging))
    check_cases(bare.output, cases)
    assert_as_on_bare(bare, bt)
    for case in cases[:len(JUMP_TARGETS)]:            # the link was written: ra is the jalr's pc + 4
        dump = transcript_cases(bare.output)[case.name][-1]
        assert re.search(r"ra=0x001[0-9a-f]{5}", dump), dump


JAL_FIELD = 0x3FFFFF


def jal_patch(target: int, link: bool) -> str:
    """Code that writes, at the probe (label 1, a nop), a `jal ra` / `j` to
    `target`, computed from the probe's own address: the probe is written
    just before it runs (so this is self-modifying code too)."""
    word = op("jal", rd=1 if link else 0, target=0)
    return "\n".join([
        f"        li      t0, {target:#x}",
        "        la      t1, 1f",
        "        sub     t0, t0, t1",
        "        srai    t0, t0, 2",
        f"        li      t2, {JAL_FIELD:#x}",
        "        and     t0, t0, t2",
        f"        li      t2, {word:#x}",
        "        or      t0, t0, t2",
        "        sw      t0, 0(t1)",
        "" if link else "        la      ra, 1f\n        addi    ra, ra, 4",
    ])


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
def test_jal_and_j_into_the_window_written_just_before_they_run_fault_at_fetch_as_on_bare(tmp_path, paging):
    """A direct jal / j whose target is the TC or the virtual-CPU page (its
    word computed and stored over a nop right before it runs): the fetch
    at the target faults as on bare."""
    cause = PF_FETCH if paging else BUS
    cases = [Case(f"{'jal' if link else 'j'} {target:#010x}", jal_patch(target, link), "nop",
                  (cause, target, hexs(target)))
             for target in (0xFFFE0000, 0xFFFFF000, 0xFFC00000) for link in (True, False)]
    bare, bt = both(build(tmp_path, case_code(cases), paging))
    check_cases(bare.output, cases)
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_invalidations"] >= len(cases)


# --- 2. stores into the window -----------------------------------------------------------------------

def store_cases(paging: bool) -> list[Case]:
    fault = PF_WRITE if paging else BUS
    cases = []
    for address in (0xFFFE0000, 0xFFFFEFFC, 0xFFFFF000, 0xFFFFF004, 0xFFFFF010, 0xFFFFF018,
                    0xFFFFF020, 0xFFFFF024, 0xFFFFF028, 0xFFFFFFFC, 0xFFC00000, 0xFFFDFFFC):
        cases.append(Case(f"sw {address:#010x}", address_setup(address), "sw      t1, 0(t0)",
                          (fault, address, "probe"), {"t0": address, "t1": SENTINEL}))
    cases += [
        Case("sb 0xfffff001", address_setup(0xFFFFF001), "sb      t1, 0(t0)", (fault, 0xFFFFF001, "probe")),
        Case("sh 0xfffff002", address_setup(0xFFFFF002), "sh      t1, 0(t0)", (fault, 0xFFFFF002, "probe")),
        Case("sw wrapping 0x10-0x20", address_setup(0x10), "sw      t1, -0x20(t0)",
             (fault, 0xFFFFFFF0, "probe")),
        Case("sw base at", "        li      at, 0xfffff000", "sw      t0, 0(at)", (fault, 0xFFFFF000, "probe"),
             {"at": 0xFFFFF000}),
        Case("sw data at", address_setup(0xFFFFF024), "sw      at, 0(t0)", (fault, 0xFFFFF024, "probe"),
             {"at": 0xA7A7A7A7}),
        Case("sw -4096(zero)", "", "sw      t1, -4096(zero)", (fault, 0xFFFFF000, "probe")),
        Case("sw -4060(zero)", "", "sw      t1, -4060(zero)", (fault, 0xFFFFF024, "probe")),
        Case("sw -131072(zero)", "", "sw      t1, -131072(zero)", (fault, 0xFFFE0000, "probe")),
        Case("sb -1(zero)", "", "sb      t1, -1(zero)", (fault, 0xFFFFFFFF, "probe")),
        Case("sh -4094(zero)", "", "sh      t1, -4094(zero)", (fault, 0xFFFFF002, "probe")),
        # misaligned first, wherever the address is
        Case("sw misaligned 0xfffff002", address_setup(0xFFFFF000), "sw      t1, 2(t0)",
             (MISALIGNED, 0xFFFFF002, "probe")),
        Case("sw misaligned 0xffc00001", address_setup(0xFFC00001), "sw      t1, 0(t0)",
             (MISALIGNED, 0xFFC00001, "probe")),
        Case("sw misaligned -4094(zero)", "", "sw      t1, -4094(zero)", (MISALIGNED, 0xFFFFF002, "probe")),
        Case("sh misaligned -4095(zero)", "", "sh      t1, -4095(zero)", (MISALIGNED, 0xFFFFF001, "probe")),
        Case("sh misaligned 0xfffe0003", address_setup(0xFFFE0003), "sh      t1, 0(t0)",
             (MISALIGNED, 0xFFFE0003, "probe")),
    ]
    return cases


AFTER_STORES = r"""
        print   "after the stores: status "
        rdsr    s0
        print_hex s0
        print   " tvec ok "
        mfcr    s0, tvec
        la      s1, trap_entry
        sub     s0, s0, s1
        print_hex s0
        print   "\n"
        call    leaf                    # translated code still runs
        mov     s0, a0
        show    "leaf"
"""
LEAF = r"""
        .text
leaf:   li      a0, 0x1EAF
        ret
"""


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
def test_stores_into_the_tc_and_vcpu_page_fault_as_on_bare_and_change_nothing(tmp_path, paging):
    """sw / sh / sb into the TC, the virtual-CPU page (its status, tvec, epc,
    ptb, spill, count and pending words) and the reserved rest of the
    window, by computed address, wrapping around 0, and from zero: bare's
    fault (bus error / not-present write fault), misaligned first; the
    handler skips each; afterwards status and tvec are what the guest set
    and translated code still runs."""
    cases = store_cases(paging)
    bare, bt = both(build(tmp_path, case_code(cases) + AFTER_STORES, paging, extra=LEAF))
    check_cases(bare.output, cases)
    assert "after the stores: status 0x00000005 tvec ok 0x00000000\n  leaf=0x00001eaf\n" in bare.output
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_callout_window"] >= checked_in_software(cases)


# --- 3. loads from the window ------------------------------------------------------------------------

def load_cases(paging: bool) -> list[Case]:
    fault = PF_READ if paging else BUS
    cases = []
    vcpu_words = [0xFFFFF000 + offset for offset in range(0, 0x30, 4)]
    for address in (*vcpu_words, 0xFFFE0000, 0xFFFFEFFC, 0xFFFFFFFC, 0xFFC00000, 0xFFFDFFFC):
        cases.append(Case(f"lw {address:#010x}", address_setup(address), "lw      t1, 0(t0)",
                          (fault, address, "probe"), {"t0": address, "t1": SENTINEL}))
    cases += [
        Case("lb 0xfffff001", address_setup(0xFFFFF001), "lb      t1, 0(t0)", (fault, 0xFFFFF001, "probe"),
             {"t1": SENTINEL}),
        Case("lbu 0xfffff003", address_setup(0xFFFFF003), "lbu     t1, 0(t0)", (fault, 0xFFFFF003, "probe"),
             {"t1": SENTINEL}),
        Case("lh 0xfffff002", address_setup(0xFFFFF002), "lh      t1, 0(t0)", (fault, 0xFFFFF002, "probe"),
             {"t1": SENTINEL}),
        Case("lhu 0xfffe0002", address_setup(0xFFFE0002), "lhu     t1, 0(t0)", (fault, 0xFFFE0002, "probe"),
             {"t1": SENTINEL}),
        Case("lw into its base", address_setup(0xFFFFF000), "lw      t0, 0(t0)", (fault, 0xFFFFF000, "probe"),
             {"t0": 0xFFFFF000}),
        Case("lw base at", "        li      at, 0xfffff020", "lw      t1, 0(at)", (fault, 0xFFFFF020, "probe"),
             {"at": 0xFFFFF020, "t1": SENTINEL, "t2": 0x7E27E27E}),
        Case("lw into at", address_setup(0xFFFFF024), "lw      at, 0(t0)", (fault, 0xFFFFF024, "probe"),
             {"at": 0xA7A7A7A7, "t1": SENTINEL}),
        Case("lw at from at", "        li      at, 0xfffff020", "lw      at, 0(at)",
             (fault, 0xFFFFF020, "probe"), {"at": 0xFFFFF020}),
        Case("lw wrapping 0x10-0x14", address_setup(0x10), "lw      t1, -0x14(t0)",
             (fault, 0xFFFFFFFC, "probe"), {"t1": SENTINEL}),
        Case("lw -4096(zero)", "", "lw      t1, -4096(zero)", (fault, 0xFFFFF000, "probe"), {"t1": SENTINEL}),
        Case("lw -4064(zero)", "", "lw      t1, -4064(zero)", (fault, 0xFFFFF020, "probe"), {"t1": SENTINEL}),
        Case("lw -4056(zero)", "", "lw      t1, -4056(zero)", (fault, 0xFFFFF028, "probe"), {"t1": SENTINEL}),
        Case("lw -131072(zero)", "", "lw      t1, -131072(zero)", (fault, 0xFFFE0000, "probe"),
             {"t1": SENTINEL}),
        Case("lbu -1(zero)", "", "lbu     t1, -1(zero)", (fault, 0xFFFFFFFF, "probe"), {"t1": SENTINEL}),
        Case("lw zero", address_setup(0xFFFFF000), "lw      zero, 0(t0)", (fault, 0xFFFFF000, "probe")),
        Case("lw misaligned 0xfffff001", address_setup(0xFFFFF000), "lw      t1, 1(t0)",
             (MISALIGNED, 0xFFFFF001, "probe"), {"t1": SENTINEL}),
        Case("lh misaligned -4095(zero)", "", "lh      t1, -4095(zero)", (MISALIGNED, 0xFFFFF001, "probe"),
             {"t1": SENTINEL}),
    ]
    return cases


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
def test_loads_from_the_window_fault_as_on_bare_and_leave_the_register(tmp_path, paging):
    """Loads of every word of the virtual-CPU state (0xFFFFF000..0xFFFFF02C),
    the TC, 0xFFC00000 (reserved, unmapped) and just below the TC, of every
    width, by computed address (any of at/t0/t1 as base or destination, so
    the check borrows each scratch register), wrapping and from zero: bare's
    fault, the loaded register keeps its old value and every other register
    is unchanged."""
    cases = load_cases(paging)
    bare, bt = both(build(tmp_path, case_code(cases), paging))
    check_cases(bare.output, cases)
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_callout_window"] >= checked_in_software(cases)


TIMER_ROUNDS = 40
TIMER_MAIN = rf"""
        li      s0, {TIMER_ROUNDS}
        la      s1, timer_buf
1:      li      t0, 0xFFFFF000          # the virtual CPU page
        li      t1, SENTINEL
        li      t2, 0x7E27E27E
        lw      t1, 0(t0)               # faults: t1 kept
        sw      t2, 0x24(t0)            # faults: the count word
        lw      at, 0(s1)               # checked accesses in RAM (at, t0, t1, t2 borrowed)
        add     at, at, t1
        sw      at, 0(s1)
        lw      t3, 4(s1)
        add     t3, t3, t2
        sw      t3, 4(s1)
        lw      t2, -4(t0)              # 0xFFFFEFFC: faults, t2 kept
        lw      a0, 8(s1)
        add     a0, a0, t2
        sw      a0, 8(s1)
        lbu     t3, -1(zero)            # 0xFFFFFFFF from zero: faults
        call    timer_leaf_a            # a call and its ret (the jalr target cache)
        andi    t0, s0, 1               # a jalr through a pointer, alternating: the cache misses
        slli    t0, t0, 2
        add     t0, t0, s1
        lw      t0, 16(t0)
        jalr    ra, t0, 0
        addi    s0, s0, -1
        bnez    s0, 1b
        lw      s0, 12(s1)
        show    "calls"
        print   "sums "
        lw      a0, 0(s1)
        call    put_hex
        print   " "
        lw      a0, 4(s1)
        call    put_hex
        print   " "
        lw      a0, 8(s1)
        call    put_hex
        print   " faults "
        la      t0, ticks
        lw      a0, 8(t0)
        call    put_hex
        print   "\n"
"""
TIMER_DATA = r"""
        .text
timer_leaf_a:
        lw      a1, 12(s1)
        addi    a1, a1, 1
        sw      a1, 12(s1)
        ret
timer_leaf_b:
        lw      a1, 12(s1)
        addi    a1, a1, 0x100
        sw      a1, 12(s1)
        ret
        .data
        .balign 4
timer_buf:      .word 0, 0, 0, 0, timer_leaf_a, timer_leaf_b
"""


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
@pytest.mark.parametrize("interval", [89])
def test_window_faults_under_a_fast_periodic_timer_take_the_same_interrupts_as_on_bare(tmp_path, paging, interval):
    """A loop of window faults (load, store, zero-based) and checked RAM
    accesses borrowing every scratch register, with a periodic timer every
    `interval` instructions and interrupts on: the interrupts land inside
    the window checks (a register borrowed), prologues and callouts, and
    each must be taken at the bare machine's instruction (the same count
    and sum of epcs), with every register and sum intact: exact virtual
    time and the spill put back."""
    bare, bt = both(build(tmp_path, TIMER_MAIN, paging, extra=TIMER_DATA, timer=interval, quiet=1))
    sums = re.search(r"sums (\S+) (\S+) (\S+) faults", bare.output)
    assert sums is not None, bare.output
    assert [int(value, 16) for value in sums.groups()] == [(TIMER_ROUNDS * value) & 0xFFFFFFFF for value in
                                                            (SENTINEL, 0x7E27E27E, 0x7E27E27E)]
    ticks = re.search(r"ticks (\d+) epc sum", bare.output)
    assert ticks is not None and int(ticks.group(1)) > 100, bare.output
    assert f"traps {4 * TIMER_ROUNDS}\n" in bare.output
    assert f"calls={TIMER_ROUNDS + (TIMER_ROUNDS // 2) * 0x101:#010x}" in bare.output
    assert_as_on_bare(bare, bt)


# --- user mode touching the window -------------------------------------------------------------------

USER_MAIN = r"""
        print   "case user lw 0xfffff000\n"
        la      ra, 2f                  # the syscall comes back here, in kernel mode
        la      t0, user_code
        mtcr    epc, t0
        li      t0, STATUS_KM | USER_PIE
        mtcr    status, t0
        rfe
2:      snap
        print   "case user back\n"
        rdsr    s0
        show    "status"
"""
USER_CODE = r"""
        .text
        .balign 16
user_code:
        li      t1, SENTINEL
        li      t0, 0xFFFFF000
        la      s3, 1f
1:      lw      t1, 0(t0)
        la      s3, 1f
1:      sw      t1, -4(t0)              # 0xFFFFEFFC: the TC's last word
        la      s3, 1f
1:      lw      t2, 0x24(t0)
        li      s3, 0
        syscall
"""


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
@pytest.mark.parametrize("interrupts", [False, True], ids=["ie-0-translated", "ie-1-direct"])
def test_user_mode_access_to_the_window_faults_as_on_bare(tmp_path, paging, interrupts):
    """Guest user code (run translated under bt with its virtual IE = 0,
    directly with IE = 1) loading and storing in the window: bare's fault
    (bus error / not-present user fault), the register kept."""
    main = USER_MAIN.replace("USER_PIE", str(8 if interrupts else 0))
    bare, bt = both(build(tmp_path, main, paging, extra=USER_CODE, user=True))
    assert_as_on_bare(bare, bt)
    read, write = (PF_USER_READ, PF_USER_WRITE) if paging else (BUS, BUS)
    lines = transcript_cases(bare.output)["user lw 0xfffff000"]
    assert lines[:3] == [trap_line((read, 0xFFFFF000, "probe")), trap_line((write, 0xFFFFEFFC, "probe")),
                         trap_line((read, 0xFFFFF024, "probe"))], lines
    assert f"t1={hexs(SENTINEL)}" in lines[-1], lines


# --- 4. pointing a PTE at it ----------------------------------------------------------------------

BOGUS_FRAMES = (0x01000000, 0x01001000, 0x04000000, 0x0FFFF000, 0xEFFFF000, 0xF0005000, 0xFFFE0000,
                0xFFFFF000)


def pte_setup(index: int, entry: int) -> str:
    return "\n".join([
        "        la      t0, pt_extra",
        f"        li      t1, {entry:#x}",
        f"        sw      t1, {4 * index}(t0)",
        "        tlbflush",
        f"        li      t0, {EXTRA_BASE + index * 4096:#x}",
        "        li      t1, SENTINEL"])


def bogus_pte_cases() -> list[Case]:
    cases = []
    for index, frame in enumerate(BOGUS_FRAMES):
        va = EXTRA_BASE + index * 4096
        setup = pte_setup(index, frame | 0x3)
        cases += [Case(f"lw via pte -> {frame:#010x}", setup, "lw      t1, 8(t0)", (BUS, va + 8, "probe"),
                       {"t1": SENTINEL}),
                  Case(f"sw via pte -> {frame:#010x}", setup, "sw      t1, 12(t0)", (BUS, va + 12, "probe")),
                  Case(f"jalr via pte -> {frame:#010x}", setup, "jalr    ra, t0, 0", (BUS, va, hexs(va)))]
    # an MMIO page (the UART) is no place to fetch from either
    cases.append(Case("jalr via pte -> uart", pte_setup(len(BOGUS_FRAMES), 0xF0000003), "jalr    ra, t0, 0",
                      (BUS, EXTRA_BASE + len(BOGUS_FRAMES) * 4096, hexs(EXTRA_BASE + len(BOGUS_FRAMES) * 4096))))
    return cases


def test_ptes_naming_frames_beyond_guest_ram_give_bus_errors_as_on_bare(tmp_path):
    """A guest PTE whose frame is beyond its RAM (where the VMM's machine
    frames, the TC's among them, could be; frames equal to the TC's and
    the virtual CPU page's addresses; past the devices): loads, stores and
    fetches through it raise the bare machine's bus error (badaddr the
    virtual address) and reach nothing."""
    cases = bogus_pte_cases()
    bare, bt = both(build(tmp_path, case_code(cases), True))
    check_cases(bare.output, cases)
    assert_as_on_bare(bare, bt)


WINDOW_MAP_MAIN = r"""
        la      t0, page_dir            # PDE 1023 -> pt_top: 0xFFC00000, 0xFFFE0000 and 0xFFFFF000 -> window_page
        la      t1, pt_top
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 4092(t0)
        la      t0, pt_top
        la      t1, window_page
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)
        sw      t1, 0xF80(t0)
        sw      t1, 0xFFC(t0)
        tlbflush
@CASES@
        print   "case window_page after\n"
        preset
        la      t0, window_page
        lw      t1, 12(t0)              # what the store to 0xFFFFF00C left in the guest's page
        snap
"""
WINDOW_PAGE = r"""
        .text
        .balign 4096
window_page:
        li      a0, 0x77                # window_page + 0: code
        ret
        .word   0x600DF00D              # + 8: data
        .word   0x0                     # + 12: the store's target
        .balign 4096
"""


def window_map_cases(bt: bool) -> list[Case]:
    def trap(cause, address, epc="probe"):
        return (cause, address, epc) if bt else None
    return [
        Case("lw 0xfffe0008", address_setup(0xFFFE0000), "lw      t1, 8(t0)", trap(PF_READ, 0xFFFE0008),
             {"t1": SENTINEL if bt else 0x600DF00D}),
        Case("lw 0xffc00008", address_setup(0xFFC00000), "lw      t1, 8(t0)", trap(PF_READ, 0xFFC00008),
             {"t1": SENTINEL if bt else 0x600DF00D}),
        Case("lw 0xfffff008", address_setup(0xFFFFF000), "lw      t1, 8(t0)", trap(PF_READ, 0xFFFFF008),
             {"t1": SENTINEL if bt else 0x600DF00D}),
        Case("lw -131064(zero)", "", "lw      t1, -131064(zero)", trap(PF_READ, 0xFFFE0008),
             {"t1": SENTINEL if bt else 0x600DF00D}),
        Case("sw 0xfffff00c", address_setup(0xFFFFF000), "sw      t1, 12(t0)", trap(PF_WRITE, 0xFFFFF00C)),
        Case("jalr 0xfffe0000", address_setup(0xFFFE0000), "jalr    ra, t0, 0",
             trap(PF_FETCH, 0xFFFE0000, hexs(0xFFFE0000)), {"a0": 0xA0A0A0A0 if bt else 0x77}),
    ]


def test_guest_mapping_of_the_window_is_ignored_under_bt_the_documented_exception(tmp_path):
    """THE DOCUMENTED EXCEPTION (bt/layout.py, docs/vmm.md "The VMM window"):
    a guest PTE mapping a window address (0xFFFE0000, 0xFFFFF000, 0xFFC00000
    -> one of its own RAM pages) works on bare, but under bt the window is
    the VMM's: every load, store and fetch there is a not-present kernel
    fault as if nothing were mapped, the loaded register keeps its value,
    the guest's page is not written, and the guest goes on to the end with
    the same exit code."""
    cases = window_map_cases(bt=False)
    image = build(tmp_path, WINDOW_MAP_MAIN.replace("@CASES@", case_code(cases)), True, extra=WINDOW_PAGE)
    bare, bt = both(image)
    check_cases(bare.output, cases)
    check_cases(bt.output, window_map_cases(bt=True))
    assert f"t1={hexs(SENTINEL)}" in transcript_cases(bare.output)["window_page after"][-1]
    assert f"t1={hexs(0)}" in transcript_cases(bt.output)["window_page after"][-1]
    assert bare.exit_code == bt.exit_code == EXIT_CODE
    assert bare.output.endswith("done\n") and bt.output.endswith("done\n")
    assert bare.output.count("  trap ") == 0 and bt.output.count("  trap ") == len(cases)


# --- 5. self-modifying kernel code -------------------------------------------------------------------

def li_a0(value: int) -> int:
    return op("addi", rd=4, rs1=0, imm=value)


SMC_MAIN = rf"""
        # (a) a function, translated by its first call, then patched: li a0, 1 -> li a0, 2
        call    smc_f
        mov     s0, a0
        show    "first"
        la      t0, smc_f
        li      t1, {li_a0(2):#x}
        sw      t1, 0(t0)
        call    smc_f
        mov     s0, a0
        show    "patched"

        # (b) the very next instruction of the same block, written before it is reached
        la      t0, 1f
        li      t1, {li_a0(3):#x}
        li      a0, 0
        sw      t1, 0(t0)
1:      li      a0, 1
        mov     s0, a0
        show    "next"

        # (c) a loop whose body rewrites itself after running: 1 + 16 + 16
        li      s0, 0
        li      s1, 3
        la      t0, 2f
        li      t1, {op("addi", rd=12, rs1=12, imm=16):#x}
2:      addi    s0, s0, 1
        sw      t1, 0(t0)
        addi    s1, s1, -1
        bnez    s1, 2b
        show    "loop"

        # (d) a loop writing the instruction ahead of it each time: 1 + 2 + 3 + 4
        li      s0, 0
        li      s1, 1
        la      t0, 4f
3:      li      t1, {op("addi", rd=12, rs1=12, imm=0):#x}
        or      t1, t1, s1
        sw      t1, 0(t0)
4:      addi    s0, s0, 1000            # overwritten just before each run
        addi    s1, s1, 1
        li      t2, 5
        bne     s1, t2, 3b
        show    "ahead"

        # (e) a byte store into an instruction's immediate: li a0, 1 -> li a0, 0x55
        call    smc_g
        la      t0, smc_g
        li      t1, 0x55
        sb      t1, 0(t0)
        call    smc_g
        mov     s0, a0
        show    "byte"

        # (f) a plain instruction patched into a sensitive one: li a0, 9 -> rdsr a0
        call    smc_h
        la      t0, smc_h
        li      t1, {op("rdsr", rd=4):#x}
        sw      t1, 0(t0)
        call    smc_h
        mov     s0, a0
        show    "rdsr"

        # (g) a debugger's breakpoint in translated code: the handler puts the
        # instruction back and returns to it
        call    smc_k
        la      t0, smc_k
        lw      t1, 0(t0)
        la      t2, bp_orig
        sw      t1, 0(t2)
        li      t1, {op("break"):#x}
        sw      t1, 0(t0)
        call    smc_k
        mov     s0, a0
        show    "breakpoint"
        call    smc_k
        mov     s0, a0
        show    "again"

        # (j) a function across a page boundary, patched on each page after it ran
        call    smc_x
        mov     s0, a0
        show    "across"
        la      t0, smc_x2
        li      t1, {op("addi", rd=4, rs1=4, imm=0x40):#x}
        sw      t1, 0(t0)
        call    smc_x
        mov     s0, a0
        show    "second page"
        la      t0, smc_x2
        li      t1, {op("addi", rd=4, rs1=4, imm=0x20):#x}
        sw      t1, -4(t0)
        call    smc_x
        mov     s0, a0
        show    "first page"

        .if PAGING
        # (h) written through another virtual address of the same frame
        call    smc_m
        la      t0, smc_m
        srli    t1, t0, 12
        slli    t1, t1, 12
        ori     t1, t1, PTE_P | PTE_W
        la      t2, pt_extra
        sw      t1, 0(t2)
        tlbflush
        li      t1, {EXTRA_BASE:#x}
        andi    t0, t0, 0xFFF
        or      t0, t0, t1
        li      t1, {li_a0(0x4A):#x}
        sw      t1, 0(t0)
        call    smc_m
        mov     s0, a0
        show    "alias"

        # (i) an overlay: the same virtual page remapped to another frame
        la      t1, overlay_a
        ori     t1, t1, PTE_P | PTE_W
        la      t2, pt_extra
        sw      t1, 4(t2)
        tlbflush
        li      t0, {EXTRA_BASE + 4096:#x}
        jalr    ra, t0, 0
        mov     s0, a0
        show    "overlay_a"
        la      t1, overlay_b
        ori     t1, t1, PTE_P | PTE_W
        la      t2, pt_extra
        sw      t1, 4(t2)
        li      t0, {EXTRA_BASE + 4096:#x}
        tlbinv  t0
        jalr    ra, t0, 0
        mov     s0, a0
        show    "overlay_b"
        .endif
"""
SMC_CODE = r"""
        .text
smc_f:  li      a0, 1
        ret
smc_g:  li      a0, 1
        ret
smc_h:  li      a0, 9
        ret
smc_k:  li      a0, 0x6B
        ret
smc_m:  li      a0, 0x4D
        ret
        .balign 4096
        .space  4088
smc_x:  li      a0, 1                   # the last two words of a page
        addi    a0, a0, 2
smc_x2: addi    a0, a0, 4               # the first two of the next
        ret
        .balign 4096
overlay_a:
        li      a0, 0xAA
        ret
        .balign 4096
overlay_b:
        li      a0, 0xBB
        ret
        .balign 4096
"""
SMC_EXPECTED = ["first=0x00000001", "patched=0x00000002", "next=0x00000003", "loop=0x00000021",
                "ahead=0x0000000a", "byte=0x00000055", "rdsr=0x00000001",
                f"trap cause={BREAKPOINT:#010x}", "breakpoint=0x0000006b", "again=0x0000006b",
                "across=0x00000007", "second page=0x00000043", "first page=0x00000061"]
SMC_PAGING_EXPECTED = ["alias=0x0000004a", "overlay_a=0x000000aa", "overlay_b=0x000000bb"]


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
def test_self_modifying_kernel_code_runs_the_new_instructions_as_on_bare(tmp_path, paging):
    """Kernel code modified after it was translated: a patched function
    returns its new value; an instruction written just before it is reached
    (the same block) runs as written; a loop rewriting its own body and one
    rewriting the instruction ahead; a byte store into an immediate; a plain
    instruction made sensitive (rdsr: the virtual status); a debugger's
    break put in and taken out by the handler; with paging, a write through
    an alias mapping and a remapped code page (overlay)."""
    bare, bt = both(build(tmp_path, SMC_MAIN, paging, extra=SMC_CODE))
    lines = [line.strip() for line in bare.output.splitlines()]
    expected = SMC_EXPECTED + (SMC_PAGING_EXPECTED if paging else [])
    shown = [line for line in lines if "=" in line and not line.startswith("at=")]
    assert [line.split(" badaddr")[0] for line in shown] == expected, bare.output
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_invalidations"] >= 8


PT_CODE_ROUNDS = 6
PT_CODE_MAIN = rf"""
        la      t0, pt_extra            # pt_extra[0] -> pt_data; a use makes the shadow trace pt_extra
        la      t1, pt_data
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)
        tlbflush
        li      t0, {EXTRA_BASE:#x}
        lw      t1, 0(t0)
        la      s1, pt_extra            # code in the page table's upper half (PTE slots never used)
        addi    s1, s1, 0x800
        li      t1, {op("jalr", rd=0, rs1=1, imm=0):#x}
        sw      t1, 4(s1)
        li      t1, {li_a0(0x10):#x}
        sw      t1, 0(s1)
        jalr    ra, s1, 0
        mov     s0, a0
        show    "first"
        li      s2, 1
2:      li      t1, {li_a0(0):#x}
        or      t1, t1, s2
        sw      t1, 0(s1)               # the same store each round: the code, in a traced page table
        la      t0, pt_extra            # and a real PTE change in that table
        la      t2, pt_data
        ori     t2, t2, PTE_P | PTE_W
        sw      t2, 4(t0)
        li      t0, {EXTRA_BASE + 4096:#x}
        tlbinv  t0
        sw      s2, 0(t0)               # through the new PTE
        jalr    ra, s1, 0               # the code as written this round
        mov     s0, a0
        show    "round"
        addi    s2, s2, 1
        li      t0, {PT_CODE_ROUNDS + 1}
        bne     s2, t0, 2b
        la      t0, pt_data
        lw      s0, 0(t0)
        show    "pt_data"
"""
PT_CODE_DATA = r"""
        .bss
        .balign 4096
pt_data:        .space 4096
"""


@pytest.mark.parametrize("shadow_opt", ["all", "none"])
def test_code_in_a_traced_page_table_frame_rewritten_each_round_runs_as_written(tmp_path, shadow_opt):
    """Kernel code living in the unused half of one of its own page tables
    (traced by the shadow pager), rewritten from the same store every round
    (a traced page-table write: emulated by the VMM, and, once it kept
    trapping, adaptively retranslated as a ptwrite callout), next to real
    PTE changes in that table: each round runs the code as just written."""
    image = build(tmp_path, PT_CODE_MAIN, True, extra=PT_CODE_DATA)
    bare = run_guest(image, "bare")
    bt = run_guest(image, "shadow", *BT, "--shadow-opt", shadow_opt)
    assert_healthy(bt)
    shown = [line.strip() for line in bare.output.splitlines() if "=" in line]
    assert shown == ["first=0x00000010", *(f"round={round_:#010x}" for round_ in range(1, PT_CODE_ROUNDS + 1)),
                     f"pt_data={PT_CODE_ROUNDS:#010x}"], bare.output
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_invalidations"] >= PT_CODE_ROUNDS
    if shadow_opt == "none":                      # every write to the table traps: the store was adapted
        assert bt_counters(bt).get("bt_callout_ptwrite", 0) >= 1


USER_SMC_MAIN = r"""
        call    smc_u                   # translated in kernel mode
        mov     s0, a0
        show    "kernel"
        la      ra, 2f                  # the user's syscall comes back here
        la      t0, user_patch
        mtcr    epc, t0
        li      t0, STATUS_KM | USER_PIE
        mtcr    status, t0
        rfe
2:      call    smc_u
        mov     s0, a0
        show    "after the user's store"
"""
USER_SMC_CODE = rf"""
        .text
smc_u:  li      a0, 0x11
        ret
user_patch:
        la      t0, smc_u
        li      t1, {li_a0(0x99):#x}
        sw      t1, 0(t0)
        li      s3, 0
        syscall
"""


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
@pytest.mark.parametrize("interrupts", [False, True], ids=["ie-0-translated", "ie-1-direct"])
def test_user_store_into_translated_kernel_code_is_seen_by_the_kernel_as_on_bare(tmp_path, paging, interrupts):
    """User code (translated with IE = 0, direct with IE = 1) overwrites a
    kernel function the kernel ran (so translated) before: the kernel's next
    call runs the new instruction."""
    main = USER_SMC_MAIN.replace("USER_PIE", str(8 if interrupts else 0))
    bare, bt = both(build(tmp_path, main, paging, extra=USER_SMC_CODE, user=True))
    assert "kernel=0x00000011\n" in bare.output and "after the user's store=0x00000099\n" in bare.output
    assert_as_on_bare(bare, bt)


TINY_TC_PAGES = 1


@pytest.mark.parametrize("guest", ["self-modifying", "timer"])
def test_with_a_one_page_translation_cache_flushed_all_the_time_hostile_kernels_run_as_on_bare(
        tmp_path, monkeypatch, guest):
    """The translation cache shrunk to one page (its flush-when-full limit,
    bt/cache.py TC_END), so it is flushed every few blocks, in the middle of
    chains, callouts and self-modifying code: the self-modifying kernel and
    the window faults under a fast timer still run as on bare."""
    from vmm.monitor.bt import cache
    monkeypatch.setattr(cache, "TC_END", cache.TC_BASE + TINY_TC_PAGES * 4096)
    if guest == "self-modifying":
        image = build(tmp_path, SMC_MAIN, True, extra=SMC_CODE)
    else:
        image = build(tmp_path, TIMER_MAIN, True, extra=TIMER_DATA, timer=101, quiet=1)
    bare, bt = both(image)
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_tc_flushes"] >= 1


# --- 6. a trap vector in the window ----------------------------------------------------------------

TVEC_GUEST = r"""
        .include "kernel.inc"
        .text
        .globl _start
_start:
        la      sp, stack_top
        .if PAGING
        fill_table pt_low, PTE_P | PTE_W, 1024
        fill_table pt_mmio, UART_TX | PTE_P | PTE_W, MMIO_PAGES
        la      t0, page_dir
        la      t1, pt_low
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, 0(t0)
        la      t1, pt_mmio
        ori     t1, t1, PTE_P | PTE_W
        sw      t1, PDE_MMIO(t0)
        ori     t0, t0, PTB_ENABLE
        mtcr    ptb, t0
        .endif
        li      t0, TVEC
        mtcr    tvec, t0
        print   "armed\n"
        .if LOAD
        li      t0, 0xFFFFF000
        lw      t1, 0(t0)
        .else
        syscall
        .endif
        print   "survived\n"
        li      a0, 1
        j       power_off

        .bss
        .balign 4096
page_dir:       .space 4096
pt_low:         .space 4096
pt_mmio:        .space 4096
stack:          .space 256
stack_top:
"""


def stop_message(stderr: str) -> str:
    """The machine's reason for stopping the guest (the triple-fault line)."""
    found = re.search(r"triple fault: [^\n(]*", stderr)
    assert found is not None, stderr
    return found.group(0).strip()


@pytest.mark.parametrize("paging", [False, True], ids=["paging-off", "paging-on"])
@pytest.mark.parametrize("tvec", [0xFFFE0000, 0xFFFFF000, 0xFFC00000], ids=hex)
@pytest.mark.parametrize("trigger", ["syscall", "window-load"])
def test_trap_vector_in_the_window_stops_the_guest_with_a_triple_fault_as_on_bare(tmp_path, paging, tvec, trigger):
    """tvec set to the TC / the virtual-CPU page / the reserved window, then
    a trap (a syscall, or a load from the window): fetching the trap vector
    faults, a triple fault: the VM stops with 125 on both, the same reason,
    and nothing after the trap runs."""
    source = TVEC_GUEST
    obj = assemble(source, "tvec.s", {"PAGING": int(paging), "TVEC": tvec, "LOAD": int(trigger != "syscall")},
                   [str(GUESTS)])
    image = tmp_path / "tvec.elf"
    image.write_bytes(link([obj], LinkOptions(text_address=TEXT_ADDRESS)))
    bare, bt = both(image)
    assert bare.exit_code == bt.exit_code == EXIT_STOPPED, (bare.stderr, bt.stderr)
    assert bare.output == bt.output == "armed\n"
    message = stop_message(bare.stderr)
    assert "fetching the trap vector" in message and f"{tvec:#010x}" in message, message
    assert stop_message(bt.stderr) == message


PTB_GUEST = r"""
        .include "kernel.inc"
        .text
        .globl _start
_start:
        la      t0, handler
        mtcr    tvec, t0
        print   "armed\n"
        li      t0, PTB
        mtcr    ptb, t0                 # the next fetch walks a directory that is no RAM
        print   "survived\n"
        li      a0, 1
        j       power_off
handler:
        print   "handler\n"
        li      a0, 2
        j       power_off
"""


@pytest.mark.parametrize("ptb", [0xFFFE0001, 0xFFFFF001, 0x01000001], ids=hex)
def test_ptb_naming_the_tc_address_or_a_frame_beyond_ram_stops_the_guest_as_on_bare(tmp_path, ptb):
    """The guest points its page-directory base at the TC's or the virtual
    CPU page's address, or just beyond its RAM: the next fetch's walk reads
    no RAM (a bus error), and so does the trap vector's: a triple fault,
    125, the same reason on both, nothing more printed."""
    obj = assemble(PTB_GUEST, "ptb.s", {"PTB": ptb}, [str(GUESTS)])
    image = tmp_path / "ptb.elf"
    image.write_bytes(link([obj], LinkOptions(text_address=TEXT_ADDRESS)))
    bare, bt = both(image)
    assert bare.exit_code == bt.exit_code == EXIT_STOPPED, (bare.stderr, bt.stderr)
    assert bare.output == bt.output == "armed\n"
    assert stop_message(bt.stderr) == stop_message(bare.stderr)


def vm_lines(output: str, name: str) -> str:
    prefix = f"[{name}] "
    return "".join(line.removeprefix(prefix) + "\n" for line in output.splitlines() if line.startswith(prefix))


def test_a_hostile_bt_vm_beside_a_self_modifying_bt_vm_each_runs_as_alone_on_bare(tmp_path):
    """Two binary-translated VMs side by side, their TCs at the same guest
    addresses: one storing into its window all the time, the other
    rewriting its own code; each prints exactly its bare transcript and
    ends with its own exit code."""
    from click.testing import CliRunner
    from vmm.cli import run as run_command
    hostile = build(tmp_path, case_code(store_cases(True)), True, name="hostile")
    smc = build(tmp_path, SMC_MAIN, True, name="smc", extra=SMC_CODE)
    result = CliRunner().invoke(run_command, ["--vm", f"{hostile},paging=shadow,cpu=bt,name=h",
                                              "--vm", f"{smc},paging=shadow,cpu=bt,name=s",
                                              "--max-instructions", "20000000", "--input-text", ""])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "internal VMM error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    output = result.stdout_bytes.decode("utf-8", "replace")
    for name, image in (("h", hostile), ("s", smc)):
        assert vm_lines(output, name) == run_guest(image, "bare").output, name
        assert f"kite: {name}: exit code {EXIT_CODE} (done)" in result.stderr, result.stderr
    assert result.exit_code == EXIT_CODE


DMA_MAIN = r"""
        call    dma_code                # translated
        mov     s0, a0
        show    "before"
        li      t0, 0xF0002000          # the disk: sector 0 -> dma_code, by DMA
        sw      zero, 0x00(t0)
        la      t1, dma_code
        sw      t1, 0x04(t0)
        li      t1, 1
        sw      t1, 0x08(t0)
        sw      t1, 0x0C(t0)            # CMD_READ
1:      lw      t1, 0x10(t0)
        andi    t2, t1, 4               # DONE
        beqz    t2, 1b
        sw      zero, 0x1C(t0)
        mov     s0, t1
        show    "status"
        call    dma_code                # the code the disk wrote
        mov     s0, a0
        show    "after"
"""
DMA_CODE = r"""
        .text
        .balign 512
dma_code:
        li      a0, 1
        ret
        .balign 512
"""


def test_dma_from_the_disk_over_translated_kernel_code_runs_the_new_code_as_on_bare(tmp_path):
    """A disk read (DMA) lands on kernel code that was translated: the next
    call runs the instructions the disk wrote."""
    disk = tmp_path / "disk.img"
    disk.write_bytes((li_a0(0x2D).to_bytes(4, "little") + op("jalr", rd=0, rs1=1, imm=0).to_bytes(4, "little"))
                     .ljust(512, b"\0"))
    image = build(tmp_path, DMA_MAIN, False, extra=DMA_CODE)
    bare = run_guest(image, "bare", "--disk", str(disk), "--disk-readonly")
    bt = run_guest(image, "shadow", *BT, "--disk", str(disk), "--disk-readonly")
    assert_healthy(bt)
    assert "before=0x00000001\n  status=0x00000004\n  after=0x0000002d\n" in bare.output, bare.output + bare.stderr
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_invalidations"] >= 1


ADAPTED_STORE_MAIN = r"""
        la      t0, page_dir
        addi    t0, t0, 8               # PDE 2, unused: each store is a traced page-table write
        li      t1, 0
        li      t2, 6
loop:
        addi    t2, t2, -1
        li      t3, 1
        bne     t2, t3, 2f
        li      t0, 0xFFFFF000          # the last round: the VMM's virtual CPU page
2:
        la      s3, 1f
1:      sw      t1, 0(t0)
        bnez    t2, loop
        li      s3, 0
"""


@pytest.mark.parametrize("shadow_opt", ["all", "none"])
def test_a_store_adapted_for_page_table_writes_still_faults_in_the_window_as_on_bare(tmp_path, shadow_opt):
    """The store keeps trapping as a traced page-table write, so it is
    retranslated as a ptwrite callout (which replaces its window check);
    then its base moves to the virtual CPU page: the bare machine's
    not-present fault, both times, and the page is not written."""
    image = build(tmp_path, ADAPTED_STORE_MAIN, True)
    bare = run_guest(image, "bare")
    bt = run_guest(image, "shadow", *BT, "--shadow-opt", shadow_opt)
    assert_healthy(bt)
    assert bare.output.count(f"trap cause={PF_WRITE:#010x} badaddr=0xfffff000") == 2, bare.output
    assert_as_on_bare(bare, bt)
    assert bt_counters(bt)["bt_adaptive_retranslations"] >= 1

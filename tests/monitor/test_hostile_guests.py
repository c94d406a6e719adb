"""Hostile guests against the VMM's isolation boundary: one test per hole a review found.

The standard (docs/vmm.md, "What a hostile guest can do"): a hostile guest can
crash only itself, never the VMM or another VM; every PTE a guest can
influence is validated or derived; every guest-supplied address is checked.
Each test below runs a tiny hostile guest (tests/monitor/hostile/*.s) end to
end through `kite run` and asserts what that standard promises.  Each one
failed before its fix; the docstrings say what the hole was.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.isa import EXC_BUS_ERROR
from asm.linker import LinkOptions, link
from vmm.cli import run
from vmm.monitor import paging
from vmm.monitor.hypercall_abi import EINVAL

HOSTILE = Path(__file__).resolve().parent / "hostile"
PV_GUESTS = Path(__file__).resolve().parent / "pvguests"
VMM_FRAMES = 16
PAGE = 4096


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(name, **defines) -> the image of hostile/NAME.s linked at 0x100000."""
    out = tmp_path_factory.mktemp("hostile")

    def _build(name: str, **defines: int) -> str:
        source = HOSTILE / f"{name}.s"
        obj = assemble(source.read_text(), str(source), defines, [str(HOSTILE), str(PV_GUESTS)])
        image = out / f"{name}-{'-'.join(f'{k}{v}' for k, v in sorted(defines.items()))}.elf"
        image.write_bytes(link([obj], LinkOptions(text_address=0x100000)))
        return str(image)
    return _build


def kite(*arguments: str):
    """`kite run ARGUMENTS` in-process; a Python exception escaping the VMM is
    kept in result.exception (a SystemExit is only the exit status)."""
    return CliRunner().invoke(run, [str(argument) for argument in arguments])


def vmm_survived(result) -> bool:
    return result.exception is None or isinstance(result.exception, SystemExit)


def lines_of(result, vm: str) -> str:
    prefix = f"[{vm}] "
    return "".join(line.removeprefix(prefix) for line in result.stdout_bytes.decode("utf-8", "replace")
                   .splitlines(keepends=True) if line.startswith(prefix))


# --- 1. direct mode: the emulator re-fetches a DIFFERENT instruction (stale TLB) ---------------

@pytest.mark.parametrize("victim", ["VICTIM_MMIO", "VICTIM_PRIVILEGED"])
def test_stale_tlb_refetch_of_a_non_emulable_instruction_must_not_crash_the_vmm(build, victim):
    """A direct-mode guest remaps its own code page with a legal mmu_update and
    does not flush (allowed: "a changed entry is not seen until a flush").  The
    CPU runs the next instruction from the OLD frame through the stale TLB
    (`lw` from the UART page, or `ei`) and exits; emulate.mmio / emulate.privileged
    re-fetch "it" through the guest's CURRENT tables, decode a `nop` (addi),
    and index LOAD_WIDTHS['addi'] / EMULATORS['addi']: KeyError escapes
    Monitor.exit, the whole VMM dies, and the innocent VM b never runs."""
    attacker, bystander = build("refetch", **{victim: 1}), build("bystander")
    result = kite("--vm", f"{attacker},paging=direct,mem=2M,name=a",
                  "--vm", f"{bystander},paging=shadow,mem=2M,name=b")
    assert vmm_survived(result), f"the VMM crashed: {result.exception!r}"
    assert lines_of(result, "b") == "bystander alive\n"
    assert "b: exit code 0 (done)" in result.stderr


# --- 2. direct mode: hypercall buffers are walked past 2^32: a write into an L1 -----------------

def test_console_read_buffer_wrapping_past_4g_cannot_write_a_page_table(build, tmp_path):
    """hypercalls._console_read walks gva = buf + index with no wrap at 2^32.
    GuestTables.walk then takes pdx = 1024, reads its "PDE" from the frame AFTER
    the kernel root and its "PTE" from ordinary guest data, so a direct-mode
    guest gets the VMM to store console input into its own bootstrap L1 (never
    writable to it).  It maps VM b's frame, reads b's secret and overwrites it:
    cross-VM read and write.  (It puts the entry back the same way so that the
    direct-mode teardown, which would otherwise KeyError, stays quiet.)"""
    attacker, victim = build("wrap"), build("victim")
    attacker_frames = (4 << 20) // PAGE
    victim_mfn = VMM_FRAMES + attacker_frames + (0x100000 // PAGE)   # b's gpa 0x100000

    def entry(mfn: int) -> bytes:
        return struct.pack("<I", mfn << 12 | 7)
    console = tmp_path / "input.bin"
    console.write_bytes(b"AAAA" + entry(VMM_FRAMES) + entry(VMM_FRAMES + 1) + entry(victim_mfn)
                        + b"AAAA" + entry(VMM_FRAMES) + entry(VMM_FRAMES + 1) + entry(VMM_FRAMES + 2))
    result = kite("--vm", f"{attacker},paging=direct,mem=4M,name=a",
                  "--vm", f"{victim},paging=shadow,mem=2M,name=b", "--input", console)
    a, b = lines_of(result, "a"), lines_of(result, "b")
    assert "odd root" not in a, "layout changed: the attack guest needs an even L2 frame"
    assert "SECRET-OF-VM-B" not in a, f"VM a read VM b's memory:\n{a}"
    assert b == "SECRET-OF-VM-B\n", f"VM a wrote VM b's memory:\n{b}"


# --- 3. console_read has no length limit: one hypercall keeps the VMM busy for hours -------------

def test_console_read_with_a_huge_length_is_refused_without_walking_every_byte(build, monkeypatch):
    """_console_read (unlike console_write, capped at CONSOLE_WRITE_MAX) builds
    the list of `length` translated addresses BEFORE looking at the input, for
    any length: 0xFFFFFFFF means 2^32 software walks and a list of 2^32 ints in
    one exit (hours, then MemoryError).  The guard below stops the run after
    100,000 walks instead of waiting."""
    limit = 100_000

    class CountingTables(paging.GuestTables):
        walks = 0

        def walk(self, *args, **kwargs):
            CountingTables.walks += 1
            if CountingTables.walks > limit:
                raise RuntimeError(f"over {limit} guest walks for one hypercall: the VMM is stuck")
            return super().walk(*args, **kwargs)
    monkeypatch.setattr(paging, "GuestTables", CountingTables)
    result = kite("--paging", "shadow", "--mem", "4M", "--input-text", "x", build("bigread"))
    assert vmm_survived(result), f"{result.exception!r}"
    assert result.exit_code == -EINVAL & 0xFF, result.stderr      # the guest powers off with the result


# --- 4. the shadow-table pool is shared and unbounded per VM ---------------------------------------

@pytest.mark.parametrize("regions,what", [(1018, "the other VM crashes"), (1019, "the VMM crashes")])
def test_one_vm_cannot_exhaust_the_shadow_pool_for_the_others(build, regions, what):
    """VM a (shadow, 8 MiB) makes its PD name 1019 distinct page-table frames and
    touches one address under each: every hidden fault costs one frame of the
    4 MiB pool that ALL shadow VMs share, with no per-VM quota and no reclaim
    (docs/shadow.md: "Nothing here reclaims frames under pressure").  a stays
    alive, holding the pool.  With one frame left, VM b's first shadow PT fails
    and b is the one stopped ("out of machine memory"); with none left,
    switching to b builds b's first root inside Monitor._resume, outside the
    OutOfFrames handler of Monitor.exit, and the VMM itself dies."""
    hog, victim = build("hog", REGIONS=regions), build("victim")
    result = kite("--vm", f"{hog},paging=shadow,mem=8M,name=a",
                  "--vm", f"{victim},paging=shadow,mem=2M,name=b")
    assert vmm_survived(result), f"{what}: {result.exception!r}"
    assert lines_of(result, "b") == "SECRET-OF-VM-B\n", f"{what}: {result.stderr}"
    assert "b: exit code 0 (done)" in result.stderr


# --- 5. shadow mode: an instruction fetch from a device page stops the VM -------------------------

def test_fetch_from_a_device_page_is_a_bus_error_for_the_guest_not_a_vm_crash(build):
    """On the bare machine a fetch from a device page is the guest's bus-error
    exception.  ShadowPaging.page_fault classifies ANY access with gpa >=
    MMIO_BASE as MMIO, fetches included; emulate.mmio then cannot fetch the
    instruction (it is in the device page) and stops the whole VM.  A guest
    user program that can reach a device page (or jumps to one with guest
    paging off) thus kills its kernel, where the bare kernel would get a trap."""
    image = build("devfetch")
    bare = kite("--bare", "--mem", "2M", image)
    assert bare.exit_code == EXC_BUS_ERROR
    shadow = kite("--paging", "shadow", "--mem", "2M", image)
    assert "crashed" not in shadow.stderr and shadow.exit_code == EXC_BUS_ERROR, shadow.stderr


# --- 6. one VM's virtual timer drives the machine timer while the others run ----------------------

def test_a_vm_timer_cannot_force_a_vmm_exit_on_every_tick_of_the_other_vm(build, tmp_path):
    """VM a sets its virtual timer periodic with interval 1 (IE off: nothing is
    injected, the line just stays asserted).  Monitor._program_timer arms the
    machine timer for the earliest device event of EVERY live VM, and
    Timer.next_event keeps a periodic deadline even while its line is already
    asserted, so the machine takes a timer exit on every tick, also during VM
    b's slices: ~1 exit per instruction of b (a 40x slowdown of b measured at
    60,000 iterations), all of it unaccounted VMM work.  Without a there are a
    handful of machine timer interrupts (slice ends)."""
    stats = tmp_path / "stats.json"
    result = kite("--vm", f"{build('ticker')},paging=shadow,mem=2M,name=a",
                  "--vm", f"{build('worker')},paging=shadow,mem=2M,name=b", "--stats-json", stats)
    assert result.exit_code == 0, result.stderr
    figures = json.loads(stats.read_text())
    machine_timer_exits = figures["interrupts"]["timer"]
    assert machine_timer_exits < 100, (f"{machine_timer_exits} machine timer exits for "
                                       f"{figures['instructions']} instructions")

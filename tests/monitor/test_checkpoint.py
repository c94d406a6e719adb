"""Checkpoint and resume of a VM under shadow and direct paging, and of a VM with a
disk (docs/snapshot.md): invisible to the guest wherever the checkpoint falls; the
shadow tables are a cache, dropped and refilled by hidden faults; direct paging's
accounting is state, rebuilt through the validator and compared; a tampered
checkpoint is refused."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.isa import PAGE_SIZE, PTE_P, PTE_U
from kite.build import GUESTOS, build_all
from tests.machine.test_snapshot import rebuilt, with_state
from vmm.cli import resume, run
from vmm.launch import ATTACH
from vmm.machine.devices.disk import SECTOR_SIZE, Disk, DiskImage
from vmm.monitor.blkback import BlockBackend
from vmm.monitor.monitor import VMM_FRAMES

BUILD = GUESTOS / "build"
PINGPONG = ["--module", str(BUILD / "user-pingpong.elf"), "--module", str(BUILD / "user-pong.elf")]
KERNELS = {"shadow": str(BUILD / "kernel-native.elf"), "direct": str(BUILD / "kernel-pv.elf")}
WORKLOAD = ["--paging", "shadow", KERNELS["shadow"], *PINGPONG]
DIRECT_WORKLOAD = ["--paging", "direct", KERNELS["direct"], *PINGPONG]
POINTS = 20
DISK_SECTORS = 320          # guestos/workloads.toml's disktest: it writes and reads back sectors 0-255


def vm_figures(path: Path) -> dict:
    return json.loads(path.read_text())["vms"]["vm1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(output, exit code, the VM's figures) of the workload run without a stop."""
    build_all()
    stats = tmp_path_factory.mktemp("whole") / "stats.json"
    result = CliRunner().invoke(run, [*WORKLOAD, "--stats-json", str(stats)])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes, result.exit_code, vm_figures(stats)


def checkpoint_and_resume(tmp_path: Path, at: int, workload: list[str] = WORKLOAD,
                          disk: Path | None = None) -> tuple[bytes, int, dict, dict]:
    """Run `workload` to instruction `at`, write the checkpoint, resume it (on `disk`, if the
    workload has one): (both outputs joined, the resumed exit code, its VM's figures, the
    checkpoint's state)."""
    checkpoint, stats = tmp_path / f"{at}.ckpt", tmp_path / f"{at}.json"
    first = CliRunner().invoke(run, [*workload, "--checkpoint-at", str(at), "--checkpoint", str(checkpoint)])
    assert first.exit_code == 0 and f"checkpoint at instruction {at} written" in first.stderr, first.stderr
    with zipfile.ZipFile(checkpoint) as archive:
        state = json.loads(archive.read("state.json"))
    second = CliRunner().invoke(resume, [str(checkpoint), "--stats-json", str(stats),
                                         *(["--disk", str(disk)] if disk else [])])
    assert stats.exists(), second.stderr
    return first.stdout_bytes + second.stdout_bytes, second.exit_code, vm_figures(stats), state


@pytest.mark.slow
def test_resuming_a_shadow_vm_anywhere_is_invisible_and_its_shadow_refills(uninterrupted, tmp_path):
    """Twenty points spread over the run (among them the kernel's trap path and an interrupt line
    asserted, not yet taken): the same output, exit code and guest instructions; and more hidden
    faults than the uninterrupted run, since the resumed VM's shadow starts empty."""
    output, exit_code, whole = uninterrupted
    states = []
    for index in range(POINTS):
        at = max(1, whole["guest_instructions"] * index // POINTS + 7919 * index % 997)
        joined, code, figures, state = checkpoint_and_resume(tmp_path, at)
        assert (joined, code, figures["guest_instructions"]) == (output, exit_code, whole["guest_instructions"]), at
        assert figures["counters"]["hidden_faults"] > whole["counters"]["hidden_faults"], at
        states.append(state)
    assert any(state["vm"]["irq_pending"] for state in states)
    assert any(name.startswith("trap") for state in states for name in [symbol_at(state)])


@pytest.fixture(scope="module")
def uninterrupted_direct(tmp_path_factory):
    """(output, exit code, the VM's figures) of the workload under direct paging, run without a stop."""
    build_all()
    stats = tmp_path_factory.mktemp("whole-direct") / "stats.json"
    result = CliRunner().invoke(run, [*DIRECT_WORKLOAD, "--stats-json", str(stats)])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes, result.exit_code, vm_figures(stats)


@pytest.mark.slow
def test_resuming_a_direct_vm_anywhere_is_invisible_and_its_accounting_is_rebuilt(uninterrupted_direct, tmp_path):
    """Twenty points: eight over the boot (the PV kernel's is most of this run), twelve over the
    workload, where the trap path and pending interrupts are; the same output, exit code and guest
    instructions.  The frame types, pins and counts are state, not a cache: rebuilt through the
    validator, they give the resumed run exactly the uninterrupted run's direct-paging counters
    (the rebuild's own pins do not count).  Points after the boot find the per-vCPU page
    registered and held."""
    output, exit_code, whole = uninterrupted_direct
    boot, total = whole["phases"]["boot"]["guest_instructions"], whole["guest_instructions"]
    states = []
    for index in range(POINTS):
        at = max(1, boot * index // 8 if index < 8 else boot + (total - boot) * (index - 8) // 12)
        at += 7919 * index % 997
        joined, code, figures, state = checkpoint_and_resume(tmp_path, at, DIRECT_WORKLOAD)
        assert (joined, code, figures["guest_instructions"]) == (output, exit_code, whole["guest_instructions"]), at
        assert figures["counters"] == whole["counters"], at
        states.append(state)
    assert any(state["vm"]["irq_pending"] for state in states)
    assert any(name.startswith("trap") for state in states for name in [symbol_at(state)])
    assert any(state["direct"]["pvcpu"] is not None and state["direct"]["held"] for state in states)


def symbol_at(state: dict) -> str:
    pc = state["machine"]["cpu"]["pc"]
    names = [name for name, address in sorted(state["symbols"]["names"], key=lambda entry: entry[1])
             if address <= pc]
    return names[-1] if names else ""


@pytest.fixture(scope="module")
def good(uninterrupted, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.ckpt"
    CliRunner().invoke(run, [*WORKLOAD, "--checkpoint-at", "20000", "--checkpoint", str(path)])
    return path.read_bytes()


BAD = {
    "vcpu registers": (with_state(["vm", "vcpu"], [0] * 3), "field vm.vcpu"),
    "VM state": (with_state(["vm", "state"], "done"), "field vm.state"),
    "machine pc": (with_state(["machine", "cpu", "pc"], -1), "field machine.cpu.pc"),
    "a frame beyond the VM": (with_state(["frames"], [1 << 20]), "field frames"),
    "RAM smaller than the VM": (with_state(["machine", "mem_size"], 4096), "field machine.mem_size"),
    "unknown shadow counter": (with_state(["vm", "counters", "free_frames"], 1), "field vm.counters"),
    "exits not counts": (with_state(["vm", "exits", "mmio"], "many"), "field vm.exits"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_tampered_vm_checkpoint_is_refused_and_nothing_runs(good, tmp_path, kind):
    change, complaint = BAD[kind]
    path = tmp_path / "bad.ckpt"
    path.write_bytes(rebuilt(good, change))
    result = CliRunner().invoke(resume, [str(path)])
    assert result.exit_code == 2 and result.stdout_bytes == b"", result.stderr
    assert result.stderr.startswith(f"kite: error: {path}: ") and complaint in result.stderr, result.stderr


def test_a_nested_vm_is_taken_out_of_guest_mode_to_be_saved_and_its_nested_tables_are_rebuilt(tmp_path):
    """Under nested paging the checkpoint holds the VM's own state only: the VMM's nested tables and
    VMCS are rebuilt by the restore (there is no "direct" accounting either); the capture took the
    VM out of guest mode with a host-request exit, counted as such."""
    path, stats = tmp_path / "n.ckpt", tmp_path / "n.json"
    workload = ["--paging", "nested", KERNELS["shadow"], *PINGPONG]
    first = CliRunner().invoke(run, [*workload, "--checkpoint-at", "200000", "--checkpoint", str(path)])
    assert first.exit_code == 0, first.stderr
    with zipfile.ZipFile(path) as archive:
        state = json.loads(archive.read("state.json"))
    assert state["config"]["paging"] == "nested" and state["direct"] is None
    assert state["vm"]["counters"]["exits: host request"] == 1
    second = CliRunner().invoke(resume, [str(path), "--stats-json", str(stats)])
    assert second.exit_code == 0 and b"100 round trips" in first.stdout_bytes + second.stdout_bytes
    assert vm_figures(stats)["counters"]["vm_entries"] > state["vm"]["counters"]["vm_entries"]


def test_the_only_vm_of_a_vm_run_is_checkpointed_without_naming_it(tmp_path):
    path = tmp_path / "x.ckpt"
    one = CliRunner().invoke(run, ["--vm", f"{KERNELS['shadow']},module={BUILD / 'user-hello.elf'}",
                                   "--checkpoint-at", "50000", "--checkpoint", str(path)])
    assert one.exit_code == 0 and path.exists(), one.stderr


# --- tampered direct-paging checkpoints: re-validated, never trusted ----------------------------

@pytest.fixture(scope="module")
def good_direct(uninterrupted_direct, tmp_path_factory) -> bytes:
    """A direct-paging checkpoint in the middle of the workload (the per-vCPU page registered)."""
    whole = uninterrupted_direct[2]
    at = (whole["phases"]["boot"]["guest_instructions"] + whole["guest_instructions"]) // 2
    path = tmp_path_factory.mktemp("good-direct") / "good.ckpt"
    result = CliRunner().invoke(run, [*DIRECT_WORKLOAD, "--checkpoint-at", str(at), "--checkpoint", str(path)])
    assert result.exit_code == 0, result.stderr
    return path.read_bytes()


def tampered(edit):
    """A change applying edit(state, ram) (state.json's dict, ram.bin as a bytearray) and re-signing
    both parts in the manifest: a tampered file whose checksums hold."""
    def change(parts):
        state, ram = json.loads(parts["state.json"]), bytearray(parts["ram.bin"])
        edit(state, ram)
        parts["state.json"], parts["ram.bin"] = json.dumps(state).encode(), bytes(ram)
        manifest = json.loads(parts["manifest.json"])
        for name in ("state.json", "ram.bin"):
            manifest["parts"][name] = {"sha256": hashlib.sha256(parts[name]).hexdigest(), "size": len(parts[name])}
        parts["manifest.json"] = json.dumps(manifest).encode()
    return change


def pinned(state: dict, level: str) -> list[int]:
    return [gfn for gfn, kind in state["direct"]["pins"] if kind == level]


def map_in_a_pinned_table(mfn: int):
    """An edit: the first non-present entry of a pinned L1 (in ram.bin) made to map machine frame `mfn`."""
    def edit(state, ram):
        for gfn in pinned(state, "l1"):
            at = state["frames"].index(gfn) * PAGE_SIZE
            words = struct.unpack_from(f"<{PAGE_SIZE // 4}I", ram, at)
            if 0 in words:
                struct.pack_into("<I", ram, at + 4 * words.index(0), mfn << 12 | PTE_P | PTE_U)
                return
        raise AssertionError("no pinned L1 with a free entry")
    return edit


def recount(position: int):
    """An edit: one more of a pinned L1's type count (position 2) or reference count (3)."""
    def edit(state, ram):
        entry = next(entry for entry in state["direct"]["frames"] if entry[0] == pinned(state, "l1")[0])
        entry[position] += 1
    return edit


def set_direct(key: str, value_of):
    """An edit: direct.KEY := value_of(state)."""
    def edit(state, ram):
        state["direct"][key] = value_of(state)
    return edit


KERNEL_TEXT_GFN = 0x100      # the kernel's first frame (it is linked at physical 1 MiB): code, not a table
VM_FRAMES = (16 << 20) // PAGE_SIZE

BAD_DIRECT = {
    "a pinned table that maps a VMM frame": (map_in_a_pinned_table(2), "field direct: ", "belongs to the VMM"),
    # the first frame after the VM's: in a machine of several VMs, the next VM's; free in the restored one
    "a pinned table that maps a frame outside the VM": (map_in_a_pinned_table(VMM_FRAMES + VM_FRAMES),
                                                        "field direct: ", "belongs to no one"),
    "a type count that does not match": (recount(2), "field direct.frames: guest frame", "type count"),
    "a reference count that does not match": (recount(3), "field direct.frames: guest frame", "refs"),
    "a pin of a frame that is not a table": (set_direct("pins", lambda state: sorted(
        state["direct"]["pins"] + [[KERNEL_TEXT_GFN, "l1"]])), "field direct", ""),
    "a base that is an L1 table": (set_direct("bases", lambda state: [pinned(state, "l1")[0]] * 2),
                                   "field direct: ", "not a pinned L2"),
    "a base that is not pinned": (set_direct("bases", lambda state: [KERNEL_TEXT_GFN] * 2),
                                  "field direct: ", "not a pinned L2"),
    "the per-vCPU page on a page table": (set_direct("pvcpu", lambda state: pinned(state, "l1")[0]),
                                          "field direct: ", "is l1"),
    "holds that do not match": (set_direct("held", lambda state: []), "field direct.held", ""),
    "no bases": (set_direct("bases", lambda state: None), "field direct.bases", ""),
}


@pytest.mark.parametrize("kind", list(BAD_DIRECT))
def test_a_tampered_direct_checkpoint_is_caught_by_revalidation_and_nothing_runs(good_direct, tmp_path, kind):
    """Each file's checksums hold: only rebuilding the accounting through the validator (or the
    field checks) can refuse it; with exit code 2, a message naming the file, the part and the
    field, no output and no traceback."""
    edit, complaint, reason = BAD_DIRECT[kind]
    path = tmp_path / "bad.ckpt"
    path.write_bytes(rebuilt(good_direct, tampered(edit)))
    result = CliRunner().invoke(resume, [str(path)])
    assert result.exit_code == 2 and result.stdout_bytes == b"" and result.exception.__class__ is SystemExit
    assert result.stderr.startswith(f"kite: error: {path}: part state.json: {complaint}"), result.stderr
    assert reason in result.stderr, result.stderr


def test_the_untampered_direct_checkpoint_resumes(good_direct, uninterrupted_direct, tmp_path):
    """The control for the tampered files: the same file re-signed unchanged resumes to the end."""
    path = tmp_path / "good.ckpt"
    path.write_bytes(rebuilt(good_direct, tampered(lambda state, ram: None)))
    result = CliRunner().invoke(resume, [str(path)])
    assert result.exit_code == uninterrupted_direct[1] and uninterrupted_direct[0].endswith(result.stdout_bytes)


# --- a VM with a disk -------------------------------------------------------------------------

def disk_workload(paging: str, disk: Path) -> list[str]:
    return ["--paging", paging, KERNELS[paging], "--module", str(BUILD / "user-disktest.elf"), "--disk", str(disk)]


def fresh_disk(path: Path) -> Path:
    path.write_bytes(bytes(DISK_SECTORS * SECTOR_SIZE))
    return path


@pytest.fixture(scope="module", params=["shadow", "direct"])
def disk_run(request, tmp_path_factory):
    """(paging, output, exit code, the VM's figures, the disk's final bytes, and the instruction
    counts at which each disk command (shadow: the emulated disk) or ring batch (direct: the block
    ring) started and completed) of disktest on a fresh disk, run without a stop."""
    build_all()
    paging, out = request.param, tmp_path_factory.mktemp(f"disk-{request.param}")
    disk, stats, starts, ends = fresh_disk(out / "disk.img"), out / "stats.json", [], []

    def watch(monitor):
        cpu = monitor.cpu
        def retired() -> int:
            return cpu.ticks - cpu.counters.ticks_idle      # so far (cpu.counters.instructions lags)
        for cls, name in ((Disk, "_start"), (BlockBackend, "_start_batch")):
            def recording(self, *args, original=getattr(cls, name)):
                starts.append(retired())
                return original(self, *args)
            patch.setattr(cls, name, recording)
        for cls in (Disk, BlockBackend):
            def completing(self, now, original=cls.advance):
                if self._completes_at is not None and now >= self._completes_at:
                    ends.append(retired())
                return original(self, now)
            patch.setattr(cls, "advance", completing)
    with pytest.MonkeyPatch.context() as patch:
        token = ATTACH.set(watch)
        try:
            result = CliRunner().invoke(run, [*disk_workload(paging, disk), "--stats-json", str(stats)])
        finally:
            ATTACH.reset(token)
    assert result.exit_code == 0 and len(starts) == len(ends) > 20, result.stderr
    return paging, result.stdout_bytes, result.exit_code, vm_figures(stats), disk.read_bytes(), starts, ends


def in_flight(state: dict) -> bool:
    """Whether the checkpoint fell with a disk command or a ring batch in flight."""
    return state["disk"]["pending"] is not None or (state["vm"]["blk"] or {}).get("completes_at") is not None


@pytest.mark.slow
def test_resuming_a_vm_with_a_disk_anywhere_leaves_the_disk_as_an_uninterrupted_run_does(disk_run, tmp_path):
    """Six points spread over the run, six one instruction after a disk command or ring batch
    started (each of those in flight when the checkpoint falls), and six at the instruction count
    where one completed (some with the completion due on the checkpoint's very tick, which the
    capture brings current): the same output, exit code and guest instructions, and the same
    bytes on the disk at the end."""
    paging, output, exit_code, whole, final_disk, starts, ends = disk_run
    spread = [whole["guest_instructions"] * index // 6 + 7919 * index % 997 + 1 for index in range(6)]
    flying = [starts[len(starts) * index // 6] + 1 for index in range(6)]
    landing = [ends[len(ends) * index // 6] for index in range(6)]
    for at in spread + flying + landing:
        disk = fresh_disk(tmp_path / f"{at}.img")
        joined, code, figures, state = checkpoint_and_resume(tmp_path, at, disk_workload(paging, disk), disk)
        assert (joined, code, figures["guest_instructions"]) == (output, exit_code, whole["guest_instructions"]), at
        assert disk.read_bytes() == final_disk, at
        assert at not in flying or in_flight(state), f"{at}: no request in flight"


def test_a_disk_changed_since_the_checkpoint_is_refused_and_left_alone(tmp_path):
    """The checkpoint names the disk by its SHA-256 after the write-back; a byte changed since (here
    by hand; a resume that ran would do it too) and the resume refuses, exit code 2, the file as it was."""
    disk = fresh_disk(tmp_path / "disk.img")
    checkpoint = tmp_path / "d.ckpt"
    first = CliRunner().invoke(run, [*disk_workload("direct", disk), "--checkpoint-at", "500000",
                                     "--checkpoint", str(checkpoint)])
    assert first.exit_code == 0 and disk.read_bytes() != bytes(DISK_SECTORS * SECTOR_SIZE), first.stderr
    changed = bytearray(disk.read_bytes())
    changed[-1] ^= 0xFF
    disk.write_bytes(changed)
    result = CliRunner().invoke(resume, [str(checkpoint), "--disk", str(disk)])
    assert result.exit_code == 2 and result.stdout_bytes == b"", result.stderr
    assert result.stderr.startswith(f"kite: error: {checkpoint}: part state.json: field disk: {disk}"), result.stderr
    assert disk.read_bytes() == changed


def test_a_read_only_disk_resumes_with_the_guests_writes_and_is_never_written(disk_run, tmp_path):
    """--disk-readonly: the guest's writes live only in memory, so the checkpoint carries them (after
    the frames in ram.bin); the resumed guest reads back what it wrote, as in the uninterrupted run."""
    paging, output, exit_code, whole, *_ = disk_run
    disk = fresh_disk(tmp_path / "ro.img")
    at = whole["guest_instructions"] * 2 // 3
    joined, code, figures, state = checkpoint_and_resume(tmp_path, at, [*disk_workload(paging, disk),
                                                                        "--disk-readonly"], disk)
    assert (joined, code) == (output, exit_code) and state["disk"]["sectors"]
    assert disk.read_bytes() == bytes(DISK_SECTORS * SECTOR_SIZE)


@pytest.fixture(scope="module")
def good_ring(tmp_path_factory) -> tuple[bytes, Path]:
    """A direct-paging checkpoint of disktest with its block ring registered, and its disk file."""
    build_all()
    out = tmp_path_factory.mktemp("ring")
    disk, path = fresh_disk(out / "disk.img"), out / "ring.ckpt"
    result = CliRunner().invoke(run, [*disk_workload("direct", disk), "--checkpoint-at", "500000",
                                      "--checkpoint", str(path)])
    assert result.exit_code == 0, result.stderr
    return path.read_bytes(), disk


def set_vm(key: str, value_of):
    """An edit: vm.KEY := value_of(state)."""
    def edit(state, ram):
        state["vm"][key] = value_of(state)
    return edit


BAD_RING = {
    "answers ahead of the requests": (set_vm("blk", lambda state: {**state["vm"]["blk"],
                                                                   "done": state["vm"]["blk"]["queued"] + 1}),
                                      "field vm.blk"),
    "a batch of nothing in flight": (set_vm("blk", lambda state: {**state["vm"]["blk"], "completes_at": 1 << 40}),
                                     "field vm.blk"),
    "a ring on a page table": (set_direct("ring", lambda state: pinned(state, "l1")[0]), "field direct: "),
    "a ring without a disk": (lambda state, ram: state.update(disk=None), "field direct.ring"),
}


@pytest.mark.parametrize("kind", list(BAD_RING))
def test_a_tampered_ring_checkpoint_is_refused_and_its_disk_released(good_ring, tmp_path, kind):
    """Refused with exit code 2 naming the field, nothing run; the disk, if the refusal came after
    opening it, is unlocked again (another user can open it) and unchanged."""
    good, disk = good_ring
    before = disk.read_bytes()
    path = tmp_path / "bad.ckpt"
    path.write_bytes(rebuilt(good, tampered(BAD_RING[kind][0])))
    result = CliRunner().invoke(resume, [str(path), "--disk", str(disk)])
    assert result.exit_code == 2 and result.stdout_bytes == b"", result.stderr
    assert result.stderr.startswith(f"kite: error: {path}: part state.json: {BAD_RING[kind][1]}"), result.stderr
    DiskImage.open(str(disk)).close()
    assert disk.read_bytes() == before


# --- one VM out of several ---------------------------------------------------------------------

SEVERAL = ["--vm", f"{KERNELS['shadow']},name=a,module={BUILD / 'user-fib.elf'}",
           "--vm", f"{KERNELS['direct']},paging=direct,name=b,module={BUILD / 'user-sort.elf'}"]


def lines_of(output: bytes, name: str) -> list[bytes]:
    """The output lines of VM `name` (each carries its name when there are several)."""
    return [line for line in output.splitlines() if line.startswith(f"[{name}] ".encode())]


@pytest.fixture(scope="module")
def several():
    build_all()
    result = CliRunner().invoke(run, SEVERAL)
    assert result.exit_code == 0 and lines_of(result.stdout_bytes, "a") and lines_of(result.stdout_bytes, "b")
    return result.stdout_bytes


@pytest.mark.slow
@pytest.mark.parametrize("taken, at", [("b", 400_000), ("b", 3_000_000), ("a", 1_500_000)])
def test_one_vm_out_of_several_is_checkpointed_while_the_others_run_on(several, tmp_path, taken, at):
    """The VM taken (direct paging at its machine frames past the other VM's, or shadow) stops at
    the checkpoint and its lines go on in the resumed run, alone, named as before; the other VM
    runs to its end at the source.  Each VM's lines are the uninterrupted run's.  (Alone, the
    resumed VM's timer ticks fall at other instructions than beside a second VM, whose time it
    shared: its instruction count is not compared, its output does not depend on it.)"""
    path = tmp_path / "one.ckpt"
    first = CliRunner().invoke(run, [*SEVERAL, "--checkpoint-at", str(at), "--checkpoint", str(path),
                                     "--checkpoint-vm", taken])
    assert first.exit_code == 0 and f"checkpoint at instruction {at} written" in first.stderr, first.stderr
    assert f"kite: {taken}: exit code 0 (moved)" in first.stderr
    second = CliRunner().invoke(resume, [str(path)])
    assert second.exit_code == 0, second.stderr
    other = "a" if taken == "b" else "b"
    assert lines_of(first.stdout_bytes, other) == lines_of(several, other)
    assert lines_of(first.stdout_bytes + second.stdout_bytes, taken) == lines_of(several, taken)
    assert lines_of(second.stdout_bytes, other) == []


@pytest.mark.parametrize("arguments, complaint", [
    (["--checkpoint-at", "5", "--checkpoint", "x.ckpt"], "name the VM --checkpoint-at takes: --checkpoint-vm NAME"),
    (["--checkpoint-at", "5", "--checkpoint", "x.ckpt", "--checkpoint-vm", "c"], "no VM named 'c'"),
    (["--checkpoint-vm", "a"], "--checkpoint-vm goes with --checkpoint-at"),
])
def test_the_vm_to_checkpoint_is_named_among_several(arguments, complaint):
    result = CliRunner().invoke(run, [*SEVERAL, *arguments])
    assert result.exit_code == 2 and complaint in result.stderr

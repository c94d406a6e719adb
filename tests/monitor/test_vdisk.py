"""A disk for every VM (docs/vmm.md "Disks"): the emulated disk behind MMIO
exits with checked guest-physical DMA, the paravirtual ring
(docs/hypercalls.md "The block ring"), isolation between VMs, the image
lock, and write-back that never tears a sector."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asm.assembler import assemble
from asm.linker import LinkOptions, link
from tests.monitor.guestrun import build_guest, build_pv_guest
from vmm.cli import run
from vmm.machine.devices.disk import SECTOR_SIZE, DiskImage

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).parent / "hostile"
SECTORS = 64              # disk_writer's disk: a round is about 170,000 instructions

# disk_probe.s's transcript: sector 0's text; the copy's STATUS, DONE (4); then DONE | ERROR (6) for
# each refused transfer: past the end of RAM, straddling it, wrapping past 2^32, at the UART,
# sectors beyond the disk, an unknown command.
PROBE_OUTPUT = ("hello disk\ncopy: 0x00000004\n" + "status: 0x00000006\n" * 6 + "disk_probe: done\n")

# blk_ring.s's transcript with an 8-sector disk whose sector 0 says "hello ring": refused before
# setup and misaligned (-EINVAL), a page table mapped read-only (-EFAULT), set up; one good read;
# six bad requests (-EINVAL three times, -EIO, -EFAULT twice: unmapped, a page table); one good
# write; req_prod too far ahead and behind (-EINVAL).
RING_OUTPUT = """\
notify before setup: -22
setup misaligned: -22
setup on a page table: -14
setup: 0
sectors: 8
notify: 0
status: 0
hello ring
notify: 0
status: -22
status: -22
status: -22
status: -5
status: -14
status: -14
notify: 0
status: 0
notify ahead: -22
notify behind: -22
"""


def kite(*arguments) -> object:
    return CliRunner().invoke(run, [str(argument) for argument in arguments])


def disk(path: Path, text: bytes, sectors: int = 4) -> Path:
    """A disk image of `sectors` sectors starting with `text`, zeros after."""
    path.write_bytes(text + bytes(sectors * SECTOR_SIZE - len(text)))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("vdisk")
    built = {name: str(build_guest(name, out)) for name in ("disk_probe", "disk_writer")}
    built |= {name: build_pv_guest(out, name) for name in ("blk_ring", "disk_pt")}
    source = HOSTILE / "bystander.s"
    (out / "bystander.elf").write_bytes(link([assemble(source.read_text(), str(source), {}, [])],
                                             LinkOptions(text_address=0x100000)))
    built["bystander"] = str(out / "bystander.elf")
    return built


@pytest.mark.parametrize("machine", [["--bare"], ["--paging", "shadow"], ["--sim"]])
def test_the_emulated_disk_behaves_as_the_bare_one_everywhere(images, tmp_path, machine):
    """The same transcript (every refused DMA refused alike) and the same bytes on the disk:
    sectors 0-1 copied to 2-3 with the first byte changed."""
    image = disk(tmp_path / "d.img", b"hello disk")
    result = kite(*machine, images["disk_probe"], "--disk", image, "--mem", "2M")
    assert (result.exit_code, result.stdout) == (0, PROBE_OUTPUT), result.stderr
    data = image.read_bytes()
    assert data[2 * SECTOR_SIZE:4 * SECTOR_SIZE] == b"#ello disk" + bytes(2 * SECTOR_SIZE - 10)
    assert data[:SECTOR_SIZE].startswith(b"hello disk")


def test_the_vm_reports_its_disk_figures(images, tmp_path):
    """Two commands succeeded (sectors 0-1 read, 2-3 written: 2 KiB), six failed; every register
    access was an exit at the disk."""
    stats = tmp_path / "s.json"
    result = kite("--paging", "shadow", images["disk_probe"], "--disk", disk(tmp_path / "d.img", b"hello disk"),
                  "--mem", "2M", "--stats-json", stats)
    assert result.exit_code == 0
    vm = json.loads(stats.read_text())["vms"]["vm1"]
    assert {key: vm["io"][key] for key in ("requests", "bytes", "notifications")} == \
        {"requests": 8, "bytes": 4 * SECTOR_SIZE, "notifications": 0}
    assert 0 < vm["io"]["mmio_exits"] <= vm["exits"]["mmio"]


def test_a_dma_aimed_past_the_vm_leaves_a_bystander_as_it_is_alone(images, tmp_path):
    image = disk(tmp_path / "d.img", b"hello disk")
    result = kite("--vm", f"{images['disk_probe']},mem=2M,name=probe,disk={image}",
                  "--vm", f"{images['bystander']},mem=2M,name=b")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("[b] ")] == ["[b] bystander alive"]
    assert "\n".join(line.removeprefix("[probe] ") for line in lines if line.startswith("[probe] ")) + "\n" \
        == PROBE_OUTPUT


def test_two_vms_with_their_own_disks_each_see_only_their_own(images, tmp_path):
    first, second = disk(tmp_path / "a.img", b"disk of a"), disk(tmp_path / "b.img", b"disk of b")
    result = kite("--vm", f"{images['disk_probe']},mem=2M,name=a,disk={first}",
                  "--vm", f"{images['disk_probe']},mem=2M,name=b,disk={second}")
    assert result.exit_code == 0, result.stderr
    assert "[a] disk of a" in result.stdout.splitlines() and "[b] disk of b" in result.stdout.splitlines()
    assert first.read_bytes()[2 * SECTOR_SIZE:2 * SECTOR_SIZE + 9] == b"#isk of a"
    assert second.read_bytes()[2 * SECTOR_SIZE:2 * SECTOR_SIZE + 9] == b"#isk of b"


def test_an_image_is_written_by_one_user_at_a_time(images, tmp_path):
    image = disk(tmp_path / "d.img", b"hello disk")
    result = kite("--vm", f"{images['disk_probe']},mem=2M,name=a,disk={image}",
                  "--vm", f"{images['disk_probe']},mem=2M,name=b,disk={image}")
    assert result.exit_code == 2 and "disk image in use" in result.stderr
    held = DiskImage.open(str(image))             # as another kite process would hold it
    try:
        result = kite("--paging", "shadow", images["disk_probe"], "--disk", image, "--mem", "2M")
        assert result.exit_code == 2 and f"{image}: disk image in use" in result.stderr
    finally:
        held.close()
    result = kite("--vm", f"{images['disk_probe']},mem=2M,name=a,disk={image},disk-readonly",
                  "--vm", f"{images['disk_probe']},mem=2M,name=b,disk={image},disk-readonly")
    assert result.exit_code == 0, result.stderr
    assert image.read_bytes()[2 * SECTOR_SIZE] == 0        # read-only: nothing written back


def test_the_block_ring_checks_every_index_count_and_buffer(images, tmp_path):
    image = disk(tmp_path / "d.img", b"hello ring", sectors=8)
    stats = tmp_path / "s.json"
    result = kite("--paging", "direct", images["blk_ring"], "--disk", image, "--mem", "2M", "--stats-json", stats)
    assert (result.exit_code, result.stdout) == (0, RING_OUTPUT), result.stderr
    assert image.read_bytes()[3 * SECTOR_SIZE:3 * SECTOR_SIZE + 10] == b"hello ring"
    io = json.loads(stats.read_text())["vms"]["vm1"]["io"]
    # eight requests completed, two moved a sector each, three notifies queued requests, no MMIO
    assert io == {"requests": 8, "bytes": 2 * SECTOR_SIZE, "notifications": 3, "mmio_exits": 0}


def test_without_a_disk_the_ring_is_refused(images):
    result = kite("--paging", "direct", images["blk_ring"], "--mem", "2M")
    assert result.exit_code == 3
    assert result.stdout.splitlines()[1:] == ["setup misaligned: -19", "setup on a page table: -19", "setup: -19"]


def test_a_hostile_ring_leaves_a_bystander_as_it_is_alone(images, tmp_path):
    image = disk(tmp_path / "d.img", b"hello ring", sectors=8)
    result = kite("--vm", f"{images['blk_ring']},paging=direct,mem=2M,name=pv,disk={image}",
                  "--vm", f"{images['bystander']},mem=2M,name=b")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("[b] ")] == ["[b] bystander alive"]
    assert [line.removeprefix("[pv] ") for line in lines if line.startswith("[pv] ")] == RING_OUTPUT.splitlines()


def test_direct_mode_dma_never_reaches_a_page_table(images, tmp_path):
    """The read aimed at the bootstrap L2 is refused (6) and the guest runs on with its tables
    intact; the read into its own buffer works (4)."""
    image = disk(tmp_path / "d.img", b"hello pt")
    result = kite("--paging", "direct", images["disk_pt"], "--disk", image, "--mem", "2M")
    assert (result.exit_code, result.stdout) == (0, "status: 6\nstatus: 4\nhello pt\n"), result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("machine", [["--bare"], ["--paging", "shadow"]])
def test_a_run_killed_at_any_moment_leaves_no_torn_sector(images, tmp_path, machine):
    """disk_writer rewrites every sector until its limit; the run is killed (SIGKILL) at moments
    before, around and after the write-back.  Every sector of the file is then one repeated
    byte: zero (old) or a value a round wrote (new), never a mix."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "kite", "run", *machine, images["disk_writer"], "--mem", "2M",
               "--max-instructions", "600000"]
    for delay in (0.2, 0.5, 0.8, 1.1, 60):
        image = disk(tmp_path / "d.img", b"", sectors=SECTORS)
        process = subprocess.Popen([*command, "--disk", str(image)], env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        data = image.read_bytes()
        assert len(data) == SECTORS * SECTOR_SIZE
        for sector in range(SECTORS):
            block = data[sector * SECTOR_SIZE:(sector + 1) * SECTOR_SIZE]
            assert block == bytes([block[0]]) * SECTOR_SIZE, f"sector {sector} torn (killed after {delay} s)"
        if delay == 60:      # the run ended by itself (its limit: 124) after writing every sector
            assert process.returncode == 124 and all(data[sector * SECTOR_SIZE] for sector in range(SECTORS))

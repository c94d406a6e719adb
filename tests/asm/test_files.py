"""asm.files: the atomic writer gives a new file the permissions open() would (the umask
applies, as with GNU as and ld), and read_limited refuses an input past its limit, a
regular file by its size and a device such as /dev/zero after reading just past it."""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from asm.cli_as import main as as_main
from asm.cli_tools import ld_main
from asm.files import read_limited, write_atomically


@contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_output_file_gets_0666_less_the_umask_as_open_gives(tmp_path, mask, expected):
    with umask(mask):
        write_atomically(tmp_path / "out.bin", b"data")
        with open(tmp_path / "reference.bin", "wb"):
            pass
    assert mode_of(tmp_path / "out.bin") == expected == mode_of(tmp_path / "reference.bin")


@pytest.mark.parametrize("mask, expected", [(0o022, 0o755), (0o077, 0o700)])
def test_explicit_mode_is_filtered_by_the_umask(tmp_path, mask, expected):
    with umask(mask):
        write_atomically(tmp_path / "image.elf", b"data", mode=0o777)
    assert mode_of(tmp_path / "image.elf") == expected


def test_rewritten_file_gets_fresh_permissions_and_no_temporary_is_left(tmp_path):
    target = tmp_path / "out.o"
    target.write_bytes(b"old")
    target.chmod(0o600)
    with umask(0o022):
        write_atomically(target, "new")
    assert target.read_bytes() == b"new" and mode_of(target) == 0o644
    assert os.listdir(tmp_path) == ["out.o"]


def test_kite_as_object_is_0644_and_kite_ld_image_0755_under_umask_022(tmp_path):
    source = tmp_path / "start.s"
    source.write_text(".globl _start\n_start: halt\n")
    with umask(0o022):
        assert CliRunner().invoke(as_main, [str(source)]).exit_code == 0
        result = CliRunner().invoke(ld_main, ["-o", str(tmp_path / "start.elf"), str(tmp_path / "start.o")])
    assert result.exit_code == 0, result.output
    assert mode_of(tmp_path / "start.o") == 0o644
    assert mode_of(tmp_path / "start.elf") == 0o755


def test_read_limited_refuses_a_regular_file_past_the_limit_by_its_size(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(101))
    assert read_limited(path, 101) == bytes(101)
    with pytest.raises(OSError) as caught:
        read_limited(path, 100)
    assert caught.value.errno == errno.EFBIG


def test_read_limited_reads_a_device_only_just_past_the_limit():
    with pytest.raises(OSError) as caught:
        read_limited("/dev/zero", 1 << 20)
    assert caught.value.errno == errno.EFBIG
    assert caught.value.strerror == "larger than the 1 MiB limit for an input file"

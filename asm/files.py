"""Reading input files with a size limit, and writing output files so that a
failure never leaves half of one.

Every tool in the kit (kite-as, kite-ld, kite build, kite run's --stats-json,
the disk write-back, kite compare's reports) writes through `write_atomically`;
kite-as, kite-ld, kite-objdump, kite-nm and the machine's loader read their
inputs through `read_limited`.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

MAX_INPUT_SIZE = 64 << 20     # 64 MiB: far more than any Kite32 source, object or image


def read_limited(path: str | os.PathLike, limit: int = MAX_INPUT_SIZE) -> bytes:
    """The bytes of the file at `path`, which may hold at most `limit` bytes.
    A regular file is refused by its size before anything is read; anything
    else (a pipe, a device such as /dev/zero) is read up to one byte past the
    limit.  Raises OSError: the system's, or EFBIG saying the file is too large."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise _too_large(limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _too_large(limit: int) -> OSError:
    return OSError(errno.EFBIG, f"larger than the {limit >> 20} MiB limit for an input file")


def write_atomically(path: str | os.PathLike, data: bytes | str, mode: int | None = None,
                     durable: bool = False) -> None:
    """Write `data` (str as UTF-8) to `path` through a temporary file in the
    same directory and a rename, so `path` holds either its old contents or
    all of `data`.  The new file's permissions are what open() would give a
    new file: `mode` (default 0o666) less the umask, as GNU as and ld do.
    `durable`: fsync before the rename.  Raises OSError, leaving no
    temporary file behind."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    handle, temporary = _create_temporary(path, 0o666 if mode is None else mode)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _create_temporary(path: str | os.PathLike, mode: int) -> tuple[int, str]:
    """(descriptor, name) of a new file `.NAME.XXXXXXXX.tmp` beside `path`, created
    with `mode` so that the kernel applies the umask (tempfile.mkstemp forces 0600)."""
    directory, base = os.path.split(os.path.abspath(path))
    while True:
        temporary = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), temporary
        except FileExistsError:
            continue

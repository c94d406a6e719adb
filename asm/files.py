"""Writing output files so that a failure never leaves half of one.

Every tool in the kit (kite-as, kite-ld, kite build, kite run's --stats-json,
the disk write-back, kite compare's reports) writes through `write_atomically`.
"""

from __future__ import annotations

import os
import tempfile


def write_atomically(path: str | os.PathLike, data: bytes | str, mode: int | None = None,
                     durable: bool = False) -> None:
    """Write `data` (str as UTF-8) to `path` through a temporary file in the
    same directory and a rename, so `path` holds either its old contents or
    all of `data`.  `mode`: the new file's permission bits; `durable`: fsync
    before the rename.  Raises OSError, leaving no temporary file behind."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise

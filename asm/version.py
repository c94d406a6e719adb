"""The installed kit's version, read without importing importlib.metadata.

`installed_version()` returns what `importlib.metadata.version("kite")` does
(the Version: field of the first kite distribution's metadata found along
sys.path), for `--version` in a few milliseconds: importing
importlib.metadata alone costs more than the rest of `kite-as --version`.
"""

from __future__ import annotations

import os
import sys

DISTRIBUTION = "kite"


def installed_version(name: str = DISTRIBUTION) -> str:
    """The Version: of the first `name` distribution's metadata along
    sys.path; importlib.metadata's answer if there is none to read here."""
    for entry in sys.path:
        try:
            found = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for directory in found:
            metadata = _metadata_file(directory, name)
            if metadata is None:
                continue
            version = _version_field(os.path.join(entry or ".", directory, metadata))
            if version is not None:
                return version
    import importlib.metadata
    return importlib.metadata.version(name)


def _metadata_file(directory: str, name: str) -> str | None:
    """The metadata file's name if `directory` is `name`'s .dist-info or .egg-info, else None."""
    if directory.startswith(name + "-") and directory.endswith(".dist-info"):
        return "METADATA"
    if directory == name + ".egg-info" or (directory.startswith(name + "-") and directory.endswith(".egg-info")):
        return "PKG-INFO"
    return None


def _version_field(path: str) -> str | None:
    """The Version: header of the metadata file at `path`, None if unreadable or absent."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Version:"):
                    return line[len("Version:"):].strip()
                if not line.strip():
                    return None
    except OSError:
        return None
    return None

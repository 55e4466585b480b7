"""Secrets generated once into the data dir, written so no reader ever sees half a file.

The token signing key, the credentials key and ``make run``'s Flower login are
made up on first use and shared by every process of one installation through a
file. Creating the file and then writing it (the obvious way) leaves a moment in
which another process finds the file already there but empty, and would sign
tokens with an empty key. Here the value is written and flushed to a private
temporary file first and then hard-linked into place: ``link`` is atomic and,
unlike ``rename``, refuses to replace a key another process placed first, so
every process ends up with the same, complete value.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class KeyFileError(RuntimeError):
    """A key file exists but holds no key (e.g. left behind by an older writer that crashed)."""


def read_key(path: Path) -> str:
    """The key in ``path``; an empty file is an error, never an empty key."""
    value = path.read_text().strip()
    if not value:
        raise KeyFileError(f"{path} is empty; delete it to generate a new key")
    return value


def read_or_create(path: Path, generate: Callable[[], str]) -> str:
    """The key in ``path``, creating it (mode 0600) with ``generate()`` if there is none."""
    try:
        return read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate()
    # mkstemp creates the file 0600 in the same directory (a link cannot cross filesystems).
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return read_key(path)  # another process won the race: use its key
        _fsync_directory(path.parent)
    finally:
        os.unlink(temporary)
    return value


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable, so a power cut cannot bring back a world without the key."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

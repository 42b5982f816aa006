"""Files written whole or not at all: a reader sees the old file or the new one, never half of one.

Every file distil writes goes to a temporary file beside its destination (same folder, so the same file
system), is flushed to disk (``fsync``), and is then renamed over the destination, which POSIX makes atomic.
A process killed at any moment leaves either the previous file or the new one, plus at most a stray
``.<name>.tmp-*`` file that nothing reads.

`BEFORE_REPLACE` holds functions called with the destination just before each rename: tests put a fault there
(raise, or end the process) to simulate a kill at exactly the Nth write.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BEFORE_REPLACE: list[Callable[[Path], None]] = []


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed into place when the block ends without error.

    Example:
        >>> with replacing("out/index.json") as tmp:
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:  # the bytes reach the disk before the name points at them
            os.fsync(written.fileno())
        for hook in list(BEFORE_REPLACE):
            hook(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename itself) to disk, where the system allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (values JSON cannot hold are written as strings)."""
    return write_text(path, json.dumps(data, indent=indent, default=str))


def copy_file(source: str | Path, destination: str | Path) -> Path:
    """Copy a file's bytes to ``destination`` atomically (a kill mid-copy leaves no empty or partial file)."""
    with replacing(destination) as tmp, open(source, "rb") as reading, open(tmp, "wb") as writing:
        while chunk := reading.read(1 << 20):
            writing.write(chunk)
    return Path(destination)

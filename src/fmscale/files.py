"""Atomic output files: written under a temporary name beside the target, then renamed over it.

A reader never sees a half-written file, and a failed write (a crash, a full disk) leaves the
previous file and no temporary behind. ``writing`` names the file a failed write was for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CannotWrite


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Re-raise an OSError of the block as CannotWrite naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise CannotWrite(exc.errno, exc.strerror or str(exc), str(path)) from exc


def temp_path(path: Path) -> Path:
    """The temporary name ``atomic_path`` writes ``path`` under."""
    return path.with_name(path.name + ".tmp")


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` with the mode a new
    file gets (0666 less the umask: 0644 by default), on error it is removed.

    ``fsync`` flushes the file to disk before the rename (for checkpoints that must survive a
    power loss, not only a crash of this process).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # as open() would: some writers create files 0600
        if fsync:
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, content: str | bytes, fsync: bool = False) -> None:
    """Write ``content`` (text or bytes) to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content)

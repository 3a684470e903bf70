"""One training run per run folder: ``<out>/.train.lock``, an flock that names its holder, beats
while it is held, and is broken once its holder has gone silent.

On a local filesystem an flock dies with its process, however the process ends. On NFS the
server holds it: a node that fails while training (power, panic, a cut link) can leave the lock
held until the server recovers it, or for good (NFSv3 lockd, a node that never comes back), and
the cell could never train again. So the holder touches the file every ``HEARTBEAT_S``; a lock
whose file has not been touched for ``STALE_AFTER_S`` is broken: the file is unlinked (the dead
holder's flock stays on the old inode) and the lock is taken on a new file, with a WARNING naming
the holder and its silence. Two runs breaking the same lock at once are told apart by the
inode: a run breaks only the file it judged stale, and keeps a lock only on the file at the path.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CannotLock, CellBusy
from .files import writing

log = logging.getLogger(__name__)

LOCK_NAME = ".train.lock"
HEARTBEAT_S = 60.0
"""How often a held lock's file is touched."""
STALE_AFTER_S = 900.0
"""A lock untouched this long has lost its holder (15 heartbeats: room for a slow NFS server
and clocks a few minutes apart between nodes)."""


@contextmanager
def cell_lock(out: Path) -> Iterator[None]:
    """Hold ``<out>/.train.lock`` for the block, breaking a stale one; CellBusy at once if a live
    process holds it. Where the filesystem has no flock the run goes on unlocked, with a
    warning; CannotWrite naming the lock when the folder cannot be written."""
    path = out / LOCK_NAME
    try:
        fd = _acquire(path)
    except CannotLock as exc:
        log.warning(
            "cannot lock %s (%s): a second run on this folder would go unnoticed",
            path,
            exc.strerror,
        )
        yield
        return
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(fd, stop), daemon=True, name="train-lock")
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        os.close(fd)


def _acquire(path: Path) -> int:
    """A descriptor of ``path`` holding its flock, the holder's line written in it."""
    while True:
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _break_if_stale(path, fd)  # CellBusy when its holder is alive
            continue
        except OSError as exc:
            os.close(fd)
            raise CannotLock(exc.errno, exc.strerror or str(exc)) from None
        if _same_file(path, fd):  # not a file another run broke while this one waited
            os.ftruncate(fd, 0)
            holder = f"pid {os.getpid()} on {platform.node()} since {time.ctime()}\n"
            os.pwrite(fd, holder.encode(), 0)
            return fd
        os.close(fd)


def _break_if_stale(path: Path, fd: int) -> None:
    """Unlink ``path`` when the lock held on ``fd`` has been silent for ``STALE_AFTER_S``;
    closes ``fd``. CellBusy when it has not."""
    try:
        holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
        silent = time.time() - os.fstat(fd).st_mtime
        if silent < STALE_AFTER_S:
            raise CellBusy(
                f"{path.parent} is already being trained by {holder} (lock touched "
                f"{silent:.0f} s ago); wait for it to end or use another --out"
            )
        log.warning(
            "breaking the stale lock %s: held by %s, untouched for %.0f s (more than %.0f s: "
            "its holder has stopped, e.g. a failed node)",
            path,
            holder,
            silent,
            STALE_AFTER_S,
        )
        if _same_file(path, fd):  # another run may have broken it already
            path.unlink()
    finally:
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open on ``fd``."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _beat(fd: int, stop: threading.Event) -> None:
    """Touch the lock's file every ``HEARTBEAT_S`` until ``stop``; a failed touch is logged."""
    while not stop.wait(HEARTBEAT_S):
        try:
            os.utime(fd)
        except OSError as exc:
            log.warning("cannot touch the train lock (%s): it may be broken as stale", exc)

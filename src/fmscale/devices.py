"""Which device a job runs on: on a GPU machine, a GPU no other fmscale job holds.

Outside SLURM every CUDA job locks the GPU it takes (one or several visible), so concurrent
jobs of ``snakemake --cores all`` never share one: a job waits, saying so, while every GPU is
held. Inside a SLURM job the allocation's GPUs are the job's own and nothing is locked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

GPU_LOCK_DIR_ENV = "FMSCALE_GPU_LOCK_DIR"
"""Where the per-GPU lock files live (default: ``<tmp>/fmscale-gpus``); one folder per machine."""
SLURM_JOB_ENV = "SLURM_JOB_ID"
"""Set inside a SLURM job, whose allocated GPUs no other job sees."""
_held: list[int] = []
"""File descriptors of the GPU locks this process holds: released when it exits."""


def pick_device(name: str = "auto") -> torch.device:
    """cuda > mps > cpu for ``auto``; otherwise the named device. ``cuda`` (or ``auto`` on a
    CUDA machine) takes a GPU no other fmscale job holds (``cuda:N`` is taken as is)."""
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device '{name}' requested but CUDA is not available; use --device cpu"
            )
        return _own_gpu() if name == "cuda" else torch.device(name)
    if torch.cuda.is_available():
        return _own_gpu()
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _own_gpu() -> torch.device:
    count = torch.cuda.device_count()
    if count == 1 and SLURM_JOB_ENV in os.environ:  # the allocation's GPU is this job's own
        return torch.device("cuda")
    return torch.device(f"cuda:{claim_gpu([_gpu_name(i) for i in range(count)])}")


def _gpu_name(index: int) -> str:
    """A name for the lock of GPU ``index``, the same in every process of this machine."""
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"gpu-{uuid}" if uuid is not None else f"gpu{index}"


def claim_gpu(names: list[str], lock_dir: Path | None = None, poll_s: float = 5.0) -> int:
    """The index in ``names`` of a GPU no other process holds, held until this process exits.

    Each GPU is an exclusive ``flock`` on ``<lock_dir>/<name>.lock``; a killed process releases
    it with its file descriptors. When every GPU is held, waits, saying so every ``poll_s``.
    """
    lock_dir = Path(lock_dir or os.environ.get(GPU_LOCK_DIR_ENV) or _default_lock_dir())
    if not lock_dir.exists():
        lock_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(lock_dir, 0o1777)  # as /tmp: every user's jobs share the machine's GPUs
    while True:
        for index, name in enumerate(names):
            # Read-only, so another user's job can lock a file this one created.
            fd = os.open(lock_dir / f"{name}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held.append(fd)
            log.info("using GPU %d (%s)", index, name)
            return index
        log.warning("every GPU is held by another fmscale job (%s); waiting", lock_dir)
        time.sleep(poll_s)


def release_gpus() -> None:
    """Let go of every GPU this process holds (tests; a process exiting does it anyway)."""
    while _held:
        os.close(_held.pop())


def _default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "fmscale-gpus"

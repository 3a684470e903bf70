"""Atomic, verified checkpoints: ``step_XXXXXXXX.pt`` plus a ``.sha256`` written after it.

A checkpoint counts only when its digest file exists and matches and it holds every required
key, so a file cut short by a crash or a full disk, or one written by a program that left keys
out, is reported and skipped for the previous good one (never fatal: the worst case is training
again from step 0). Loading uses ``torch.load(weights_only=True)``: no pickle code ever runs.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write

log = logging.getLogger(__name__)


class CheckpointStore:
    """The checkpoints of one run, newest first; keeps the last ``keep``.

    ``required``: the keys a checkpoint must hold to be loaded; one without them is skipped.
    """

    def __init__(self, root: str | Path, keep: int = 2, required: Iterable[str] = ()):
        self.root = Path(root)
        self.keep = keep
        self.required = tuple(required)

    def paths(self) -> list[Path]:
        return sorted(self.root.glob("step_*.pt"), reverse=True)

    def path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` is written."""
        return self.root / f"step_{step:08d}.pt"

    def save(self, state: dict[str, Any], step: int) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        path = self.path(step)
        atomic_write(path, data, fsync=True)
        atomic_write(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest(), fsync=True)
        for old in self.paths()[self.keep :]:
            old.unlink(missing_ok=True)
            old.with_suffix(".sha256").unlink(missing_ok=True)
        return path

    def _read(self, path: Path) -> dict[str, Any]:
        digest_file = path.with_suffix(".sha256")
        if not digest_file.exists():
            raise ValueError("no digest file (the write did not finish)")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest_file.read_text().strip():
            raise ValueError(f"sha256 mismatch ({len(data)} bytes: truncated or corrupt)")
        # On the CPU: RNG states must stay there; load_state_dict moves the rest to the device.
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        missing = [key for key in self.required if key not in state]
        if missing:
            raise ValueError(f"missing keys {', '.join(missing)}")
        return state

    def load_latest(self) -> dict[str, Any] | None:
        """The newest checkpoint that verifies and holds the required keys; warns about each one
        skipped (naming the file and why: no digest, a sha256 mismatch, missing keys)."""
        candidates = self.paths()
        for path in candidates:
            try:
                return self._read(path)
            except Exception as exc:  # any unreadable checkpoint is skipped, never fatal
                log.warning("skipping checkpoint %s: %s", path, exc)
        if candidates:
            log.warning("no valid checkpoint in %s; starting over from step 0", self.root)
        return None

"""A run folder's files: outputs written atomically, the live CSV logs (published when the run
ends), the EMA weights and the data's standardisation."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from ..data import Dataset
from ..files import atomic_write, writing

log = logging.getLogger(__name__)

LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_s"]


def write_output(path: Path, content: str | bytes) -> None:
    """``atomic_write``, failing with CannotWrite naming ``path``."""
    with writing(path):
        atomic_write(path, content)


class LiveCsv:
    """A live CSV in ``ckpt/`` (the loss log, the trajectory), cut back on resume to the rows
    up to ``start_step``.

    It lives outside the declared outputs, so deleting those (``--rerun-incomplete``, a retry)
    keeps the history; rows cut short by a crash are dropped.
    """

    def __init__(self, path: Path, fields: list[str], start_step: int):
        self.path = path
        rows = self._rows_up_to(start_step) if start_step > 0 and path.exists() else []
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

    def _rows_up_to(self, step: int) -> list[dict[str, str]]:
        with self.path.open() as f:
            rows = [r for r in csv.DictReader(f) if None not in r.values()]
        return [r for r in rows if int(r["step"]) <= step]

    def write(self, values: list[Any]) -> None:
        with writing(self.path), self.path.open("a", newline="") as f:
            csv.writer(f).writerow(values)


def set_aside(root: Path, changes: str) -> None:
    """Move a run's checkpoints and live logs (``root``, of other settings or data: ``changes``
    says which) to ``<root>.stale/``, replacing an older one."""
    stale = root.with_name(root.name + ".stale")
    with writing(stale):
        if stale.exists():
            shutil.rmtree(stale)
        root.rename(stale)
    log.warning(
        "%s holds this cell trained with other settings or data (%s); moved it to %s and "
        "training from step 0",
        root,
        changes,
        stale,
    )


def save_weights(model: nn.Module, path: Path) -> None:
    """EMA weights as safetensors, written atomically."""
    from safetensors.torch import save

    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    write_output(path, save(state))


def save_stats(data: Dataset, out: Path) -> None:
    """The standardisation (train-pool mean and std) used by this run."""
    from safetensors.torch import save

    stats = {"mean": data.mean.contiguous(), "std": data.std.contiguous()}
    write_output(out / "data_stats.safetensors", save(stats))

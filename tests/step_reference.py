"""The cells ``tests/data/step_reference.json`` records (``scripts/make_step_reference.py``):
every arch of the CPU table at tiny, ``STEPS`` eager CPU steps from seed 0 on random rows."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from fmscale.config import TrainConfig
from fmscale.data import Dataset

ARCHS = ("mlp", "dit", "unet", "mamba")
STEPS = 50
ROWS = 48


def dataset(dim: int = 1024) -> Dataset:
    """Standardised random rows: the losses depend on the code, not on what the rows mean."""
    return Dataset.random(ROWS, dim, 1, "step-reference")


def trainer(arch: str, out: Path, **train: object):
    """A CPU trainer of ``arch``/tiny (CPU table) on ``dataset()``, batch 64, seed 0."""
    from fmscale.train.loop import CellSpec, Trainer

    settings = {"batch_size": 64, "steps": STEPS, "device": "cpu", "trajectory_points": 0}
    cfg = dataclasses.replace(TrainConfig(), **{**settings, **train})
    return Trainer(CellSpec(arch, "tiny", ROWS, 0, "cpu"), dataset(), cfg, out)


def losses(arch: str, autocast: bool = False, **train: object) -> list[float]:
    """The loss of each of ``STEPS`` steps of ``trainer(arch)``; ``autocast``: under bf16
    autocast, as a CUDA step runs with ``train.bf16``."""
    with tempfile.TemporaryDirectory() as out:
        run = trainer(arch, Path(out), **train)
        run.autocast = autocast
        return [float(run.step()[0]) for _ in range(STEPS)]

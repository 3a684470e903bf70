"""Memorisation over training time: the EMA field scored cheaply at log-spaced steps.

At each snapshot step the train job samples ``trajectory_samples`` rows at ``trajectory_nfe``
(midpoint) and records memorised_fraction and nn_train_test_ratio against the cell's training
rows, with train_loss and val_loss by the validation protocol (``scoring.path_loss``). Rows go
to ``ckpt/trajectory.csv`` as training goes (cut back to the checkpoint's step on resume, so a
resumed run writes the rows of an uninterrupted one) and are published to
``<run>/trajectory.csv`` with the model.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .data import Dataset
from .metrics import memorisation
from .scoring import generate, training_loss, validation_loss

TRAJECTORY_SOLVER = "midpoint"


def affordable_points(cfg: TrainConfig, snapshot_flops: int, step_flops: int) -> int:
    """The snapshots this cell scores: ``trajectory_points``, fewer when they would cost more
    than ``trajectory_max_share`` of the training FLOPs, never fewer than one (the last step)
    unless ``trajectory_points`` is 0."""
    if cfg.trajectory_points == 0:
        return 0
    affordable = int(cfg.trajectory_max_share * step_flops * cfg.steps / snapshot_flops)
    return max(1, min(cfg.trajectory_points, affordable))


def snapshot_steps(total: int, points: int) -> list[int]:
    """``points`` steps halving back from ``total`` (total, total/2, total/4, ...), unique, >= 1;
    none when ``points`` is 0."""
    return sorted({max(1, round(total / 2**k)) for k in range(points)})


class TrajectoryScorer:
    """Scores a field against one cell's rows; the noise is fixed, so snapshots compare."""

    def __init__(self, data: Dataset, n_train: int, cfg: TrainConfig):
        self.train = data.train(n_train)
        self.val = data.val
        self.test = data.test[: cfg.trajectory_samples]
        self.n_train, self.batch_size = n_train, cfg.batch_size
        self.n_samples, self.nfe = cfg.trajectory_samples, cfg.trajectory_nfe

    def flops(self, sampling_flops_per_sample_per_nfe: int) -> int:
        """FLOPs of one snapshot: the samples, the two losses, the nearest-neighbour search."""
        evaluations = self.n_samples * self.nfe + 2 * len(self.val)
        rows, dim = self.n_train + len(self.test), self.train.shape[1]
        return sampling_flops_per_sample_per_nfe * evaluations + 2 * self.n_samples * rows * dim

    @torch.no_grad()
    def score(self, field: nn.Module, step: int) -> dict[str, float]:
        samples = generate(
            field, self.n_samples, self.train.shape[1], self.nfe, TRAJECTORY_SOLVER, 1000
        )
        val_loss, _ = validation_loss(field, self.val)
        train_loss, _ = training_loss(field, self.train, len(self.val))
        return {
            "step": step,
            "epochs": step * self.batch_size / self.n_train,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "gap_ratio": val_loss / train_loss,
            **memorisation(samples, self.train, self.test),
        }

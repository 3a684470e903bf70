"""``train_cell``: train (or resume) one cell into its run folder, under the folder's lock, and
write what ``cell.json`` says about it (settings, data, cost, versions, device)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data import Dataset
from ..files import writing
from ..runlock import cell_lock
from .loop import CellSpec, Trainer
from .provenance import device_name, git_revision, versions
from .run_folder import save_stats, save_weights, write_output


def train_cell(
    spec: CellSpec,
    data: Dataset,
    cfg: TrainConfig,
    out: str | Path,
    extra_config: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) one cell into ``out``; returns the content written to ``cell.json``.

    Raises CellBusy if another process trains into ``out``, CannotWrite naming the path a write
    failed on, OutOfMemory with the estimated sizes.
    """
    out = Path(out)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    with cell_lock(out):
        trainer = Trainer(spec, data, cfg, out)
        resumed_from = trainer.resume()
        trainer.run(progress=progress)
        trainer.publish_log()
        save_weights(trainer.ema, out / "model.safetensors")
        save_stats(data, out)
        cell = cell_record(trainer, data, extra_config, resumed_from)
        write_output(out / "cell.json", json.dumps(cell, indent=2, default=str))
    return cell


def cell_record(
    trainer: Trainer, data: Dataset, extra_config: dict[str, Any] | None, resumed_from: int
) -> dict[str, Any]:
    """What ``cell.json`` says about a finished cell: what it is, what it cost, where it ran.

    ``epochs`` and ``samples_seen`` are what the steps gave this cell's rows (for an iso-step
    study they differ across n_train); ``train_flops`` counts every step (see ``flops.py``).
    """
    spec, cfg = trainer.spec, trainer.cfg
    flops = trainer.flops
    samples_seen = trainer.steps_done * cfg.batch_size
    return {
        "arch": spec.arch,
        "scale": spec.scale,
        "n_train": spec.n_train,
        "seed": spec.seed,
        "table": spec.table,
        "row": trainer.row,
        "n_params": trainer.n_params,
        "data_dim": data.dim,
        "data_source": data.source,
        "data_fingerprint": data.fingerprint,
        "train": dataclasses.asdict(trainer.cfg),
        "config": extra_config or {},
        "steps": trainer.steps_done,
        "epochs": round(samples_seen / spec.n_train, 4),
        "samples_seen": samples_seen,
        "train_flops": flops["train_flops_per_step"] * trainer.steps_done,
        "sampling_flops_per_sample_per_nfe": flops["sampling_flops_per_sample_per_nfe"],
        "flops_estimated_part": flops["flops_estimated_part"],
        "trajectory_steps": sorted(trainer.snapshots),
        "resumed_from_step": resumed_from,
        "restarted_from_stale": trainer.restarted_from_stale,
        "wall_time_s": round(trainer.wall_time, 3),
        "steps_per_s": round(trainer.steps_done / trainer.wall_time, 3)
        if trainer.wall_time
        else None,
        "device": device_name(trainer.device),
        "mamba_kernel": trainer.mamba_kernel[0],
        "mamba_kernel_reason": trainer.mamba_kernel[1],
        "versions": versions(),
        "git_revision": git_revision(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }

"""What a study costs before it runs: jobs per rule, FLOPs per cell, predicted GPU-hours on
named GPUs, disk, and this machine's measured CPU seconds.

FLOPs are counted as the train job counts them (``flops.count_flops``: one step on a meta-device
copy, times the steps; Mamba's scan estimated). GPU time is FLOPs / (peak x utilisation): the
peak is the GPU's published dense figure for the study's precision, and the utilisation is an
assumption the caller states (``--utilisation``), not a measurement. At 100% it is a hard lower
bound; models of a few million parameters reach far less (kernel launches, not FLOPs, bound a
small step), so read the hours as an order of magnitude until a GPU run measures them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import StudyConfig, TrainConfig
from .study import cells, study_grid, study_table

if TYPE_CHECKING:
    from torch import nn

GPU_PEAK_TFLOPS = {
    "H100 SXM": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100 SXM": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.05, "tf32": 183.0, "fp32": 91.6},
}
"""Dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets, per precision."""
DEFAULT_UTILISATION = 0.1
"""The share of the peak a cell is assumed to reach when none is given (an assumption)."""
BYTES_PER_VALUE = 4
"""float32 weights, EMA and Adam moments in checkpoints."""


@dataclass(frozen=True)
class CellCost:
    """One arch x scale x n_train (every seed costs the same)."""

    arch: str
    scale: str
    n_train: int
    seeds: int
    n_params: int
    steps: int
    train_flops: int
    eval_flops: int
    flops_estimated_part: str | None
    cpu_s_per_step: float | None


def precision(train: TrainConfig) -> str:
    """The precision a CUDA step runs its matmuls in, as the trainer sets it."""
    return "bf16" if train.bf16 else "tf32" if train.tf32 else "fp32"


def evaluation_flops(sampling_per_nfe: int, study: StudyConfig) -> int:
    """Sampling FLOPs of one evaluate job (every NFE of evaluate.nfe) and the train job's
    trajectory snapshots (their samples at trajectory_nfe)."""
    ev, train = study.evaluate, study.train
    samples = ev.n_samples * sum(ev.nfe)
    snapshots = train.trajectory_points * train.trajectory_samples * train.trajectory_nfe
    return sampling_per_nfe * (samples + snapshots)


def cpu_seconds_per_step(field: nn.Module, data_dim: int, batch: int, steps: int) -> float:
    """Median seconds of a CFM training step (AdamW) on this CPU, after one warm-up step."""
    import torch

    from .flow import cfm_loss

    opt = torch.optim.AdamW(field.parameters(), lr=1e-4)
    x1, x0 = torch.randn(batch, data_dim), torch.randn(batch, data_dim)
    t = torch.rand(batch)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        cfm_loss(field, x0, x1, t).backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def cell_costs(study: StudyConfig, data_dim: int, cpu_steps: int) -> list[CellCost]:
    """The cost of every arch x scale x n_train of the study's grid."""
    from .flops import count_flops
    from .flow import build_field

    grid, train = study.grid, study.train
    table = study_table(study, data_dim)  # the rows the cells train at D (fitted, gated)
    fields: dict[tuple[str, str], dict[str, Any]] = {}
    for arch in grid.archs:
        for scale in grid.scales:
            row = table.row(arch, scale)
            field = build_field(arch, row, data_dim, train.parameterisation)
            fields[arch, scale] = {
                "n_params": sum(p.numel() for p in field.parameters()),
                **count_flops(field, data_dim, train.batch_size),
                "cpu": cpu_seconds_per_step(field, data_dim, train.batch_size, cpu_steps)
                if cpu_steps
                else None,
            }
    costs = []
    for cell in cells({**study_grid(study), "seeds": [0]}):
        info = fields[cell["arch"], cell["scale"]]
        steps = train.for_rows(cell["n_train"]).steps
        costs.append(
            CellCost(
                cell["arch"],
                cell["scale"],
                cell["n_train"],
                len(grid.seeds),
                info["n_params"],
                steps,
                info["train_flops_per_step"] * steps,
                evaluation_flops(info["sampling_flops_per_sample_per_nfe"], study),
                info["flops_estimated_part"],
                info["cpu"],
            )
        )
    return costs


def jobs_per_rule(study: StudyConfig) -> dict[str, int]:
    """The jobs a fresh run of the study starts, per rule of ``workflow/rules``."""
    n_cells = len(cells(study_grid(study)))
    return {
        "prepare_data": 1,
        "verify_params": 1,
        "train": n_cells,
        "evaluate": n_cells,
        "reference": len(study.grid.n_train),
        "summarize": 1,
        "analyze": 1,
        "all": 1,
    }


def disk_bytes(
    costs: list[CellCost], study: StudyConfig, data_shape: tuple[int, int]
) -> dict[str, int]:
    """Disk at the end of a run: checkpoints (weights, EMA and two Adam moments each, kept
    ``train.keep_ckpts`` deep) plus the published model per cell, and the prepared dataset
    (every row of the source, float32: ``prepare-data`` splits it, it drops none)."""
    per_params = BYTES_PER_VALUE * (4 * study.train.keep_ckpts + 1)
    cells_bytes = sum(c.n_params * per_params * c.seeds for c in costs)
    rows, dim = data_shape
    return {"cells": cells_bytes, "dataset": rows * dim * BYTES_PER_VALUE}


def _same_cost_rows(costs: list[CellCost]) -> list[tuple[CellCost, str]]:
    """One row per arch x scale x steps, its n_train values joined (an iso-step study costs the
    same at every n_train)."""
    rows: dict[tuple[str, str, int], list[CellCost]] = {}
    for c in costs:
        rows.setdefault((c.arch, c.scale, c.steps), []).append(c)
    return [(group[0], ", ".join(str(c.n_train) for c in group)) for group in rows.values()]


def render(
    study: StudyConfig,
    costs: list[CellCost],
    data_shape: tuple[int, int],
    utilisation: float,
    source: str,
) -> str:
    """The plan as Markdown; ``data_shape`` = (rows, D) of the data source."""
    prec = precision(study.train)
    jobs = jobs_per_rule(study)
    total_flops = sum((c.train_flops + c.eval_flops) * c.seeds for c in costs)
    lines = [
        f"# Plan: {source}",
        "",
        f"Grid: {len(study.grid.archs)} archs x {len(study.grid.scales)} scales x "
        f"{len(study.grid.n_train)} n_train x {len(study.grid.seeds)} seeds; D = {data_shape[1]}; "
        f"batch {study.train.batch_size}; CUDA precision {prec}.",
        "",
        "| rule | jobs |",
        "|---|---:|",
        *(f"| {rule} | {n} |" for rule, n in jobs.items()),
        f"| total | {sum(jobs.values())} |",
        "",
        "Per cell (one seed). FLOPs: train = one counted step x steps; eval = evaluate's samples"
        " at every NFE plus the trajectory snapshots. CPU: measured median seconds per step on"
        " this machine x steps.",
        "",
        "| arch | scale | n_train | params | steps | train FLOPs | eval FLOPs | CPU s/step |"
        " CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, sizes in _same_cost_rows(costs):
        cpu = (
            f"{c.cpu_s_per_step:.3g} | {c.cpu_s_per_step * c.steps:.3g}"
            if c.cpu_s_per_step is not None
            else "not measured | "
        )
        lines.append(
            f"| {c.arch} | {c.scale} | {sizes} | {c.n_params:,} | {c.steps:,} | "
            f"{c.train_flops:.3g} | {c.eval_flops:.3g} | {cpu} |"
        )
    estimated = sorted({c.flops_estimated_part for c in costs if c.flops_estimated_part})
    if estimated:
        lines += ["", f"Estimated, not counted: {'; '.join(estimated)}."]
    lines += [
        "",
        f"Whole study: {total_flops:.3g} FLOPs. Predicted GPU-hours (FLOPs / dense {prec} peak;"
        f" at {utilisation:.0%} of the peak, an assumption, and at 100%, the lower bound):",
        "",
        f"| GPU | {prec} peak TFLOP/s | GPU-h at {utilisation:.0%} | GPU-h at 100% |",
        "|---|---:|---:|---:|",
    ]
    for gpu, peaks in GPU_PEAK_TFLOPS.items():
        at_peak = total_flops / (peaks[prec] * 1e12) / 3600
        lines.append(f"| {gpu} | {peaks[prec]:g} | {at_peak / utilisation:.3g} | {at_peak:.3g} |")
    cpu_cells = [c for c in costs if c.cpu_s_per_step is not None]
    if cpu_cells:
        cpu_h = sum(c.cpu_s_per_step * c.steps * c.seeds for c in cpu_cells) / 3600
        lines += ["", f"Training every cell on this CPU, one job at a time: {cpu_h:.3g} h."]
    disk = disk_bytes(costs, study, data_shape)
    lines += [
        "",
        f"Disk: {disk['cells'] / 1e9:.3g} GB of checkpoints and models "
        f"({study.train.keep_ckpts} checkpoints kept per cell), "
        f"{disk['dataset'] / 1e9:.3g} GB of prepared data.",
    ]
    return "\n".join(lines) + "\n"


def plan(
    study: StudyConfig,
    data_shape: tuple[int, int],
    utilisation: float,
    cpu_steps: int,
    source: str,
) -> str:
    """The Markdown plan of ``study`` on data of ``data_shape`` = (rows, D); ``cpu_steps`` timed
    steps per arch x scale (0: none)."""
    if not 0 < utilisation <= 1:
        raise ValueError(f"--utilisation={utilisation} must be in (0, 1]")
    costs = cell_costs(study, data_shape[1], cpu_steps)
    return render(study, costs, data_shape, utilisation, source)

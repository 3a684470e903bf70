"""The records a study writes, declared once: cell.json and metrics.json keys the summary reads,
and summary.csv's columns with what each means.

The metric columns are the catalogue's (``fmscale.catalogue``); the columns here describe the
cell, its budget and its status. docs/metrics.md is generated from both. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """A summary.csv column that is not a metric."""

    name: str
    meaning: str


CELL_COLUMNS: tuple[Column, ...] = (
    Column("kind", "`model` (a trained cell) or `reference` (a reference row: see below)"),
    Column("dataset", "the dataset's name (`data.name`)"),
    Column("arch", "architecture (mlp, dit, unet, mamba); for a reference row, its name"),
    Column("scale", "row of the scaling table (tiny, small, base); empty for references"),
    Column("n_train", "training rows (the first n_train of the fixed permutation)"),
    Column("seed", "training seed; empty for references"),
    Column("n_params", "trainable parameters, as the gate counts them"),
    Column("steps", "optimisation steps"),
    Column("epochs", "steps x batch size / n_train"),
    Column("samples_seen", "steps x batch size"),
    Column(
        "train_flops",
        "training FLOPs over every step: counted with torch's FLOP counter, Mamba's scan "
        "estimated (`fmscale.flops`)",
    ),
    Column("sampling_flops_per_sample_per_nfe", "FLOPs of one velocity evaluation of one sample"),
    Column("train_time_s", "training wall time in seconds, checkpoint I/O and snapshots left out"),
    Column("steps_per_s", "training steps per second"),
    Column("device", "where it trained: the GPU's name, or `cpu (<processor>, <n> threads)`"),
    Column("mamba_kernel", "`fused` (mamba-ssm's kernels) or `scan` (ours); empty without Mamba"),
    Column("status", "`ok`, `failed`, `stale` (metrics of a deleted run), `missing`, `skipped`"),
    Column("error", "why the row is not ok: the last error line of its log, or the reason"),
)
"""summary.csv's leading columns: the cell, its budget (cell.json) and its status."""
SCORE_COLUMNS: tuple[Column, ...] = (
    Column("headline_nfe", "the solver's velocity evaluations of the samples every metric scores"),
    Column("n_samples", "samples behind every sample metric (the analysis's binomial errors)"),
)
"""metrics.json's shared columns, after the losses."""
VAL_FIELDS = ("val_loss", "val_loss_zero_velocity", "val_loss_ratio")
"""metrics.json keys of the validation loss."""
GAP_FIELDS = ("train_loss", "train_loss_ratio", "gap", "gap_se", "gap_ratio")
"""metrics.json keys of the generalisation gap (absent from cells evaluated before it)."""
LOSS_METRICS = (*VAL_FIELDS, *GAP_FIELDS)
"""The catalogue's metrics metrics.json holds at its top level (scored from the loss); the
sample metrics sit under its ``metrics`` object."""
COLUMNS = (
    *(c.name for c in CELL_COLUMNS),
    *LOSS_METRICS,
    *(c.name for c in SCORE_COLUMNS),
)
"""Leading columns of summary.csv; the metrics follow, every headline metric always."""

TRAIN_FIELDS = {
    "n_params": "n_params",
    "steps": "steps",
    "wall_time_s": "train_time_s",
    "steps_per_s": "steps_per_s",
    "device": "device",
}
"""cell.json key -> summary column."""
MAMBA_KERNEL_KEYS = ("mamba_kernel", "mamba_path")
"""cell.json keys naming the kernel Mamba ran (``fused`` / ``scan``; null without Mamba):
``mamba_path`` in cells trained before the name changed."""
BUDGET_FIELDS = ("epochs", "samples_seen", "train_flops", "sampling_flops_per_sample_per_nfe")
"""cell.json keys of the budget and compute (absent from cells trained before them)."""
METRIC_FIELDS = (*VAL_FIELDS, "headline_nfe", "metrics")
"""metrics.json keys every readable one has."""
SAMPLES_FIELD = "n_samples"
"""metrics.json key: the samples behind every sample metric (the analysis's binomial errors)."""
INTEGER_COLUMNS = (
    "seed",
    "n_params",
    "steps",
    "samples_seen",
    "train_flops",
    "sampling_flops_per_sample_per_nfe",
    "headline_nfe",
    "n_samples",
)
"""Counts, printed as integers (a row without one, e.g. a reference row's seed, leaves it empty)."""

ANALYSIS_N_SAMPLES = 300
"""Samples assumed behind each memorised_fraction when summary.csv has no n_samples column."""
ANALYSIS_FIGURES = ["heatmaps", "val_loss_fits", "n_star", "interaction", "collapse"]
"""Figures of ``fmscale analyze`` under <results>/analysis/, written whatever the grid."""
FIGURE_FORMATS = ("png", "pdf", "svg")
"""Every analysis figure is saved in each of these (PNG at FIGURE_DPI, PDF and SVG vector)."""
FIGURE_DPI = 200
ANALYSIS_TABLES = ["fits", "n_star", "capacity", "collapse"]
"""The headline tables of ``fmscale analyze`` as LaTeX (booktabs) under <results>/analysis/."""
TRAJECTORY_FIELDS = [
    "step",
    "epochs",
    "train_loss",
    "val_loss",
    "gap_ratio",
    "memorised_fraction",
    "nn_train_test_ratio",
]
"""Columns of a cell's trajectory.csv (one row per snapshot step)."""

"""The study: its resolved config, its grid of cells, and the names the workflow shares.

Torch-free: the Snakefile imports this while it builds the DAG.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

from .config import ConfigError, StudyConfig, from_section
from .models.scaling import load_table

CELL_KEYS = ("arch", "scale", "n_train", "seed")
REFERENCES = ("real_holdout", "gaussian_fit", "memoriser", "empirical_flow", "exact_field")
"""The reference rows a model's metrics are read against (``exact_field``: synthetic data only)."""
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
CELL_PATTERN = "runs/{arch}/{scale}/n{n_train}/seed{seed}"
"""A cell's run folder under the results folder."""
CELL_LOG_NAME = "{arch}_{scale}_n{n_train}_seed{seed}"
"""A cell's name in per-job logs and benchmarks (``logs/<rule>/<name>.log``)."""
HEADLINE_METRICS = [
    "val_loss_ratio",
    "gap_ratio",
    "mmd2_pca",
    "precision_pca",
    "recall_pca",
    "one_nn_acc_pca",
    "fd_pca",
    "mode_kl",
    "modes_covered",
    "variance_ratio",
    "memorised_fraction",
    "nn_train_test_ratio",
]
PLOTS = [
    "val_loss_ratio_vs_params",
    "mmd2_pca_vs_params",
    "precision_pca_vs_params",
    "mode_kl_vs_params",
    "mmd2_pca_vs_n_train",
    "memorisation_vs_n_train",
]
ANALYSIS_N_SAMPLES = 300
"""Samples assumed behind each memorised_fraction when summary.csv has no n_samples column."""
ANALYSIS_FIGURES = ["heatmaps", "val_loss_fits", "n_star", "interaction"]
"""Figures of ``fmscale analyze`` under <results>/analysis/ (PNG), written whatever the grid."""


def cells(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Every arch x scale x n_train x seed, in a stable order."""
    keys = ("archs", "scales", "n_train", "seeds")
    combos = itertools.product(*(grid[k] for k in keys))
    return [dict(zip(CELL_KEYS, combo, strict=True)) for combo in combos]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", pattern)
    body = "".join(
        re.escape(p)
        if i % 2 == 0
        else rf"(?P<{p}>{'[0-9]+' if p in ('n_train', 'seed') else '[^/]+'})"
        for i, p in enumerate(parts)
    )
    return re.compile(body + "$")


_CELL_RE = _pattern_regex(CELL_PATTERN)


def parse_cell_dir(relative: str | Path) -> dict[str, Any] | None:
    """The cell of a run folder given relative to the results folder, or None if it is not one."""
    match = _CELL_RE.match(Path(relative).as_posix())
    if match is None:
        return None
    cell = match.groupdict()
    return {**cell, "n_train": int(cell["n_train"]), "seed": int(cell["seed"])}


def cell_digest(cell_json: bytes) -> str:
    """The identity of one training run: the sha256 of its ``cell.json`` bytes.

    evaluate records it in ``metrics.json``; summarize marks metrics whose digest no longer
    matches the cell's ``cell.json`` as stale.
    """
    return hashlib.sha256(cell_json).hexdigest()


def put_first_on_pythonpath(folder: str) -> None:
    """Put ``folder`` first on PYTHONPATH, for the jobs this process starts (the workflow's
    own source for its rules' ``python -m fmscale``); a no-op when it is first already."""
    current = os.environ.get("PYTHONPATH", "")
    if current.split(os.pathsep)[0] != folder:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, current]))


def load_study(config: dict[str, Any]) -> StudyConfig:
    """The study config with every default filled in, after the checks that span sections."""
    study = from_section(StudyConfig, config)
    grid, data = study.grid, study.data
    table = load_table(study.scaling_table)
    for axis, names, known in (
        ("archs", grid.archs, table.archs),
        ("scales", grid.scales, table.scales),
    ):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(
                f"grid.{axis}: {unknown} not in the scaling table {table.path}; "
                f"it has {list(known)}"
            )
    evaluate = study.evaluate
    if data.source == "synthetic" and evaluate.pca_dims > data.synthetic.dim:
        raise ConfigError(
            f"evaluate.pca_dims={evaluate.pca_dims} exceeds the data's dimension "
            f"data.synthetic.dim={data.synthetic.dim}"
        )
    if min(evaluate.n_samples, data.n_test) <= evaluate.knn_k:
        raise ConfigError(
            f"evaluate.knn_k={evaluate.knn_k} needs more than k samples and test rows; "
            f"got n_samples={evaluate.n_samples}, data.n_test={data.n_test}"
        )
    need = max(grid.n_train) + data.n_val + data.n_test
    if data.source == "file":
        if not Path(data.path).exists():
            raise ConfigError(f"data.path: {data.path} does not exist")
    elif data.synthetic.n_rows < need:
        raise ConfigError(
            f"grid.n_train: the largest n_train ({max(grid.n_train)}) + data.n_val "
            f"({data.n_val}) + data.n_test ({data.n_test}) = {need} exceeds "
            f"data.synthetic.n_rows ({data.synthetic.n_rows}); lower n_train or raise n_rows"
        )
    return study


def settings(study: StudyConfig, *sections: str) -> str:
    """The named sections, resolved, as one JSON string for the CLI's ``--settings``.

    Each rule gets only the sections it reads, so Snakemake reruns a job when (and only when)
    settings it depends on change: a new seed or evaluation NFE retrains nothing.
    """
    return json.dumps({name: study.section(name) for name in sections}, sort_keys=True)

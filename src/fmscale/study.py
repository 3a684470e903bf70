"""The study grid and the checks on config.yaml that JSON Schema cannot express.

Torch-free: the Snakefile imports this while it builds the DAG.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from .config import ConfigError, EvalConfig, TrainConfig, from_section
from .models.scaling import load_table

CELL_PATTERN = "runs/{arch}/{scale}/n{n_train}/seed{seed}"
HEADLINE_METRICS = [
    "val_loss_ratio",
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


def cells(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every arch x scale x n_train x seed, in a stable order."""
    keys = ("archs", "scales", "n_train", "seeds")
    return [
        {"arch": a, "scale": s, "n_train": n, "seed": k}
        for a, s, n, k in itertools.product(*(grid[key] for key in keys))
    ]


def cell_dir(results: str | Path, cell: dict[str, Any]) -> Path:
    return Path(results) / CELL_PATTERN.format(**cell)


def settings(config: dict[str, Any], *sections: str) -> str:
    """The named config sections as one JSON string for the CLI's ``--settings``.

    Each rule gets only the sections it reads, so Snakemake reruns a job when (and only when)
    settings it depends on change: a new seed or evaluation NFE retrains nothing.
    """
    return json.dumps({k: config.get(k) or {} for k in sections}, sort_keys=True)


def check_config(config: dict[str, Any]) -> None:
    """Cross-field checks after schema validation; raises ConfigError naming the key."""
    grid = config["grid"]
    table = load_table(config.get("scaling_table"))
    unknown = [a for a in grid["archs"] if a not in table.archs]
    if unknown:
        raise ConfigError(
            f"grid.archs: {unknown} not in the scaling table {table.path}; it has {list(table.archs)}"
        )
    unknown = [s for s in grid["scales"] if s not in table.scales]
    if unknown:
        raise ConfigError(
            f"grid.scales: {unknown} not in the scaling table {table.path}; it has {list(table.scales)}"
        )
    from_section(TrainConfig, config.get("train"), "train")
    from_section(EvalConfig, config.get("evaluate"), "evaluate")
    data = config["data"]
    need = max(grid["n_train"]) + data["n_val"] + data["n_test"]
    if data["source"] == "file":
        if not data.get("path"):
            raise ConfigError("data.path: data.source is 'file' but no path is given")
        if not Path(data["path"]).exists():
            raise ConfigError(f"data.path: {data['path']} does not exist")
    elif data["synthetic"]["n_rows"] < need:
        raise ConfigError(
            f"grid.n_train: the largest n_train ({max(grid['n_train'])}) + data.n_val ({data['n_val']}) "
            f"+ data.n_test ({data['n_test']}) = {need} exceeds data.synthetic.n_rows "
            f"({data['synthetic']['n_rows']}); lower n_train or raise n_rows"
        )

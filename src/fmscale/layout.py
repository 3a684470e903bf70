"""The results folder's layout, one home for each path pattern: run folders, logs, reference
rows, refinement rounds, the gate's outputs, and how a cell is named and found. Torch-free."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

CELL_KEYS = ("dataset", "arch", "scale", "n_train", "seed")
"""What names a cell; ``GRID_AXES`` are the grid's lists of each, in the same order."""
GRID_AXES = ("datasets", "archs", "scales", "n_train", "seeds")
CELL_PATTERN = "runs/{dataset}/{arch}/{scale}/n{n_train}/seed{seed}"
"""A cell's run folder under the results folder: the dataset first, so studies of several
datasets share a results folder without touching each other's cells."""
LEGACY_CELL_PATTERN = "runs/{arch}/{scale}/n{n_train}/seed{seed}"
"""Run folders written before the dataset was part of the path (``fmscale migrate``)."""
CELL_LOG_NAME = "{dataset}/{arch}_{scale}_n{n_train}_seed{seed}"
"""A cell's name in per-job logs and benchmarks (``logs/<rule>/<name>.log``)."""
REFERENCE_PATTERN = "references/{dataset}/n{n_train}.json"
"""The reference rows of one dataset and n_train, under the results folder."""
REFINE_PATTERN = "refine/{dataset}/round{round}.json"
"""The cells refinement round ``round`` added to a dataset (``fmscale.refine``)."""
PARAMS_DIR = "params/{dataset}"
"""The gate's outputs for one dataset: ``params.csv``, ``params.md`` and ``table.yaml`` (the
table the cells train: the scaling table, fitted at the data's D when it is a packaged one)."""


def cells(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dataset x arch x scale x n_train x seed of a grid (``GRID_AXES``), in a stable
    order."""
    combos = itertools.product(*(grid[k] for k in GRID_AXES))
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


def parse_cell_dir(relative: str | Path, pattern: str = CELL_PATTERN) -> dict[str, Any] | None:
    """The cell of a run folder given relative to the results folder, or None if it is not one."""
    match = _pattern_regex(pattern).match(Path(relative).as_posix())
    if match is None:
        return None
    cell = match.groupdict()
    return {**cell, "n_train": int(cell["n_train"]), "seed": int(cell["seed"])}


def cell_folders(results: str | Path) -> list[tuple[dict[str, Any], Path]]:
    """The run folders under ``results`` (``CELL_PATTERN``) with their cells, in path order,
    trained or not."""
    results = Path(results)
    found = []
    for folder in sorted(results.glob(re.sub(r"\{\w+\}", "*", CELL_PATTERN))):
        cell = parse_cell_dir(folder.relative_to(results)) if folder.is_dir() else None
        if cell is not None:
            found.append((cell, folder))
    return found


def legacy_cells(results: str | Path) -> list[Path]:
    """Run folders of ``results`` in the layout before datasets had their own folder."""
    results = Path(results)
    return sorted(
        p
        for p in results.glob("runs/*/*/n*/seed*")
        if p.is_dir() and parse_cell_dir(p.relative_to(results), LEGACY_CELL_PATTERN)
    )


def check_layout(results: str | Path) -> None:
    """ConfigError naming ``fmscale migrate`` when ``results`` holds cells of the old layout."""
    old = legacy_cells(results)
    if old:
        raise ConfigError(
            f"{results}: {len(old)} run folder(s) in the layout before datasets had their own "
            f"folder (e.g. {old[0]}); move them with `fmscale migrate {results}` (nothing is "
            "retrained: cells, references and the gate's table move under their dataset's name)"
        )


def cell_digest(cell_json: bytes) -> str:
    """The identity of one training run: the sha256 of its ``cell.json`` bytes.

    evaluate records it in ``metrics.json``; summarize marks metrics whose digest no longer
    matches the cell's ``cell.json`` as stale.
    """
    return hashlib.sha256(cell_json).hexdigest()

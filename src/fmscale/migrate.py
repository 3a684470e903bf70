"""``fmscale migrate``: move a results folder of the layout before datasets had their own folder
(``runs/<arch>/...``) into today's (``runs/<dataset>/<arch>/...``), retraining nothing.

Moves, per dataset: run folders, reference rows, the gate's table, per-cell logs and
benchmarks. Files keep their modification times (a rename), so Snakemake finds the moved cells
up to date. The dataset of a cell is the ``data.name`` its ``cell.json`` recorded (``dataset``
when it recorded none).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .config import DataConfig
from .errors import MigrateError
from .layout import (
    CELL_LOG_NAME,
    CELL_PATTERN,
    LEGACY_CELL_PATTERN,
    PARAMS_DIR,
    REFERENCE_PATTERN,
    legacy_cells,
    parse_cell_dir,
)

LEGACY_LOG_NAME = "{arch}_{scale}_n{n_train}_seed{seed}"


def _recorded_dataset(folder: Path) -> str | None:
    """The dataset name a legacy cell's cell.json recorded, or None."""
    try:
        data = json.loads((folder / "cell.json").read_text())["config"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return DataConfig.from_dict(data).name


def _move(src: Path, dst: Path, moved: list[tuple[Path, Path]]) -> None:
    if not src.exists():
        return
    if dst.exists():
        raise MigrateError(f"{dst} exists already; not overwriting it with {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    moved.append((src, dst))


def migrate_results(results: str | Path, dataset: str | None = None) -> list[tuple[Path, Path]]:
    """Move every legacy cell of ``results`` under its dataset; return (from, to) of each move.

    ``dataset``: the name for every legacy cell (default: what each cell.json recorded). The
    folder-wide files of the old layout (references, params) go to the one dataset found;
    with cells of several datasets they stay where they are, and each study recomputes its
    own (they are cheap).
    """
    results = Path(results)
    old = legacy_cells(results)
    if not old:
        raise MigrateError(f"{results}: no run folders in the old layout (runs/<arch>/...)")
    cells = []
    for folder in old:
        cell = parse_cell_dir(folder.relative_to(results), LEGACY_CELL_PATTERN)
        name = dataset or _recorded_dataset(folder)
        if name is None:
            raise MigrateError(
                f"{folder}/cell.json: records no data.name; give the dataset's name "
                "(`fmscale migrate RESULTS --dataset NAME`, the study's data.name)"
            )
        cells.append({**cell, "dataset": name})
    moved: list[tuple[Path, Path]] = []
    for cell in cells:
        old_cell = {k: v for k, v in cell.items() if k != "dataset"}
        _move(
            results / LEGACY_CELL_PATTERN.format(**old_cell),
            results / CELL_PATTERN.format(**cell),
            moved,
        )
        for kind in ("logs/train", "logs/evaluate"):
            _move(
                results / kind / f"{LEGACY_LOG_NAME.format(**old_cell)}.log",
                results / kind / f"{CELL_LOG_NAME.format(**cell)}.log",
                moved,
            )
        for kind in ("benchmarks/train", "benchmarks/evaluate"):
            _move(
                results / kind / f"{LEGACY_LOG_NAME.format(**old_cell)}.tsv",
                results / kind / f"{CELL_LOG_NAME.format(**cell)}.tsv",
                moved,
            )
    datasets = sorted({c["dataset"] for c in cells})
    if len(datasets) == 1:
        (name,) = datasets
        for ref in sorted(results.glob("references/n*.json")):
            n_train = int(ref.stem[1:])
            target = REFERENCE_PATTERN.format(dataset=name, n_train=n_train)
            _move(ref, results / target, moved)
        for suffix in (".csv", ".md"):
            _move(
                results / f"params{suffix}",
                results / PARAMS_DIR.format(dataset=name) / f"params{suffix}",
                moved,
            )
    _remove_empty(results / "runs")
    return moved


def _remove_empty(folder: Path) -> None:
    """Remove the empty folders the moves left under ``folder``."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()

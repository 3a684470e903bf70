"""Reading a results folder: one summary row per cell (its cell.json, metrics.json and status)
and per reference row, and every cell's trajectory."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..catalogue import HEADLINE_METRICS, REFERENCES, SYNTHETIC_ONLY
from ..errors import ResultsError
from ..layout import (
    CELL_KEYS,
    CELL_LOG_NAME,
    CELL_PATTERN,
    REFERENCE_PATTERN,
    cell_digest,
    cell_folders,
    cells,
    check_layout,
)
from ..record import (
    BUDGET_FIELDS,
    COLUMNS,
    GAP_FIELDS,
    INTEGER_COLUMNS,
    MAMBA_KERNEL_KEYS,
    METRIC_FIELDS,
    SAMPLES_FIELD,
    TRAIN_FIELDS,
    TRAJECTORY_FIELDS,
)
from ..refine import refined_cells
from .tables import is_empty

log = logging.getLogger(__name__)


def _read_json(path: Path) -> tuple[dict[str, Any], bytes] | None:
    """The JSON object in ``path`` and its bytes; None if the file is missing."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: unreadable (not a JSON object)")
    return data, raw


def _require(data: dict[str, Any], keys: Iterable[str], path: Path) -> None:
    """ResultsError naming ``path`` and the first of ``keys`` that ``data`` lacks."""
    missing = [key for key in keys if key not in data]
    if missing:
        raise ResultsError(f"{path}: unreadable (no {missing[0]!r})")


def _last_error_line(log: Path) -> str:
    """The last line of ``log`` naming an error (else its last line); "not run" if absent."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return "not run"
    except OSError as exc:
        return f"{log}: unreadable ({exc})"
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "preempted" in line.lower()]
    return (errors or lines or ["empty log"])[-1][:200]


def _failure_reason(results: Path, cell: dict[str, Any], rule: str) -> str:
    """The last error line of the cell's ``rule`` (train or evaluate) job log."""
    return _last_error_line(results / "logs" / rule / f"{CELL_LOG_NAME.format(**cell)}.log")


def _status(
    results: Path, cell: dict[str, Any], digest: str | None, metrics: dict[str, Any] | None
) -> tuple[str, str | None]:
    """(status, reason) of a cell from its cell.json digest (None: no cell.json) and metrics.

    Stale: metrics.json scored another training run than the cell.json present (its
    ``cell_digest`` differs), or cell.json is gone (deleted by a rerun whose training then
    failed). A metrics.json without ``cell_digest`` (written before it existed) counts as
    current when cell.json exists.
    """
    if digest is None:
        reason = _failure_reason(results, cell, "train")
        if metrics is None:
            return "failed", reason
        return (
            "stale",
            f"cell.json missing: metrics.json is from a deleted run (train log: {reason})",
        )
    if metrics is None:
        return "failed", _failure_reason(results, cell, "evaluate")
    if metrics.get("cell_digest", digest) != digest:
        reason = _failure_reason(results, cell, "evaluate")
        return "stale", f"metrics.json scored another run than cell.json (evaluate log: {reason})"
    return "ok", None


def _train_columns(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The cell.json columns of a run folder and the file's sha256 (what evaluate records).

    ({}, None) if there is no cell.json.
    """
    path = folder / "cell.json"
    found = _read_json(path)
    if found is None:
        return {}, None
    info, raw = found
    _require(info, TRAIN_FIELDS, path)
    columns = {column: info[key] for key, column in TRAIN_FIELDS.items()}
    columns |= {key: info[key] for key in BUDGET_FIELDS if key in info}
    columns["mamba_kernel"] = next((info[k] for k in MAMBA_KERNEL_KEYS if k in info), None)
    return columns, cell_digest(raw)


def _metrics(folder: Path) -> dict[str, Any] | None:
    """The run folder's metrics.json, checked for the keys the summary reads (None if missing)."""
    path = folder / "metrics.json"
    found = _read_json(path)
    if found is None:
        return None
    metrics = found[0]
    _require(metrics, METRIC_FIELDS, path)
    if not isinstance(metrics["metrics"], dict):
        raise ResultsError(f"{path}: unreadable ('metrics' is not an object)")
    return metrics


def _metric_columns(m: dict[str, Any]) -> dict[str, Any]:
    """The summary columns of a checked metrics.json: losses, headline NFE, its metrics."""
    losses = {key: m[key] for key in (*METRIC_FIELDS, *GAP_FIELDS, SAMPLES_FIELD) if key in m}
    return {key: value for key, value in losses.items() if key != "metrics"} | m["metrics"]


def _cell_row(results: Path, cell: dict[str, Any]) -> dict[str, Any]:
    """The summary row of one cell; an unreadable file fails the cell, naming the file."""
    folder = results / CELL_PATTERN.format(**cell)
    row: dict[str, Any] = {"kind": "model", **cell}
    try:
        train, digest = _train_columns(folder)
        row.update(train)
        metrics = _metrics(folder)
    except ResultsError as exc:
        return {**row, "status": "failed", "error": str(exc)}
    status, reason = _status(results, cell, digest, metrics)
    row.update(status=status, error=reason)
    if status == "ok":
        row.update(_metric_columns(metrics))
    return row


def _references(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The reference rows of a ``references/n<N>.json`` (name -> metrics) and the columns
    every row shares (samples behind them, headline NFE; absent from older files)."""
    found = _read_json(path)
    if found is None:
        raise ResultsError(f"{path}: missing")
    refs = found[0].get("references")
    if not isinstance(refs, dict) or not all(isinstance(m, dict) for m in refs.values()):
        raise ResultsError(f"{path}: unreadable (no 'references' object of metrics)")
    shared = {key: found[0].get(key) for key in (SAMPLES_FIELD, "headline_nfe")}
    return refs, shared


def _reference_rows(results: Path, dataset: str, n_train: int) -> list[dict[str, Any]]:
    """The reference rows of a dataset for ``n_train``; status "missing" (and why) if their
    file is bad."""
    base = {"kind": "reference", "dataset": dataset, "scale": "", "n_train": n_train, "seed": None}
    try:
        path = results / REFERENCE_PATTERN.format(dataset=dataset, n_train=n_train)
        refs, shared = _references(path)
    except ResultsError as exc:
        return [
            {**base, "arch": name, "status": "missing", "error": str(exc)} for name in REFERENCES
        ]
    base |= shared
    return [_reference_row(base, name, metrics) for name, metrics in refs.items()]


def _reference_row(base: dict[str, Any], name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """One reference row: its metrics, or status "skipped" and the reason evaluate gave."""
    if "skipped" in metrics:
        return {**base, "arch": name, "status": "skipped", "error": metrics["skipped"]}
    return {**base, "arch": name, "status": "ok", **metrics}


def _cell_key(cell: dict[str, Any]) -> tuple:
    return tuple(cell[k] for k in CELL_KEYS)


def discover_grids(results: Path) -> dict[str, dict[str, list]]:
    """Per dataset, the grid implied by its run folders present (those of refined cells left
    out: they are listed on their own), datasets in name order."""
    found = [cell for cell, _ in cell_folders(results)]
    refined = {
        _cell_key(c) for d in {c["dataset"] for c in found} for c in refined_cells(results, d)
    }
    found = [c for c in found if _cell_key(c) not in refined]
    axes = (("archs", "arch"), ("scales", "scale"), ("n_train", "n_train"), ("seeds", "seed"))
    return {
        dataset: {
            "datasets": [dataset],
            **{
                axis: sorted({c[key] for c in found if c["dataset"] == dataset})
                for axis, key in axes
            },
        }
        for dataset in sorted({c["dataset"] for c in found})
    }


def study_grids(results: Path, grid: dict[str, list] | None) -> dict[str, dict[str, list]]:
    """The grids to summarise: the study's own (``grid``: its cells listed whether finished
    or not) and every other dataset's cells found in ``results`` (finished or failed there)."""
    grids = discover_grids(results)
    if grid is None:
        return grids
    own = {dataset: {**grid, "datasets": [dataset]} for dataset in grid["datasets"]}
    return own | {d: g for d, g in grids.items() if d not in own}


def study_cells(results: Path, dataset: str, grid: dict[str, list]) -> list[dict[str, Any]]:
    """The cells summarised for one dataset: its grid's, then those the refinement rounds
    added (``refine.refined_cells``, whether finished or not)."""
    listed = cells(grid)
    keys = {_cell_key(c) for c in listed}
    return listed + [c for c in refined_cells(results, dataset) if _cell_key(c) not in keys]


def results_folder(results: str | Path) -> Path:
    """``results`` as a Path; ResultsError if there is no such folder (nothing to summarise)."""
    results = Path(results)
    if not results.is_dir():
        raise ResultsError(f"{results}: no such results folder; run the study first")
    check_layout(results)
    return results


def _frame(rows: list[dict[str, Any]], synthetic: bool) -> pd.DataFrame:
    """The rows with every column tables and plots read; counts as integers. Unless a dataset
    is ``synthetic``, the synthetic-only metrics are left out where no row has them (real data:
    they need the generating distribution)."""
    frame = pd.DataFrame(rows)
    columns = dict.fromkeys([*COLUMNS, *frame.columns, *HEADLINE_METRICS])
    frame = frame.reindex(columns=list(columns))
    if not synthetic:
        frame = frame.drop(
            columns=[c for c in SYNTHETIC_ONLY if c in frame.columns and is_empty(frame, c)]
        )
    return frame.astype({c: "Int64" for c in INTEGER_COLUMNS if c in frame.columns})


def collect(
    results: str | Path, grid: dict[str, list] | None = None, synthetic: bool = False
) -> pd.DataFrame:
    """One row per cell of ``study_grids`` and of the refinement rounds (failed, stale or
    missing cells included) and per reference row at each of their n_train, every dataset's;
    ``synthetic``: the study's data is (keep its columns)."""
    results = results_folder(results)
    rows = []
    for dataset, part in study_grids(results, grid).items():
        listed = study_cells(results, dataset, part)
        rows += [_cell_row(results, c) for c in listed]
        refined = sorted({c["n_train"] for c in listed} - set(part["n_train"]))
        for n_train in [*part["n_train"], *refined]:
            rows += _reference_rows(results, dataset, n_train)
    return _frame(rows, synthetic)


def cell_rows(results: str | Path, listed: list[dict[str, Any]]) -> pd.DataFrame:
    """The summary rows of the cells ``listed`` (status ok, failed or stale, with their
    metrics), as ``collect`` makes them: what a refinement round reads."""
    results = results_folder(results)
    return _frame([_cell_row(results, c) for c in listed], synthetic=True)


def trajectories(results: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Every finished cell's trajectory.csv rows, keyed by the cell (one table to analyse).

    Cells without one (trained before trajectories, or with ``trajectory_points: 0``) are left
    out; an unreadable one is left out with a warning in the log.
    """
    keys = ["dataset", "arch", "scale", "n_train", "seed", "n_params"]
    parts = []
    for cell in frame[(frame.kind == "model") & (frame.status == "ok")].itertuples():
        path = results / CELL_PATTERN.format(**{k: getattr(cell, k) for k in keys[:5]})
        path = path / "trajectory.csv"
        if not path.exists():
            continue
        try:
            part = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); left out of trajectories.csv", path, exc)
            continue
        parts.append(part.assign(**{k: getattr(cell, k) for k in keys}))
    if not parts:
        return pd.DataFrame(columns=[*keys, *TRAJECTORY_FIELDS])
    table = pd.concat(parts, ignore_index=True)
    return table[[*keys, *[c for c in table.columns if c not in keys]]]

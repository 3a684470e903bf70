"""summary.csv and trajectories.csv as the analysis reads them: the required columns, the model
rows, the scale order, the settings and the analysis's error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import AnalysisError
from ..record import ANALYSIS_N_SAMPLES
from ..study_config import AnalysisConfig

SUMMARY_COLUMNS = (
    "kind",
    "arch",
    "scale",
    "n_train",
    "seed",
    "status",
    "n_params",
    "val_loss",
    "val_loss_ratio",
    "memorised_fraction",
)
"""Columns of summary.csv the analysis cannot do without."""


NUMERIC_COLUMNS = (
    "n_train",
    "seed",
    "n_params",
    "val_loss",
    "val_loss_ratio",
    "memorised_fraction",
)


TRAJECTORY_COLUMNS = ("arch", "scale", "n_train", "seed", "step", "memorised_fraction")


MIN_LEVELS = 3
"""Distinct scales (and n_train values) an exponent needs."""


@dataclass(frozen=True)
class Settings:
    """How the analysis reads the study: the crossing levels, bootstrap resamples and seed
    (``analysis`` config section), samples behind a memorised_fraction when summary.csv has
    no n_samples column, and the refits' grid starts."""

    levels: tuple[float, ...] = AnalysisConfig.levels
    resamples: int = AnalysisConfig.resamples
    seed: int = AnalysisConfig.seed
    n_samples: int = ANALYSIS_N_SAMPLES
    refit_grid_starts: int = 1


def read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """The CSV at ``path``; AnalysisError naming the file (and column) if it cannot serve."""
    if not path.is_file():
        raise AnalysisError(f"{path}: missing (run `fmscale summarize` first)")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path}: empty (run `fmscale summarize` first)") from None
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path}: unreadable ({exc})") from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise AnalysisError(f"{path}: no column {missing[0]!r} (the analysis needs it)")
    return frame


def read_summary(path: Path) -> pd.DataFrame:
    """summary.csv, checked for its columns, their types and at least one row."""
    summary = read_table(path, SUMMARY_COLUMNS)
    if summary.empty:
        raise AnalysisError(f"{path}: empty (no rows; run `fmscale summarize` first)")
    for column in NUMERIC_COLUMNS:
        if not pd.api.types.is_numeric_dtype(summary[column]):
            raise AnalysisError(f"{path}: column {column!r} is not numeric")
    return summary


def model_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The finished model cells (status ok, with a val_loss and a parameter count)."""
    rows = summary[(summary.kind == "model") & (summary.status == "ok")]
    rows = rows.dropna(subset=["val_loss", "n_params"])
    return rows.astype({"n_train": int, "seed": int, "n_params": float}).reset_index(drop=True)


def scale_order(rows: pd.DataFrame) -> list[str]:
    """The scales present in ``rows``, smallest parameter count first."""
    return list(rows.groupby("scale").n_params.median().sort_values(kind="stable").index)


def cell_name(row: Any) -> str:
    """A model cell as ``arch/scale/n<N>/seed<k>``."""
    return f"{row.arch}/{row.scale}/n{int(row.n_train)}/seed{int(row.seed)}"


def one_dataset(
    frame: pd.DataFrame, dataset: str | None, path: Path
) -> tuple[pd.DataFrame, str | None]:
    """The rows of one dataset (``dataset``, or the only one there is) and its name; a table
    without a dataset column (written before it existed) is one dataset, unnamed."""
    if "dataset" not in frame.columns:
        return frame, dataset
    found = list(dict.fromkeys(frame.dataset.dropna()))
    if dataset is None:
        if len(found) > 1:
            raise AnalysisError(
                f"{path}: rows of {len(found)} datasets ({', '.join(found)}); name one "
                "(`fmscale analyze --data-name NAME`)"
            )
        dataset = found[0] if found else None
    elif found and dataset not in found:
        raise AnalysisError(f"{path}: no rows of dataset {dataset!r}; it has {found}")
    return frame[frame.dataset == dataset].reset_index(drop=True), dataset

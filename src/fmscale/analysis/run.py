"""The analysis of one results folder: analysis.json's content from summary.csv (and
trajectories.csv), then analysis.md, the figures and the LaTeX tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import atomic_write
from . import bootstrap, crossover
from .checks import result_checks
from .compare import comparisons
from .figures import write_figures
from .fits import LawResult, fit_laws, fit_n_laws
from .interaction import interaction
from .latex import write_tables
from .report import markdown
from .rows import (
    TRAJECTORY_COLUMNS,
    Settings,
    model_rows,
    one_dataset,
    read_summary,
    read_table,
    scale_order,
)


def _clean(value: Any) -> Any:
    """JSON-ready: floats to 6 significant digits, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def analyze_rows(
    summary: pd.DataFrame, trajectories: pd.DataFrame | None, settings: Settings
) -> tuple[dict[str, Any], dict[str, dict[str, LawResult]], pd.DataFrame]:
    """analysis.json's content, the fits (with draws, for figures) and the model rows."""
    rows = model_rows(summary)
    with bootstrap.single_threaded_blas():
        laws = fit_laws(rows, settings)
        n_laws = fit_n_laws(rows, settings)
    onset = crossover.onset(
        rows, summary, settings.levels, settings.resamples, settings.seed, settings.n_samples
    )
    tau = {} if trajectories is None else crossover.tau_mem(trajectories, settings.levels)
    report = {
        "fits": {arch: {t: law.entry for t, law in fits.items()} for arch, fits in laws.items()},
        "n_laws": n_laws,
        **onset,
        "tau_mem": tau,
        "interaction": interaction(rows, scale_order(rows), settings.n_samples),
        "comparisons": comparisons(rows, settings),
        "checks": result_checks(summary, rows, settings),
        "bootstrap": {"resamples": settings.resamples, "seed": settings.seed},
        "n_samples": settings.n_samples,
    }
    return _clean(report), laws, rows


def analyze(
    results: str | Path, settings: Settings | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Read ``results``/summary.csv (and trajectories.csv if present); write analysis.json,
    analysis.md and the figures under ``results``/analysis/; return analysis.json's content.

    ``dataset``: whose rows to analyse when summary.csv holds several datasets."""
    results = Path(results)
    settings = settings or Settings()
    summary, dataset = one_dataset(
        read_summary(results / "summary.csv"), dataset, results / "summary.csv"
    )
    path = results / "trajectories.csv"
    trajectories = None
    if path.exists():
        trajectories = one_dataset(read_table(path, TRAJECTORY_COLUMNS), dataset, path)[0]
    report, laws, rows = analyze_rows(summary, trajectories, settings)
    report["dataset"] = dataset
    atomic_write(results / "analysis.json", json.dumps(report, indent=2) + "\n")
    atomic_write(results / "analysis.md", markdown(report))
    write_figures(rows, report, laws, results / "analysis")
    write_tables(report, results / "analysis")
    return report

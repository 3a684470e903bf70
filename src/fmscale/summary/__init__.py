"""Summary tables and plots from finished cells; retrains nothing.

``summary.csv`` holds one row per cell (its config, status and every headline-NFE metric) and
one row per reference (kind = reference); docs/metrics.md documents every column.
``summary.md`` pivots each headline metric: rows arch x scale, columns n_train, mean ± std over
seeds, with the reference rows below.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import atomic_write
from ..layout import GRID_AXES
from .collect import (
    ResultsError,
    cell_rows,
    collect,
    discover_grids,
    results_folder,
    study_cells,
    study_grids,
    trajectories,
)
from .plots import write_plots
from .tables import is_empty, pivot, summary_markdown

__all__ = [
    "ResultsError",
    "cell_rows",
    "collect",
    "discover_grids",
    "pivot",
    "study_cells",
    "study_grids",
    "summarize",
    "summary_markdown",
    "trajectories",
    "write_plots",
]


def summarize(
    results: str | Path, grid: dict[str, list] | None = None, synthetic: bool | None = None
) -> pd.DataFrame:
    """Write summary.csv, trajectories.csv, summary.md and plots/ under ``results``; return
    the frame.

    ``grid``: the study's (``study.study_grid``), whose cells are listed finished or not; cells
    of other datasets in ``results`` are listed too. The plots are of the study's dataset (the
    only one found when ``grid`` is None); ``synthetic`` (default: whether its rows have the
    synthetic-only metrics) says whether the synthetic-only plots are drawn. Failed, stale and
    missing cells and reference rows are listed, never fatal; only a missing ``results`` folder
    raises (ResultsError), or several datasets without a ``grid`` to say which to plot.
    """
    results = results_folder(results)
    grids = study_grids(results, grid)
    if grid is not None:
        dataset = grid["datasets"][0]
    elif len(grids) > 1:
        raise ResultsError(
            f"{results}: cells of {len(grids)} datasets ({', '.join(grids)}); give the study's "
            "config (--config) to say whose plots to draw"
        )
    else:
        dataset = next(iter(grids), None)
    frame = collect(results, grid, bool(synthetic))
    own = frame[frame.dataset == dataset]
    if synthetic is None:
        synthetic = not is_empty(own, "mode_kl")
    empty_grid = {axis: [] for axis in GRID_AXES}
    atomic_write(results / "summary.csv", frame.to_csv(index=False))
    atomic_write(results / "trajectories.csv", trajectories(results, frame).to_csv(index=False))
    atomic_write(results / "summary.md", summary_markdown(frame, grids))
    write_plots(own, grids.get(dataset, empty_grid), results / "plots", synthetic)
    return frame

"""Bootstrap draws for the analysis: stratified by cell and reproducible.

Every draw keeps the study's design (each arch x scale x n_train cell stays in the resample):
with two or more seeds in every cell, the seeds are resampled within each cell, their
deviations from the cell's mean inflated by sqrt(k / (k - 1)) for k seeds (a resample of k
values spreads (k - 1) / k as much as the values: with 3 seeds the floor E's CI covered the
truth 77-85% of the time without it, benchmarks/recovery.py); with a single seed somewhere,
the law's residuals are resampled instead (a residual bootstrap at the fixed design, inflated
by sqrt(m / (m - p)) for the p fitted parameters). Torch-free.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from . import lawfit

ARCH_CELL_KEYS = ("scale", "n_train")
"""What makes one cell among one arch's rows (its seeds are the replicates)."""


def stream(seed: int, *keys: Any) -> np.random.Generator:
    """A generator for one resampled quantity: its own stream, whatever else is analysed."""
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, keys)).encode())])


def percentile_ci(values: np.ndarray) -> list[float]:
    """The percentile 95% interval of bootstrap values (order statistics: infinities allowed)."""
    return np.quantile(values, [0.025, 0.975], method="inverted_cdf").tolist()


def cells(rows: pd.DataFrame, keys: tuple[str, ...] = ARCH_CELL_KEYS) -> list[np.ndarray]:
    """Row positions of each cell (rows sharing ``keys``), in a fixed order."""
    return list(rows.reset_index(drop=True).groupby(list(keys), sort=True).indices.values())


def replicated(groups: list[np.ndarray]) -> bool:
    """Every cell has two or more seeds (so seeds can be resampled within it)."""
    return all(len(group) >= 2 for group in groups)


def within_cells(groups: list[np.ndarray], size: int, resamples: int, rng) -> np.ndarray:
    """Row indices [resamples, size]: each row replaced by a random seed of its own cell."""
    picks = np.empty((resamples, size), dtype=np.int64)
    for group in groups:
        picks[:, group] = group[rng.integers(0, len(group), (resamples, len(group)))]
    return picks


def law_targets(
    rows: pd.DataFrame,
    points: lawfit.Points,
    theta: np.ndarray,
    free: int,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """Bootstrap log targets [resamples, m] at the fixed design, and the scheme's name."""
    groups = cells(rows)
    size = len(points.log_target)
    if replicated(groups):
        picks = within_cells(groups, size, resamples, rng)
        centre, inflate = np.empty(size), np.empty(size)
        for group in groups:
            centre[group] = points.log_target[group].mean()
            inflate[group] = np.sqrt(len(group) / (len(group) - 1))
        return centre + inflate * (points.log_target[picks] - centre), "seeds within cells"
    fitted = lawfit.log_prediction(theta, points.log_params, points.log_n)
    residual = points.log_target - fitted
    residual = (residual - residual.mean()) * np.sqrt(size / max(size - free, 1))
    picks = rng.integers(0, size, (resamples, size))
    return fitted + residual[picks], "residuals (one seed)"


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread: the analysis solves thousands of 5-parameter problems, where
    OpenBLAS's threads cost far more than they save (measured: docs/decisions/analysis-speed.md)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield

"""95% confidence intervals shared by the analysis: the normal quantile, the Student-t interval
of a mean, and the Wilson interval of a proportion, with the trials behind each row's
memorised_fraction. Torch-free."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

Z95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal."""


def t_interval(values: np.ndarray) -> list[float]:
    """The 95% Student-t interval of the mean of two or more values."""
    from scipy import stats

    mean = float(values.mean())
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return [mean - half, mean + half]


def wilson(p: float, n: int) -> list[float]:
    """The 95% Wilson score interval of a proportion p of n (stays inside [0, 1])."""
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    low, high = centre - half, centre + half
    # At p = 0 (or 1) the bound is 0 (1) exactly; rounding leaves ~1e-19 (1 - 1e-16).
    return [0.0 if low < 1e-12 else low, 1.0 if high > 1 - 1e-12 else high]


def n_samples_of(rows: pd.DataFrame, default: int) -> np.ndarray:
    """Samples behind each row's memorised_fraction: its n_samples column, else ``default``."""
    if "n_samples" in rows.columns:
        return rows.n_samples.fillna(default).to_numpy(int)
    return np.full(len(rows), default)

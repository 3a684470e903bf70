"""The collapse fit: memorised_fraction as one curve F(n / N^z) of all an arch's cells, its z
with a bootstrap CI (``crossover.onset`` reports it)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .bootstrap import percentile_ci
from .intervals import n_samples_of

COLLAPSE_Z = np.round(np.arange(-1.0, 3.0001, 0.01), 2)
"""The collapse exponents searched (the estimate at either end is reported as at bound)."""


COLLAPSE_FLOOR = 0.02
"""A pair of points both below this memorised_fraction (or below the level of unseen rows,
real_holdout's, when higher) says nothing about the collapse."""


MIN_COLLAPSE_PAIRS = 3
"""Overlapping informative pairs a collapse exponent needs."""


def cell_error(part: pd.DataFrame, n_samples: int) -> dict[int, float]:
    """Standard error of each n_train's mean memorised_fraction: over seeds, never below the
    binomial error of the samples pooled over its seeds (at least one sample's worth, so
    seeds that agree at 0 or 1 keep an error)."""
    out = {}
    for n, cell in part.groupby("n_train"):
        p = cell.memorised_fraction.to_numpy(float)
        trials = float(n_samples_of(cell, n_samples).sum())
        binomial = math.sqrt(max(p.mean() * (1 - p.mean()), 1 / trials) / trials)
        seeds = float(p.std(ddof=1) / math.sqrt(len(p))) if len(p) >= 2 else 0.0
        out[n] = max(seeds, binomial)
    return out


def collapse_loss(
    x: np.ndarray, scale: np.ndarray, y: np.ndarray, floor: float = COLLAPSE_FLOOR
) -> np.ndarray:
    """How far apart the scales' curves lie at one abscissa ``x`` [m] (per row of y [R, m]):
    the mean squared difference between each point and every other scale's curve, linear in
    x, where that curve covers it; pairs of two fractions below ``floor`` are left out. inf
    where fewer than MIN_COLLAPSE_PAIRS pairs remain."""
    i_list, j0_list, j1_list, w_list = [], [], [], []
    for s in np.unique(scale):
        own = np.flatnonzero(scale == s)
        own = own[np.argsort(x[own])]
        xs = x[own]
        if len(xs) < 2:
            continue
        for i in np.flatnonzero(scale != s):
            k = np.searchsorted(xs, x[i])
            if 0 < k < len(xs) or x[i] == xs[0]:
                k = max(k, 1)
                w = (x[i] - xs[k - 1]) / (xs[k] - xs[k - 1])
                i_list.append(i)
                j0_list.append(own[k - 1])
                j1_list.append(own[k])
                w_list.append(w)
    if not i_list:
        return np.full(len(y), np.inf)
    w = np.array(w_list)
    predicted = (1 - w) * y[:, j0_list] + w * y[:, j1_list]
    actual = y[:, i_list]
    informative = np.maximum(actual, predicted) >= floor
    count = informative.sum(axis=1)
    total = ((actual - predicted) ** 2 * informative).sum(axis=1)
    return np.where(count >= MIN_COLLAPSE_PAIRS, total / np.maximum(count, 1), np.inf)


def collapse(
    log_n: np.ndarray,
    log_params: np.ndarray,
    scale: np.ndarray,
    means: np.ndarray,
    draws: np.ndarray,
    floor: float = COLLAPSE_FLOOR,
) -> dict[str, Any]:
    """z of memorised_fraction ~ F(log n - z log N): the z on COLLAPSE_Z whose collapse loss
    is least, for the cell means and for each bootstrap row of ``draws`` [R, m]; fractions
    below ``floor`` (the level of unseen rows, at least COLLAPSE_FLOOR) carry no shape."""
    informative = [np.sum(means[scale == s] >= floor) for s in np.unique(scale)]
    if sum(count >= 2 for count in informative) < 2:
        return {"verdict": f"unidentified: < 2 scales with 2+ n_train memorising >= {floor:.3g}"}
    losses = np.stack(
        [
            collapse_loss(log_n - z * log_params, scale, np.vstack([means, draws]), floor)
            for z in COLLAPSE_Z
        ]
    )
    finite = np.isfinite(losses)
    if not finite[:, 0].any():
        return {"verdict": f"fewer than {MIN_COLLAPSE_PAIRS} overlapping pairs at any z"}
    best = COLLAPSE_Z[np.argmin(np.where(finite, losses, np.inf), axis=0)]
    estimate, boot = float(best[0]), best[1:][finite[:, 1:].any(axis=0)]
    edges = (COLLAPSE_Z[0], COLLAPSE_Z[-1])
    entry = {
        "estimate": estimate,
        "ci": percentile_ci(boot) if len(boot) else None,
        "loss": float(losses[:, 0][COLLAPSE_Z == estimate][0]),
        "loss_at_z1": float(losses[:, 0][COLLAPSE_Z == 1.0][0]),
        "loss_at_z0": float(losses[:, 0][COLLAPSE_Z == 0.0][0]),
    }
    if estimate in edges:
        return entry | {"ci": None, "verdict": f"at bound: z = {estimate:g}"}
    at_edge = np.isin(boot, edges).mean() if len(boot) else 1.0
    if at_edge > 0.025:
        return entry | {"ci": None, "verdict": f"CI at bound: z at an end in {at_edge:.0%}"}
    return entry | {"verdict": "ok"}

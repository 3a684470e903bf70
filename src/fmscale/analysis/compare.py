"""Paired comparisons of architectures on the catalogue's compared metrics, cell by cell."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from ..catalogue import COMPARED_METRICS
from . import bootstrap
from .bootstrap import percentile_ci
from .intervals import t_interval
from .rows import Settings, scale_order


def _paired(first: pd.DataFrame, second: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of two groups matched on (n_train, seed), with ``difference`` = first - second."""
    keys = ["n_train", "seed"]
    pairs = first[[*keys, metric]].merge(second[[*keys, metric]], on=keys, suffixes=("_a", "_b"))
    pairs["difference"] = pairs[f"{metric}_a"] - pairs[f"{metric}_b"]
    return pairs.dropna(subset=["difference"])


MIN_BOOTSTRAP_PAIRS = 10
"""Below this many pairs a percentile bootstrap of the mean under-covers (3 pairs have 10
distinct resamples): the CI is then the paired Student-t interval."""


def _comparison(
    differences: np.ndarray, rng: np.random.Generator, resamples: int, **labels: Any
) -> dict[str, Any]:
    """The mean paired difference with its 95% CI over the pairs: a percentile bootstrap from
    MIN_BOOTSTRAP_PAIRS pairs on, the Student-t interval below (none for a single pair)."""
    count, mean = len(differences), float(differences.mean())
    if count >= MIN_BOOTSTRAP_PAIRS:
        means = differences[rng.integers(0, count, (resamples, count))]
        ci, method = percentile_ci(means.mean(axis=1)), "bootstrap"
    elif count >= 2:
        ci, method = t_interval(differences), "t"
    else:
        ci, method = None, None
    resolved = ci is not None and (ci[0] > 0 or ci[1] < 0)
    return labels | {
        "n_pairs": count,
        "difference": mean,
        "ci": ci,
        "ci_method": method,
        "resolved": bool(resolved),
    }


def compare(
    first: pd.DataFrame, second: pd.DataFrame, kind: str, names: tuple[str, str], settings: Settings
) -> list[dict[str, Any]]:
    """Paired differences first - second of each compared metric: pooled over n_train, and per
    n_train when it has at least two seeds."""
    out = []
    metrics = [m for m in COMPARED_METRICS if m in first.columns]
    for metric in metrics:
        pairs = _paired(first, second, metric)
        if pairs.empty:
            continue
        labels = {"kind": kind, "metric": metric, "a": names[0], "b": names[1]}
        rng = bootstrap.stream(settings.seed, "compare", *names, metric)
        diffs = pairs.difference.to_numpy(float)
        out.append(_comparison(diffs, rng, settings.resamples, **labels, n_train=None))
        for n, part in pairs.groupby("n_train"):
            if len(part) >= 2:
                diffs = part.difference.to_numpy(float)
                out.append(_comparison(diffs, rng, settings.resamples, **labels, n_train=int(n)))
    return out


def comparisons(rows: pd.DataFrame, settings: Settings) -> list[dict[str, Any]]:
    """Arch vs arch at each scale, and each scale vs the next larger one within an arch."""
    out = []
    for scale in scale_order(rows):
        at_scale = rows[rows.scale == scale]
        for a, b in combinations(sorted(at_scale.arch.unique()), 2):
            names = (f"{a}/{scale}", f"{b}/{scale}")
            part_a, part_b = at_scale[at_scale.arch == a], at_scale[at_scale.arch == b]
            out += compare(part_a, part_b, "arch", names, settings)
    for arch, part in rows.groupby("arch"):
        scales = scale_order(part)
        for small, large in zip(scales, scales[1:], strict=False):
            names = (f"{arch}/{large}", f"{arch}/{small}")
            first, second = part[part.scale == large], part[part.scale == small]
            out += compare(first, second, "scale", names, settings)
    return out

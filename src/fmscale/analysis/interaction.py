"""The capacity x data interaction, read with 95% CIs: the generalisation gap and the memorised
fraction across scales at the smallest n_train, and across n_train at each scale; and the
validation loss at each step up in scale at the largest n_train (does capacity help where data
is plentiful?).

A cell's value is its mean over seeds. Its CI: with two or more seeds, the Student-t interval
over the seeds (model-to-model variation included); with one seed, the cell's own sampling
error: the gap's paired standard error over the validation draws (``gap_se``, evaluate.py) or
the memorised fraction's binomial error over its samples. A difference of two cells pairs
their seeds the same way, or combines the two standard errors when there is one seed. A
val_loss_ratio difference needs two or more seeds: with one, the seed-to-seed variation that
dominates it is unmeasured (and both cells share the validation draws), so it gets no CI.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from .intervals import Z95, t_interval, wilson

METRICS = ("gap", "memorised_fraction")
"""What the interaction reads: val_loss - train_loss, and the share of samples that copy a
training row."""


CAPACITY_METRIC = "val_loss_ratio"
"""What the capacity reading at the largest n_train compares across scales."""


def _standard_errors(part: pd.DataFrame, metric: str, n_samples: int) -> np.ndarray:
    """Each row's own sampling error of ``metric`` (NaN where unknown)."""
    if metric == "gap":
        column = part["gap_se"] if "gap_se" in part.columns else pd.Series(np.nan, part.index)
        return column.to_numpy(float)
    if metric != "memorised_fraction":
        return np.full(len(part), np.nan)
    p = part[metric].to_numpy(float)
    return np.sqrt(np.clip(p * (1 - p), 1 / n_samples, None) / n_samples)


def _interval(values: np.ndarray, errors: np.ndarray) -> tuple[float, list[float] | None, str]:
    """Mean, 95% CI and its method: Student-t over two or more values, else the one value's
    normal interval from its standard error (no CI when that is unknown)."""
    mean = float(values.mean())
    if len(values) >= 2:
        return mean, t_interval(values), "t over seeds"
    error = float(errors[0]) if len(errors) else math.nan
    if not math.isfinite(error):
        return mean, None, "none"
    return mean, [mean - Z95 * error, mean + Z95 * error], "sampling error"


def cell_estimate(part: pd.DataFrame, metric: str, n_samples: int) -> dict[str, Any]:
    """One arch x scale x n_train cell: mean over seeds, 95% CI, seeds. A single seed's
    memorised_fraction gets the Wilson interval of its samples."""
    values = part[metric].to_numpy(float)
    if metric == "memorised_fraction" and len(values) == 1:
        ci = wilson(float(values[0]), n_samples)
        return {"estimate": float(values[0]), "ci": ci, "method": "Wilson", "seeds": 1}
    mean, ci, method = _interval(values, _standard_errors(part, metric, n_samples))
    if metric == "memorised_fraction" and ci is not None:
        # Seeds that agree (all 0 at large n) give a zero-width t interval: never narrower
        # than the Wilson interval of the samples pooled over the seeds.
        low, high = wilson(mean, n_samples * len(values))
        ci, method = [min(ci[0], low), max(ci[1], high)], "t over seeds, at least Wilson"
    return {"estimate": mean, "ci": ci, "method": method, "seeds": len(part)}


def difference(
    first: pd.DataFrame, second: pd.DataFrame, metric: str, n_samples: int
) -> dict[str, Any]:
    """first - second, paired on seed; its 95% CI and whether the CI excludes 0."""
    pairs = first.merge(second, on="seed", suffixes=("_a", "_b"))
    if pairs.empty:
        return {"estimate": None, "ci": None, "method": "none", "pairs": 0, "resolved": False}
    values = (pairs[f"{metric}_a"] - pairs[f"{metric}_b"]).to_numpy(float)
    errors = np.hypot(
        _standard_errors(first.set_index("seed").loc[pairs.seed], metric, n_samples),
        _standard_errors(second.set_index("seed").loc[pairs.seed], metric, n_samples),
    )
    mean, ci, method = _interval(values, errors)
    resolved = ci is not None and (ci[0] > 0 or ci[1] < 0)
    return {
        "estimate": mean,
        "ci": ci,
        "method": method,
        "pairs": len(values),
        "resolved": bool(resolved),
    }


def _grows(entry: dict[str, Any]) -> bool:
    return entry["resolved"] and entry["estimate"] > 0


def capacity_at_largest_n(rows: pd.DataFrame, scales: list[str], n_train: int) -> dict[str, Any]:
    """Per arch, each step up in scale (larger - smaller) of val_loss_ratio at ``n_train``,
    paired by seed; the archs whose loss falls at every step, CI below 0."""
    at_n = rows[rows.n_train == n_train]
    steps: dict[str, list[dict[str, Any]]] = {}
    for arch, part in at_n.groupby("arch"):
        present = [s for s in scales if s in set(part.scale)]
        steps[arch] = [
            {"a": larger, "b": smaller}
            | difference(
                part[part.scale == larger], part[part.scale == smaller], CAPACITY_METRIC, 0
            )
            for smaller, larger in itertools.pairwise(present)
        ]
    falls = sorted(
        arch
        for arch, entries in steps.items()
        if entries and all(e["resolved"] and e["estimate"] < 0 for e in entries)
    )
    return {"n_train": int(n_train), "steps": steps, "falls_with_scale": falls}


def interaction(rows: pd.DataFrame, scales: list[str], n_samples: int) -> dict[str, Any]:
    """Per metric: every cell with its CI; per arch, largest - smallest scale at the smallest
    n_train; per arch and scale, smallest - largest n_train; the archs where the first, and
    the arch/scale pairs where the second, is resolved above 0 (grows with scale / shrinks
    with n). Then ``capacity_at_largest_n``."""
    sizes = sorted(rows.n_train.unique())
    out: dict[str, Any] = {"n_train": [int(n) for n in sizes], "scales": scales}
    if len(sizes) == 0:
        return out
    smallest, largest = sizes[0], sizes[-1]
    if CAPACITY_METRIC in rows.columns:
        out[CAPACITY_METRIC] = capacity_at_largest_n(rows, scales, largest)
    for metric in METRICS:
        if metric not in rows.columns:
            continue
        cells, by_scale, by_n = [], {}, {}
        for (arch, scale, n), part in rows.groupby(["arch", "scale", "n_train"]):
            estimate = cell_estimate(part, metric, n_samples)
            cells.append({"arch": arch, "scale": scale, "n_train": int(n)} | estimate)
        for arch, part in rows.groupby("arch"):
            present = [s for s in scales if s in set(part.scale)]
            at_small = part[part.n_train == smallest]
            if len(present) >= 2:
                low, high = present[0], present[-1]
                by_scale[arch] = {"a": high, "b": low, "n_train": int(smallest)} | difference(
                    at_small[at_small.scale == high],
                    at_small[at_small.scale == low],
                    metric,
                    n_samples,
                )
            if largest != smallest:
                by_n[arch] = {
                    scale: difference(
                        part[(part.scale == scale) & (part.n_train == smallest)],
                        part[(part.scale == scale) & (part.n_train == largest)],
                        metric,
                        n_samples,
                    )
                    for scale in present
                }
        out[metric] = {
            "cells": cells,
            "largest_minus_smallest_scale": by_scale,
            "smallest_minus_largest_n": by_n,
            "grows_with_scale": sorted(a for a, d in by_scale.items() if _grows(d)),
            "shrinks_with_n": sorted(
                f"{a}/{scale}" for a, per in by_n.items() for scale, d in per.items() if _grows(d)
            ),
        }
    return out

"""The memorisation crossover, read where the data crosses it.

For each level of ``analysis.levels``: n* (the n_train where an arch x scale's mean
memorised_fraction falls through the level, linear in log n) with a bootstrap CI; its exponent
k in n* ~ params^k; tau_mem (the first training step whose snapshot memorises above the level)
and its exponent against n_train. Beside them: memorised_fraction as a share of the ceiling
the exact memoriser flow (``empirical_flow``, sampled with the models' solver and NFE) reaches
at the same n_train, and the collapse memorised_fraction ~ F(n / N^z), with z and its CI
(a critical size growing ~ N, the theory's reading, is z = 1). Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .bootstrap import percentile_ci, stream
from .collapse import COLLAPSE_FLOOR, cell_error, collapse
from .intervals import Z95, n_samples_of

CEILING_REFERENCE = "empirical_flow"
"""The reference row whose memorised_fraction is the ceiling at each n_train."""


MIN_SCALES = 3
"""Scales (or n_train values) with a crossing that an exponent needs."""


INSIDE_GRID = 0.95
"""An exponent's CI is read only when this share of the resamples keep every crossing inside
the grid (otherwise the CI is conditional on the resamples that do)."""


FRACTION_FLOOR = 1e-3
"""Fractions are clipped to [FRACTION_FLOOR, 1 - FRACTION_FLOOR] before their logit (a cell
that copies none of its samples is not infinitely far from one that copies one)."""


MAX_BRACKET = 4.0
"""Widest ratio of the two grid points around a crossing at which n* is read (the CPU
validation grid's 4x steps recover n* within ~5%; the default study's 8x steps do not)."""


def level_label(level: float) -> str:
    """A level as analysis.json keys it: ``0.1``, ``0.5``."""
    return f"{level:g}"


def log_crossing(log_n: np.ndarray, fractions: np.ndarray, level: float) -> np.ndarray:
    """log n* per row of ``fractions`` [..., J] (over increasing n): where the fraction falls
    through ``level`` for the last time, interpolated linearly in logit(fraction) against
    log n (exact for a logistic onset; fractions clipped to FRACTION_FLOOR); +inf if it is
    still >= ``level`` at the largest n (above the grid), -inf if it is below everywhere
    (below the grid)."""
    above = fractions >= level
    last = above.shape[-1] - 1 - np.argmax(above[..., ::-1], axis=-1)
    inside = above.any(axis=-1) & ~above[..., -1]
    j = np.where(inside, last, 0)
    nxt = np.minimum(j + 1, above.shape[-1] - 1)
    logits = _logit(fractions)
    f0 = np.take_along_axis(logits, j[..., None], -1)[..., 0]
    f1 = np.take_along_axis(logits, nxt[..., None], -1)[..., 0]
    target = _logit(np.asarray(level, float))
    step = np.where(inside, (f0 - target) / np.where(inside & (f0 != f1), f0 - f1, 1.0), 0.0)
    value = log_n[j] + np.clip(step, 0.0, 1.0) * (log_n[nxt] - log_n[j])
    return np.where(inside, value, np.where(above[..., -1], np.inf, -np.inf))


def _logit(fractions: np.ndarray) -> np.ndarray:
    p = np.clip(fractions, FRACTION_FLOOR, 1 - FRACTION_FLOOR)
    return np.log(p) - np.log1p(-p)


def bootstrap_fractions(
    rows: pd.DataFrame, sizes: list[int], resamples: int, n_samples: int, rng
) -> np.ndarray:
    """Bootstrap means of memorised_fraction per n_train [resamples, len(sizes)]: seeds
    resampled within each n_train, each fraction redrawn as a binomial proportion."""
    columns = []
    for n in sizes:
        part = rows[rows.n_train == n]
        p = part.memorised_fraction.clip(0, 1).to_numpy(float)
        trials = n_samples_of(part, n_samples)
        pick = rng.integers(0, len(p), (resamples, len(p)))
        columns.append((rng.binomial(trials[pick], p[pick]) / trials[pick]).mean(axis=1))
    return np.stack(columns, axis=1)


def _bound(log_value: float) -> float | None:
    """n from log n; None for a bound beyond the grid."""
    return float(math.exp(log_value)) if math.isfinite(log_value) else None


def n_star_entry(
    log_n: np.ndarray,
    means: np.ndarray,
    draws: np.ndarray,
    level: float,
    unseen: dict[int, float] | None = None,
) -> dict:
    """n* at one level: estimate and CI, or the side of the grid it lies beyond. Between grid
    points more than MAX_BRACKET apart the interpolation, not the data, decides the estimate
    (benchmarks/recovery.py: +100% bias at 8x): its verdict says so, and k leaves it out. So
    it does when rows the model never saw (``unseen``: real_holdout's memorised_fraction per
    n_train) already score the level at either bracketing size: the criterion's own false
    positives, not copying, would be crossing."""
    estimate = float(log_crossing(log_n, means, level))
    if not math.isfinite(estimate):
        return {"verdict": "above the grid" if estimate > 0 else "below the grid"}
    crossings = log_crossing(log_n, draws, level)
    j = min(int(np.searchsorted(log_n, estimate, side="right")), len(log_n) - 1)
    low, high = round(math.exp(log_n[max(j - 1, 0)])), round(math.exp(log_n[j]))
    floor = max((unseen or {}).get(n, 0.0) for n in (low, high))
    if high / low > MAX_BRACKET * (1 + 1e-9):
        verdict = f"coarse: between n = {low} and {high} ({high / low:.3g}x)"
    elif floor >= level:
        verdict = f"unseen rows score {floor:.3g} there (real_holdout)"
    else:
        verdict = "ok"
    return {
        "estimate": math.exp(estimate),
        "ci": [_bound(v) for v in percentile_ci(crossings)],
        "inside_grid": float(np.isfinite(crossings).mean()),
        "bracket": [low, high],
        "verdict": verdict,
    }


def slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of ``y`` against ``x`` along the last axis; ``x`` is [k] (shared by
    every row of ``y``) or shaped like ``y`` (a row of x per row of y)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    return (xc * yc).sum(axis=-1) / (xc * xc).sum(axis=-1)


def exponent(x: np.ndarray, y: np.ndarray, boot: np.ndarray, what: str) -> dict[str, Any]:
    """The slope of y on x with a CI from bootstrap rows ``boot`` [R, k] (non-finite rows:
    a crossing outside the grid); a verdict instead of a CI when too few stay inside."""
    finite = np.isfinite(boot).all(axis=1)
    entry = {
        "estimate": float(slopes(x, y)),
        "points": len(x),
        "inside_grid": float(finite.mean()),
    }
    if finite.mean() < INSIDE_GRID:
        return entry | {
            "ci": None,
            "verdict": f"{what} leaves the grid in {1 - finite.mean():.0%} of resamples",
        }
    return entry | {"ci": percentile_ci(slopes(x, boot[finite])), "verdict": "ok"}


def ceilings(summary: pd.DataFrame) -> dict[int, dict[str, float]]:
    """The exact memoriser flow's memorised_fraction per n_train, and its samples."""
    rows = summary[
        (summary.kind == "reference")
        & (summary.arch == CEILING_REFERENCE)
        & (summary.status == "ok")
    ].dropna(subset=["memorised_fraction"])
    return {
        int(row.n_train): {
            "fraction": float(row.memorised_fraction),
            "n_samples": int(samples)
            if pd.notna(samples := getattr(row, "n_samples", None))
            else 0,
        }
        for row in rows.itertuples()
    }


def unseen_levels(summary: pd.DataFrame) -> dict[int, float]:
    """real_holdout's memorised_fraction per n_train (rows the model never saw): at or below
    it a fraction says nothing about copying (empty without the reference rows)."""
    rows = summary[
        (summary.kind == "reference") & (summary.arch == "real_holdout") & (summary.status == "ok")
    ].dropna(subset=["memorised_fraction"])
    return {int(row.n_train): float(row.memorised_fraction) for row in rows.itertuples()}


def against_ceiling(
    means: pd.Series, errors: dict[int, float], ceiling: dict[int, dict[str, float]], n_samples: int
) -> dict[str, Any]:
    """Per n_train: memorised_fraction / the ceiling at that n, with a 95% CI (delta method,
    the model's error over seeds or samples and the ceiling's binomial error)."""
    out = {}
    for n, mean in means.items():
        top = ceiling.get(int(n))
        if top is None or top["fraction"] <= 0:
            continue
        c = top["fraction"]
        c_samples = top["n_samples"] or n_samples
        ratio = mean / c
        se = math.hypot(errors[n] / c, mean * math.sqrt(c * (1 - c) / c_samples) / c**2)
        out[str(int(n))] = {
            "fraction": float(mean),
            "ceiling": c,
            "share_of_ceiling": ratio,
            "ci": [max(0.0, ratio - Z95 * se), ratio + Z95 * se],
        }
    return out


def onset(
    rows: pd.DataFrame,
    summary: pd.DataFrame,
    levels: tuple[float, ...],
    resamples: int,
    seed: int,
    n_samples: int,
) -> dict[str, Any]:
    """n* per level per arch x scale, k per level per arch, the ceiling shares, the collapse."""
    rows = rows.dropna(subset=["memorised_fraction"])
    labels = [level_label(level) for level in levels]
    n_star: dict[str, dict] = {label: {} for label in labels}
    k: dict[str, dict] = {label: {} for label in labels}
    shares: dict[str, dict] = {}
    collapses: dict[str, dict] = {}
    top = ceilings(summary)
    unseen = unseen_levels(summary)
    for arch, part in rows.groupby("arch"):
        arch = str(arch)
        order = list(part.groupby("scale").n_params.median().sort_values(kind="stable").index)
        draws, design = {}, []
        for scale in order:
            cell = part[part.scale == scale]
            sizes = sorted(cell.n_train.unique())
            log_n = np.log(np.array(sizes, float))
            means = cell.groupby("n_train").memorised_fraction.mean().loc[sizes]
            rng = stream(seed, arch, scale)
            boot = bootstrap_fractions(cell, sizes, resamples, n_samples, rng)
            params = float(cell.n_params.median())
            draws[scale] = (log_n, boot, params)
            design += [(scale, math.log(n), math.log(params), m) for n, m in means.items()]
            for label, level in zip(labels, levels, strict=True):
                entry = n_star_entry(log_n, means.to_numpy(), boot, level, unseen)
                n_star[label].setdefault(arch, {})[str(scale)] = {"n_params": params} | entry
            errors = cell_error(cell, n_samples)
            shares.setdefault(arch, {})[str(scale)] = against_ceiling(means, errors, top, n_samples)
        for label, level in zip(labels, levels, strict=True):
            k[label][arch] = _k(n_star[label][arch], draws, level)
        scale_of = np.array([d[0] for d in design])
        collapses[arch] = collapse(
            np.array([d[1] for d in design]),
            np.array([d[2] for d in design]),
            scale_of,
            np.array([d[3] for d in design]),
            np.hstack([draws[s][1] for s in order]),
            max([COLLAPSE_FLOOR, *unseen.values()]),
        )
    return {
        "levels": labels,
        "n_star": n_star,
        "n_star_exponent": k,
        "ceiling": {str(n): v["fraction"] for n, v in sorted(top.items())},
        "share_of_ceiling": shares,
        "collapse": collapses,
    }


def _k(entries: dict[str, dict], draws: dict[str, tuple], level: float) -> dict[str, Any]:
    """k of n* ~ params^k over one arch's scales with an n* at ``level``."""
    found = [scale for scale, entry in entries.items() if entry.get("verdict") == "ok"]
    if len(found) < MIN_SCALES:
        return {
            "verdict": f"{len(found)} of {len(entries)} scales have an ok n* (needs {MIN_SCALES})"
        }
    x = np.log([entries[scale]["n_params"] for scale in found])
    y = np.log([entries[scale]["estimate"] for scale in found])
    boot = np.stack([log_crossing(draws[s][0], draws[s][1], level) for s in found], axis=1)
    return exponent(x, y, boot, "n*")


def first_steps(part: pd.DataFrame, level: float) -> dict[tuple[int, int], float | None]:
    """Per (n_train, seed) of one arch x scale's trajectories: the first snapshot step with
    memorised_fraction > ``level``, None if it never gets there."""
    steps = {}
    for (n, seed), cell in part.groupby(["n_train", "seed"]):
        crossed = cell[cell.memorised_fraction > level].step
        steps[(int(n), int(seed))] = None if crossed.empty else float(crossed.min())
    return steps


def tau_exponent(
    taus: dict[tuple[int, int], float | None], last: dict[tuple[int, int], float]
) -> dict[str, Any]:
    """The slope of log tau_mem on log n_train with its least-squares 95% CI (Student-t on
    the residuals), or a verdict when fewer than MIN_SCALES sizes have a tau_mem before their
    cell's ``last`` snapshot: a cell that first memorises there crossed somewhere after the
    snapshot before it, and its step says more about the budget than about n."""
    from scipy import stats

    crossed = {cell: tau for cell, tau in taus.items() if tau is not None and tau > 0}
    found = [(n, tau) for (n, seed), tau in crossed.items() if tau < last[(n, seed)]]
    sizes = sorted({n for n, _ in found})
    if len(sizes) < MIN_SCALES:
        at_end = len(crossed) - len(found)
        why = f"; {at_end} cross only at their last snapshot" if at_end else ""
        return {
            "verdict": f"{len(sizes)} n_train values have a tau_mem before the last snapshot "
            f"(needs {MIN_SCALES}){why}"
        }
    x, y = np.log(np.array(found, float)).T
    slope = float(slopes(x, y))
    residual = y - y.mean() - slope * (x - x.mean())
    dof = len(x) - 2
    se = math.sqrt((residual**2).sum() / dof / ((x - x.mean()) ** 2).sum())
    if se == 0:
        return {"verdict": f"tau_mem has no spread about its fit ({len(x)} cells): no CI"}
    half = float(stats.t.ppf(0.975, dof)) * se
    return {
        "estimate": slope,
        "ci": [slope - half, slope + half],
        "points": len(x),
        "verdict": "ok",
    }


def tau_mem(trajectories: pd.DataFrame, levels: tuple[float, ...]) -> dict[str, dict]:
    """Per level, per arch x scale: tau_mem per cell and its exponent against n_train."""
    out: dict[str, dict] = {}
    for level in levels:
        label = level_label(level)
        out[label] = {}
        for (arch, scale), part in trajectories.groupby(["arch", "scale"]):
            taus = first_steps(part, level)
            last = {
                (int(n), int(seed)): float(step)
                for (n, seed), step in part.groupby(["n_train", "seed"]).step.max().items()
            }
            out[label].setdefault(str(arch), {})[str(scale)] = {
                "cells": {f"n{n}/seed{s}": tau for (n, s), tau in taus.items()},
                "exponent": tau_exponent(taus, last),
            }
    return out

"""The result checks: what must hold for a study's numbers to be read at all (docs/analysis.md)."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import pandas as pd

from .intervals import Z95, n_samples_of
from .rows import Settings, cell_name, scale_order

MEMORISER_FLOOR = 0.9


HOLDOUT_CEILING = 0.1


CHECKS = (
    "memoriser_memorises",
    "real_holdout_at_floor",
    "models_beat_zero_velocity",
    "memorisation_falls_with_n",
    "capacity_does_not_hurt",
)
"""The result checks, in the order analysis.md lists them."""


def _violation(name: str, message: str, cells: list[str]) -> dict[str, Any]:
    return {"name": name, "message": message, "cells": cells}


def _references(summary: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = summary[(summary.kind == "reference") & (summary.arch == name)]
    return rows[rows.status == "ok"]


def check_memoriser(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The memoriser reference (training rows copied) scores memorised_fraction >= 0.9."""
    memoriser = _references(summary, "memoriser").dropna(subset=["memorised_fraction"])
    bad = memoriser[memoriser.memorised_fraction < MEMORISER_FLOOR]
    if bad.empty:
        return []
    cells = [f"ref:memoriser/n{int(n)}" for n in bad.n_train]
    values = ", ".join(f"{v:.3g}" for v in bad.memorised_fraction)
    message = (
        f"the memoriser scores memorised_fraction {values} < {MEMORISER_FLOOR}: "
        "the memorisation criterion misses exact copies"
    )
    return [_violation("memoriser_memorises", message, cells)]


def _resolved_below(row: Any, ref: Any) -> bool:
    """row's mmd2_pca is below ref's beyond the 95% band of their jackknife standard errors
    (mmd2_se_pca; without them, any amount below counts)."""
    errors = [getattr(x, "mmd2_se_pca", math.nan) for x in (row, ref)]
    margin = Z95 * math.hypot(*errors) if all(map(math.isfinite, errors)) else 0.0
    return row.mmd2_pca < ref.mmd2_pca - margin


def check_holdout(summary: pd.DataFrame, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """real_holdout (unseen real rows) sits at the floor at each n_train: memorised_fraction
    <= 0.1 and an mmd2_pca that no gaussian_fit or model cell beats beyond sampling error."""
    out = []
    holdout = _references(summary, "real_holdout")
    gaussian = _references(summary, "gaussian_fit")
    for ref in holdout.itertuples():
        name = f"ref:real_holdout/n{int(ref.n_train)}"
        if ref.memorised_fraction > HOLDOUT_CEILING:
            message = f"real_holdout memorised_fraction {ref.memorised_fraction:.3g} > 0.1"
            out.append(_violation("real_holdout_at_floor", message, [name]))
        if "mmd2_pca" not in summary.columns or pd.isna(ref.mmd2_pca):
            continue
        models = rows[rows.n_train == ref.n_train]
        others = [(cell_name(m), m) for m in models.itertuples()]
        others += [
            (f"ref:gaussian_fit/n{int(g.n_train)}", g)
            for g in gaussian[gaussian.n_train == ref.n_train].itertuples()
        ]
        below = [cell for cell, other in others if _resolved_below(other, ref)]
        if below:
            message = (
                f"{len(below)} row(s) score a lower mmd2_pca than real_holdout "
                f"({ref.mmd2_pca:.3g}) by more than the two estimates' sampling error"
            )
            out.append(_violation("real_holdout_at_floor", message, [name, *below]))
    return out


def check_zero_velocity(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Every finished model cell learned something: it beats v = 0 on the validation rows
    (val_loss_ratio < 1) or on its own training rows (train_loss_ratio < 1). A cell that fits
    its training rows and not the validation rows has memorised (at tiny n_train a large model
    does); one that beats v = 0 on neither learned nothing (the predecessor's validation loss
    sat at the trivial 2.0)."""
    learned = rows.val_loss_ratio < 1
    if "train_loss_ratio" in rows.columns:
        learned |= rows.train_loss_ratio < 1
    bad = rows[~learned]
    if bad.empty:
        return []
    message = (
        f"{len(bad)} cell(s) do not beat the v = 0 baseline on the validation rows nor on their "
        "training rows (val_loss_ratio and train_loss_ratio >= 1)"
    )
    return [
        _violation("models_beat_zero_velocity", message, [cell_name(r) for r in bad.itertuples()])
    ]


def _rise_beyond_ci(low: pd.DataFrame, high: pd.DataFrame, settings: Settings) -> bool:
    """memorised_fraction is higher at ``high`` (larger n) than at ``low`` beyond the 95% CI of
    the difference: binomial (pooled proportion) or seed spread, whichever is wider."""
    p_low, p_high = low.memorised_fraction, high.memorised_fraction
    trials_low, trials_high = (
        n_samples_of(low, settings.n_samples).sum(),
        n_samples_of(high, settings.n_samples).sum(),
    )
    pooled = (p_low.mean() * trials_low + p_high.mean() * trials_high) / (trials_low + trials_high)
    binomial = pooled * (1 - pooled) * (1 / trials_low + 1 / trials_high)
    spread = p_low.var(ddof=1) / len(p_low) + p_high.var(ddof=1) / len(p_high)
    variance = max(binomial, 0.0 if math.isnan(spread) else spread)
    return p_high.mean() - p_low.mean() > Z95 * math.sqrt(variance)


def check_memorisation_falls(rows: pd.DataFrame, settings: Settings) -> list[dict[str, Any]]:
    """memorised_fraction never rises with n_train (any pair of sizes) beyond its CI."""
    out = []
    rows = rows.dropna(subset=["memorised_fraction"])
    for (arch, scale), part in rows.groupby(["arch", "scale"]):
        sizes = sorted(part.n_train.unique())
        rises = [
            (small, large)
            for small, large in combinations(sizes, 2)
            if _rise_beyond_ci(part[part.n_train == small], part[part.n_train == large], settings)
        ]
        if rises:
            sizes_text = ", ".join(f"n {a} -> {b}" for a, b in rises)
            message = f"{arch}/{scale}: memorised_fraction rises with n_train ({sizes_text})"
            involved = {n for pair in rises for n in pair}
            cells = [cell_name(r) for r in part[part.n_train.isin(involved)].itertuples()]
            out.append(_violation("memorisation_falls_with_n", message, cells))
    return out


def check_capacity(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """At the largest n_train, the largest scale's val_loss is not above the smallest's beyond
    the 95% CI of the difference over seeds (any excess with a single seed)."""
    out = []
    for arch, part in rows.groupby("arch"):
        scales = scale_order(part)
        part = part[part.n_train == part.n_train.max()]
        small, large = (part[part.scale == scale].val_loss for scale in (scales[0], scales[-1]))
        if len(scales) < 2 or small.empty or large.empty:
            continue
        spread = small.var(ddof=1) / len(small) + large.var(ddof=1) / len(large)
        margin = 0.0 if math.isnan(spread) else Z95 * math.sqrt(spread)
        if large.mean() - small.mean() > margin:
            n = int(part.n_train.iloc[0])
            message = (
                f"{arch}: at n_train {n} {scales[-1]} has val_loss {large.mean():.4g} above "
                f"{scales[0]}'s {small.mean():.4g} (margin {margin:.2g})"
            )
            cells = [
                cell_name(r) for r in part[part.scale.isin([scales[0], scales[-1]])].itertuples()
            ]
            out.append(_violation("capacity_does_not_hurt", message, cells))
    return out


def result_checks(
    summary: pd.DataFrame, rows: pd.DataFrame, settings: Settings
) -> list[dict[str, Any]]:
    """Every violated result check (name, message, cells), in CHECKS order."""
    return [
        *check_memoriser(summary),
        *check_holdout(summary, rows),
        *check_zero_velocity(rows),
        *check_memorisation_falls(rows, settings),
        *check_capacity(rows),
    ]

"""Scaling-law fits per arch (of val_loss and gap, in N and n) and in n alone per arch x scale,
with stratified bootstrap CIs and named verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import bootstrap, lawfit
from .bootstrap import percentile_ci
from .rows import MIN_LEVELS, Settings, scale_order

FIT_TARGETS = ("val_loss", "gap")


N_LAW_PARAMETERS = ("E", "B", "beta")
"""The law in n alone; it needs more n_train values than these to be tested, not just met."""


@dataclass(frozen=True)
class LawResult:
    """One fit's analysis.json entry, with its optimum and bootstrap draws (for the figures)."""

    entry: dict[str, Any]
    theta: np.ndarray | None = None
    draws: np.ndarray | None = None


def _points(rows: pd.DataFrame, target: str) -> lawfit.Points:
    return lawfit.Points(
        np.log(rows.n_params.to_numpy(float)),
        np.log(rows.n_train.to_numpy(float)),
        np.log(rows[target].to_numpy(float)),
    )


def _law_entry(
    estimates: dict[str, float] | None,
    cis: dict[str, list[float]] | None,
    loso_error: float | None,
    verdict: str,
    n_cells: int,
    **extra: Any,
) -> dict[str, Any]:
    """A fit's analysis.json entry; parameters null unless the fit is ``ok``."""
    shown = verdict == "ok"
    entry: dict[str, Any] = {
        name: {
            "estimate": estimates[name] if shown and estimates else None,
            "ci": cis[name] if shown and cis else None,
        }
        for name in ("E", "A", "alpha", "B", "beta")
    }
    return entry | {"loso_error": loso_error, "verdict": verdict, "n_cells": n_cells} | extra


def verdict_of(reasons: list[str]) -> str:
    """``ok``, or the first reason (the gravest: bounds, then CIs, then loso) and a count of
    the others (all of them are in the entry's ``reasons``)."""
    if not reasons:
        return "ok"
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return reasons[0] + more


def loso_error(rows: pd.DataFrame, target: str) -> float | None:
    """Mean relative error on the largest scale's cells of a fit to the other scales."""
    largest = scale_order(rows)[-1]
    held = rows[rows.scale == largest]
    kept = rows[rows.scale != largest]
    if kept.scale.nunique() < 2:
        return None
    fit = lawfit.fit_from_grid(_points(kept, target))
    points = _points(held, target)
    predicted = np.exp(lawfit.log_prediction(fit.theta, points.log_params, points.log_n))
    actual = held[target].to_numpy(float)
    return float(np.mean(np.abs(predicted - actual) / actual))


def _bootstrap_law(
    rows: pd.DataFrame, points: lawfit.Points, best: lawfit.Fit, settings: Settings, *key: Any
) -> tuple[np.ndarray, str]:
    """Refits of the law to bootstrap resamples of ``rows`` (stratified by cell): [R, 5]."""
    n_only = key[0] == "n_law"
    free = len(lawfit.N_ONLY_FREE if n_only else lawfit.PARAMETERS)
    rng = bootstrap.stream(settings.seed, *key)
    targets, scheme = bootstrap.law_targets(rows, points, best.theta, free, settings.resamples, rng)
    draws = lawfit.refit(points, targets, best.theta, settings.refit_grid_starts, n_only)
    return draws, scheme


def fit_law(rows: pd.DataFrame, target: str, settings: Settings, arch: str) -> LawResult:
    """The law fitted to one arch's cells with a positive ``target``, with bootstrap CIs and a
    verdict (``lawfit.judge``): numbers are reported only for an ``ok`` fit."""
    rows = rows[np.isfinite(rows[target]) & (rows[target] > 0)].reset_index(drop=True)
    n_cells = len(rows)
    scales, sizes = rows.scale.nunique(), rows.n_train.nunique()
    if scales < MIN_LEVELS or sizes < MIN_LEVELS:
        verdict = f"under-identified: {scales} scales, {sizes} n_train (needs {MIN_LEVELS} each)"
        return LawResult(_law_entry(None, None, None, verdict, n_cells))
    points = _points(rows, target)
    best = lawfit.fit_from_grid(points)
    if not best.converged:
        return LawResult(_law_entry(None, None, None, "not converged", n_cells))
    draws, scheme = _bootstrap_law(rows, points, best, settings, "fit", arch, target)
    loso = loso_error(rows, target)
    reasons, share = lawfit.judge(best.theta, draws, loso)
    estimates = {name: float(v) for name, v in lawfit.natural(best.theta).items()}
    cis = {name: percentile_ci(values) for name, values in lawfit.natural(draws).items()}
    entry = _law_entry(
        estimates,
        cis,
        loso,
        verdict_of(reasons),
        n_cells,
        reasons=reasons,
        bound_share=share,
        bootstrap=scheme,
    )
    return LawResult(entry, best.theta, draws)


def fit_n_law(part: pd.DataFrame, settings: Settings, arch: str, scale: str) -> dict[str, Any]:
    """val_loss = E + B / n^beta at one arch x scale, with bootstrap CIs (stratified by cell)
    and a verdict (``lawfit.judge``)."""
    part = part[np.isfinite(part.val_loss) & (part.val_loss > 0)].reset_index(drop=True)
    entry: dict[str, Any] = {"n_cells": len(part)}
    sizes = part.n_train.nunique()
    if sizes <= len(N_LAW_PARAMETERS):
        return entry | {
            "verdict": f"under-identified: {sizes} n_train (needs {len(N_LAW_PARAMETERS) + 1})"
        }
    points = _points(part, "val_loss")
    best = lawfit.fit_from_grid(points, n_only=True)
    if not best.converged:
        return entry | {"verdict": "not converged"}
    draws, scheme = _bootstrap_law(part, points, best, settings, "n_law", arch, scale)
    reasons, share = lawfit.judge(best.theta, draws, None, n_only=True)
    verdict = verdict_of(reasons)
    estimates, cis = lawfit.natural(best.theta), lawfit.natural(draws)
    for name in N_LAW_PARAMETERS:
        shown = verdict == "ok"
        entry[name] = {
            "estimate": float(estimates[name]) if shown else None,
            "ci": percentile_ci(cis[name]) if shown else None,
        }
    return entry | {
        "verdict": verdict,
        "reasons": reasons,
        "bound_share": share,
        "bootstrap": scheme,
    }


def fit_n_laws(rows: pd.DataFrame, settings: Settings) -> dict[str, dict[str, Any]]:
    """The law in n_train alone at every arch x scale (where capacity x data interact, the
    joint law's additive N and n terms cannot describe the cells; each scale's own law can)."""
    return {
        arch: {
            scale: fit_n_law(part[part.scale == scale], settings, arch, scale)
            for scale in scale_order(part)
        }
        for arch, part in rows.groupby("arch")
    }


def fit_laws(rows: pd.DataFrame, settings: Settings) -> dict[str, dict[str, LawResult]]:
    """Every arch's fits of each FIT_TARGETS column present."""
    targets = [target for target in FIT_TARGETS if target in rows.columns]
    return {
        arch: {target: fit_law(part, target, settings, arch) for target in targets}
        for arch, part in rows.groupby("arch")
    }

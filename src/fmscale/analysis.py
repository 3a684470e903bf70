"""The study's analysis from ``summary.csv`` (and ``trajectories.csv``) alone: scaling-law fits
with bootstrap CIs and named verdicts, the memorisation crossover (``crossover``), paired
comparisons and result checks.

Writes ``analysis.json`` (its shape: docs/analysis.md), ``analysis.md``, the figures and the
LaTeX tables under ``analysis/``. Deterministic: every bootstrap draws from a generator seeded
by ``Settings.seed`` and the name of what it resamples. Torch-free.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import bootstrap, crossover, lawfit
from .bootstrap import percentile_ci
from .config import AnalysisConfig
from .crossover import n_samples_of
from .files import atomic_write
from .interaction import interaction
from .intervals import Z95, t_interval
from .study import ANALYSIS_N_SAMPLES

SUMMARY_COLUMNS = (
    "kind",
    "arch",
    "scale",
    "n_train",
    "seed",
    "status",
    "n_params",
    "val_loss",
    "val_loss_ratio",
    "memorised_fraction",
)
"""Columns of summary.csv the analysis cannot do without."""
NUMERIC_COLUMNS = (
    "n_train",
    "seed",
    "n_params",
    "val_loss",
    "val_loss_ratio",
    "memorised_fraction",
)
TRAJECTORY_COLUMNS = ("arch", "scale", "n_train", "seed", "step", "memorised_fraction")
FIT_TARGETS = ("val_loss", "gap")
COMPARED_METRICS = (
    "val_loss_ratio",
    "memorised_fraction",
    "gap_ratio",
    "precision_pca",
    "mmd2_pca",
)
N_LAW_PARAMETERS = ("E", "B", "beta")
"""The law in n alone; it needs more n_train values than these to be tested, not just met."""
MIN_LEVELS = 3
"""Distinct scales (and n_train values) an exponent needs."""
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


class AnalysisError(ValueError):
    """An input the analysis cannot read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Settings:
    """How the analysis reads the study: the crossing levels, bootstrap resamples and seed
    (``analysis`` config section), samples behind a memorised_fraction when summary.csv has
    no n_samples column, and the refits' grid starts."""

    levels: tuple[float, ...] = AnalysisConfig.levels
    resamples: int = AnalysisConfig.resamples
    seed: int = AnalysisConfig.seed
    n_samples: int = ANALYSIS_N_SAMPLES
    refit_grid_starts: int = 1


@dataclass(frozen=True)
class LawResult:
    """One fit's analysis.json entry, with its optimum and bootstrap draws (for the figures)."""

    entry: dict[str, Any]
    theta: np.ndarray | None = None
    draws: np.ndarray | None = None


# --- reading -------------------------------------------------------------------------------


def read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """The CSV at ``path``; AnalysisError naming the file (and column) if it cannot serve."""
    if not path.is_file():
        raise AnalysisError(f"{path}: missing (run `fmscale summarize` first)")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path}: empty (run `fmscale summarize` first)") from None
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path}: unreadable ({exc})") from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise AnalysisError(f"{path}: no column {missing[0]!r} (the analysis needs it)")
    return frame


def read_summary(path: Path) -> pd.DataFrame:
    """summary.csv, checked for its columns, their types and at least one row."""
    summary = read_table(path, SUMMARY_COLUMNS)
    if summary.empty:
        raise AnalysisError(f"{path}: empty (no rows; run `fmscale summarize` first)")
    for column in NUMERIC_COLUMNS:
        if not pd.api.types.is_numeric_dtype(summary[column]):
            raise AnalysisError(f"{path}: column {column!r} is not numeric")
    return summary


def model_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The finished model cells (status ok, with a val_loss and a parameter count)."""
    rows = summary[(summary.kind == "model") & (summary.status == "ok")]
    rows = rows.dropna(subset=["val_loss", "n_params"])
    return rows.astype({"n_train": int, "seed": int, "n_params": float}).reset_index(drop=True)


def scale_order(rows: pd.DataFrame) -> list[str]:
    """The scales present in ``rows``, smallest parameter count first."""
    return list(rows.groupby("scale").n_params.median().sort_values(kind="stable").index)


def cell_name(row: Any) -> str:
    """A model cell as ``arch/scale/n<N>/seed<k>``."""
    return f"{row.arch}/{row.scale}/n{int(row.n_train)}/seed{int(row.seed)}"


# --- scaling-law fits ----------------------------------------------------------------------


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


# --- paired comparisons --------------------------------------------------------------------


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


# --- result checks -------------------------------------------------------------------------


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


# --- the whole analysis --------------------------------------------------------------------


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


def analyse(
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


def one_dataset(
    frame: pd.DataFrame, dataset: str | None, path: Path
) -> tuple[pd.DataFrame, str | None]:
    """The rows of one dataset (``dataset``, or the only one there is) and its name; a table
    without a dataset column (written before it existed) is one dataset, unnamed."""
    if "dataset" not in frame.columns:
        return frame, dataset
    found = list(dict.fromkeys(frame.dataset.dropna()))
    if dataset is None:
        if len(found) > 1:
            raise AnalysisError(
                f"{path}: rows of {len(found)} datasets ({', '.join(found)}); name one "
                "(`fmscale analyze --data-name NAME`)"
            )
        dataset = found[0] if found else None
    elif found and dataset not in found:
        raise AnalysisError(f"{path}: no rows of dataset {dataset!r}; it has {found}")
    return frame[frame.dataset == dataset].reset_index(drop=True), dataset


def analyze(
    results: str | Path, settings: Settings | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Read ``results``/summary.csv (and trajectories.csv if present); write analysis.json,
    analysis.md and the figures under ``results``/analysis/; return analysis.json's content.

    ``dataset``: whose rows to analyse when summary.csv holds several datasets."""
    from .analysis_report import markdown, write_figures, write_tables

    results = Path(results)
    settings = settings or Settings()
    summary, dataset = one_dataset(
        read_summary(results / "summary.csv"), dataset, results / "summary.csv"
    )
    path = results / "trajectories.csv"
    trajectories = None
    if path.exists():
        trajectories = one_dataset(read_table(path, TRAJECTORY_COLUMNS), dataset, path)[0]
    report, laws, rows = analyse(summary, trajectories, settings)
    report["dataset"] = dataset
    atomic_write(results / "analysis.json", json.dumps(report, indent=2) + "\n")
    atomic_write(results / "analysis.md", markdown(report))
    write_figures(rows, report, laws, results / "analysis")
    write_tables(report, results / "analysis")
    return report

"""The study's analysis from ``summary.csv`` (and ``trajectories.csv``) alone: scaling-law fits
with bootstrap CIs, memorisation onset, paired comparisons and result checks.

Writes ``analysis.json`` (its shape is documented in README.md, "Analysis"), ``analysis.md``
and the figures under ``analysis/``. Deterministic: every bootstrap draws from a generator
seeded by ``Settings.seed`` and the name of what it resamples. Torch-free.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import lawfit
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
MEMORISED = 0.5
"""memorised_fraction at which a cell counts as memorising (n* and tau_mem cross it)."""
N_LAW_PARAMETERS = ("E", "B", "beta")
"""The law in n alone; it needs more n_train values than these to be tested, not just met."""
MIN_LEVELS = 3
"""Distinct scales (and n_train values) an exponent needs."""
EXPONENT_SPAN = 3.0
"""An exponent whose 95% CI spans more than this factor (hi / lo) is under-identified."""
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
    """How the analysis resamples: count, seed, samples per memorised_fraction, refit starts."""

    resamples: int = 1000
    seed: int = 0
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


def _rng(seed: int, *keys: Any) -> np.random.Generator:
    """A generator for one resampled quantity: its own stream, whatever else is analysed."""
    return np.random.default_rng([seed, zlib.crc32("/".join(map(str, keys)).encode())])


def _ci(values: np.ndarray) -> list[float]:
    """The percentile 95% interval of bootstrap values (order statistics: infinities allowed)."""
    return np.quantile(values, [0.025, 0.975], method="inverted_cdf").tolist()


# --- scaling-law fits ----------------------------------------------------------------------


def _points(rows: pd.DataFrame, target: str) -> lawfit.Points:
    return lawfit.Points(
        np.log(rows.n_params.to_numpy(float)),
        np.log(rows.n_train.to_numpy(float)),
        np.log(rows[target].to_numpy(float)),
    )


def resample_cells(rows: pd.DataFrame, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of bootstrap resamples [resamples, len(rows)].

    With at least two seeds in every (scale, n_train) cell the seeds are resampled within each
    cell (the design stays fixed); otherwise the rows themselves are resampled.
    """
    groups = list(rows.groupby(["scale", "n_train"]).indices.values())
    if all(len(group) >= 2 for group in groups):
        return np.hstack(
            [group[rng.integers(0, len(group), (resamples, len(group)))] for group in groups]
        )
    return rng.integers(0, len(rows), (resamples, len(rows)))


def _law_entry(
    estimates: dict[str, float] | None,
    cis: dict[str, list[float]] | None,
    loso_error: float | None,
    verdict: str,
    n_cells: int,
) -> dict[str, Any]:
    """A fit's analysis.json entry; parameters null when the law was not fitted."""
    entry: dict[str, Any] = {
        name: {
            "estimate": None if estimates is None else estimates[name],
            "ci": None if cis is None else cis[name],
        }
        for name in ("E", "A", "alpha", "B", "beta")
    }
    return entry | {"loso_error": loso_error, "verdict": verdict, "n_cells": n_cells}


def exponent_identified(ci: list[float]) -> bool:
    """An exponent's CI is positive and spans at most EXPONENT_SPAN."""
    low, high = ci
    return low > 0 and high / low <= EXPONENT_SPAN


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


def fit_law(rows: pd.DataFrame, target: str, settings: Settings, arch: str) -> LawResult:
    """The law fitted to one arch's cells with a positive ``target``, with bootstrap CIs."""
    rows = rows[np.isfinite(rows[target]) & (rows[target] > 0)].reset_index(drop=True)
    n_cells = len(rows)
    if rows.scale.nunique() < MIN_LEVELS or rows.n_train.nunique() < MIN_LEVELS:
        return LawResult(_law_entry(None, None, None, "under-identified", n_cells))
    points = _points(rows, target)
    best = lawfit.fit_from_grid(points)
    if not best.converged:
        return LawResult(_law_entry(None, None, None, "not converged", n_cells))
    samples = resample_cells(rows, settings.resamples, _rng(settings.seed, "fit", arch, target))
    draws = np.array(
        [lawfit.refit(points.take(s), best.theta, settings.refit_grid_starts) for s in samples]
    )
    estimates = {name: float(v) for name, v in lawfit.natural(best.theta).items()}
    cis = {name: _ci(values) for name, values in lawfit.natural(draws).items()}
    identified = all(exponent_identified(cis[name]) for name in ("alpha", "beta"))
    verdict = "ok" if identified else "under-identified"
    entry = _law_entry(estimates, cis, loso_error(rows, target), verdict, n_cells)
    return LawResult(entry, best.theta, draws)


def fit_n_law(part: pd.DataFrame, settings: Settings, arch: str, scale: str) -> dict[str, Any]:
    """val_loss = E + B / n^beta at one arch x scale, with bootstrap CIs (seeds resampled
    within each n_train when every n_train has two or more)."""
    part = part[np.isfinite(part.val_loss) & (part.val_loss > 0)].reset_index(drop=True)
    entry: dict[str, Any] = {"n_cells": len(part)}
    if part.n_train.nunique() <= len(N_LAW_PARAMETERS):
        return entry | {"verdict": "under-identified"}
    points = _points(part, "val_loss")
    best = lawfit.fit_from_grid(points, n_only=True)
    if not best.converged:
        return entry | {"verdict": "not converged"}
    rng = _rng(settings.seed, "n_law", arch, scale)
    samples = resample_cells(part, settings.resamples, rng)
    draws = np.array(
        [
            lawfit.refit(points.take(s), best.theta, settings.refit_grid_starts, n_only=True)
            for s in samples
        ]
    )
    estimates, cis = lawfit.natural(best.theta), lawfit.natural(draws)
    for name in N_LAW_PARAMETERS:
        entry[name] = {"estimate": float(estimates[name]), "ci": _ci(cis[name])}
    verdict = "ok" if exponent_identified(entry["beta"]["ci"]) else "under-identified"
    return entry | {"verdict": verdict}


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


# --- memorisation onset --------------------------------------------------------------------


def log_crossing(log_n: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """log n* per row of ``fractions`` [..., J] (over increasing n): where the fraction falls
    through MEMORISED for the last time, linear in log n; +inf if it is still >= MEMORISED at
    the largest n (above the grid), -inf if it is below everywhere (below the grid).
    """
    above = fractions >= MEMORISED
    last = above.shape[-1] - 1 - np.argmax(above[..., ::-1], axis=-1)
    inside = above.any(axis=-1) & ~above[..., -1]
    j = np.where(inside, last, 0)
    nxt = np.minimum(j + 1, above.shape[-1] - 1)
    f0 = np.take_along_axis(fractions, j[..., None], -1)[..., 0]
    f1 = np.take_along_axis(fractions, nxt[..., None], -1)[..., 0]
    step = np.where(inside, (f0 - MEMORISED) / np.where(inside, f0 - f1, 1.0), 0.0)
    value = log_n[j] + step * (log_n[nxt] - log_n[j])
    return np.where(inside, value, np.where(above[..., -1], np.inf, -np.inf))


def n_samples_of(rows: pd.DataFrame, settings: Settings) -> np.ndarray:
    """Samples behind each row's memorised_fraction: its n_samples column, else the setting."""
    if "n_samples" in rows.columns:
        return rows.n_samples.fillna(settings.n_samples).to_numpy(int)
    return np.full(len(rows), settings.n_samples)


def bootstrap_fractions(
    rows: pd.DataFrame, sizes: list[int], settings: Settings, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap means of memorised_fraction per n_train [resamples, len(sizes)]: seeds
    resampled within each n_train, each fraction redrawn as a binomial proportion."""
    columns = []
    for n in sizes:
        part = rows[rows.n_train == n]
        p = part.memorised_fraction.clip(0, 1).to_numpy(float)
        trials = n_samples_of(part, settings)
        pick = rng.integers(0, len(p), (settings.resamples, len(p)))
        columns.append((rng.binomial(trials[pick], p[pick]) / trials[pick]).mean(axis=1))
    return np.stack(columns, axis=1)


def _bound(log_value: float) -> float | None:
    """n from log n; None for a bound beyond the grid."""
    return float(math.exp(log_value)) if math.isfinite(log_value) else None


def n_star_cell(
    rows: pd.DataFrame, settings: Settings, key: tuple[str, str]
) -> tuple[dict[str, Any], np.ndarray]:
    """n* of one arch x scale: its entry and its bootstrap log n* draws."""
    rows = rows.dropna(subset=["memorised_fraction"])
    sizes = sorted(rows.n_train.unique())
    log_n = np.log(np.array(sizes, float))
    means = rows.groupby("n_train").memorised_fraction.mean().loc[sizes].to_numpy()
    estimate = float(log_crossing(log_n, means))
    draws = log_crossing(
        log_n, bootstrap_fractions(rows, sizes, settings, _rng(settings.seed, *key))
    )
    entry: dict[str, Any] = {"n_params": float(rows.n_params.median())}
    if math.isfinite(estimate):
        entry |= {"estimate": math.exp(estimate), "ci": [_bound(v) for v in _ci(draws)]}
    else:
        entry["verdict"] = "above the grid" if estimate > 0 else "below the grid"
    return entry, draws


def slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of ``y`` against ``x`` along the last axis; ``x`` is [k] (shared by
    every row of ``y``) or shaped like ``y`` (a row of x per row of y)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    return (xc * yc).sum(axis=-1) / (xc * xc).sum(axis=-1)


def n_star_exponent(entries: dict[str, dict], draws: dict[str, np.ndarray]) -> dict[str, Any]:
    """The slope of log n* on log n_params over one arch's scales with an estimate."""
    estimated = [scale for scale, entry in entries.items() if "estimate" in entry]
    if len(estimated) < MIN_LEVELS:
        return {"verdict": f"fewer than {MIN_LEVELS} scales with an estimate of n*"}
    x = np.log([entries[scale]["n_params"] for scale in estimated])
    y = np.log([entries[scale]["estimate"] for scale in estimated])
    boot = np.stack([draws[scale] for scale in estimated], axis=1)
    finite = np.isfinite(boot).all(axis=1)
    return {
        "estimate": float(slopes(x, y)),
        "ci": _ci(slopes(x, boot[finite])) if finite.any() else None,
        "scales": len(estimated),
        "resamples_inside_grid": int(finite.sum()),
    }


def memorisation_onset(rows: pd.DataFrame, settings: Settings) -> tuple[dict, dict]:
    """n* per arch x scale and its exponent against n_params per arch."""
    n_star: dict[str, dict] = {}
    exponents: dict[str, dict] = {}
    for arch, part in rows.groupby("arch"):
        draws = {}
        n_star[arch] = {}
        for scale in scale_order(part):
            cell_rows = part[part.scale == scale]
            if cell_rows.memorised_fraction.notna().any():
                n_star[arch][scale], draws[scale] = n_star_cell(cell_rows, settings, (arch, scale))
        exponents[arch] = n_star_exponent(n_star[arch], draws)
    return n_star, exponents


def first_memorising_steps(part: pd.DataFrame) -> dict[tuple[int, int], float | None]:
    """Per (n_train, seed) of one arch x scale's trajectories: the first snapshot step with
    memorised_fraction > MEMORISED, None if it never gets there."""
    steps = {}
    for (n, seed), cell in part.groupby(["n_train", "seed"]):
        crossed = cell[cell.memorised_fraction > MEMORISED].step
        steps[(int(n), int(seed))] = None if crossed.empty else float(crossed.min())
    return steps


def tau_exponent(
    taus: dict[tuple[int, int], float | None], rng: np.random.Generator, resamples: int
) -> dict[str, Any]:
    """The slope of log tau_mem on log n_train with a bootstrap CI over the cells, or a verdict
    when fewer than MIN_LEVELS sizes have a tau_mem."""
    found = [(n, tau) for (n, _), tau in taus.items() if tau is not None and tau > 0]
    if len({n for n, _ in found}) < MIN_LEVELS:
        return {"verdict": f"fewer than {MIN_LEVELS} n_train values with a tau_mem"}
    x, y = np.log(np.array(found, float)).T
    picks = rng.integers(0, len(x), (resamples, len(x)))
    spread = np.ptp(x[picks], axis=1) > 0  # a resample of a single size has no slope
    boot = slopes(x[picks[spread]], y[picks[spread]])
    return {"estimate": float(slopes(x, y)), "ci": _ci(boot)}


def tau_mem(trajectories: pd.DataFrame, settings: Settings) -> dict[str, dict]:
    """Per arch x scale: tau_mem per cell and its exponent against n_train."""
    out: dict[str, dict] = {}
    for (arch, scale), part in trajectories.groupby(["arch", "scale"]):
        taus = first_memorising_steps(part)
        rng = _rng(settings.seed, "tau", arch, scale)
        out.setdefault(str(arch), {})[str(scale)] = {
            "cells": {f"n{n}/seed{s}": tau for (n, s), tau in taus.items()},
            "exponent": tau_exponent(taus, rng, settings.resamples),
        }
    return out


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
        ci, method = _ci(means.mean(axis=1)), "bootstrap"
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
        rng = _rng(settings.seed, "compare", *names, metric)
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
    trials_low, trials_high = n_samples_of(low, settings).sum(), n_samples_of(high, settings).sum()
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
    laws = fit_laws(rows, settings)
    n_star, exponents = memorisation_onset(rows, settings)
    report = {
        "fits": {arch: {t: law.entry for t, law in fits.items()} for arch, fits in laws.items()},
        "n_laws": fit_n_laws(rows, settings),
        "n_star": n_star,
        "n_star_exponent": exponents,
        "tau_mem": {} if trajectories is None else tau_mem(trajectories, settings),
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
    from .analysis_report import markdown, write_figures

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
    return report

"""Parameter recovery: the analysis run on studies simulated from known truths, on a study's
own grid with its own seed noise, to measure whether its 95% intervals cover the truth.

Each simulation draws a summary table (val_loss from the law with log-normal seed noise;
memorised_fraction from a known crossover, with seed noise and binomial sampling), runs the
same functions ``fmscale analyze`` runs, and records, per parameter of every ``ok`` verdict,
whether the CI covers the truth and the estimate's error. ``benchmarks/recovery.py`` runs it
at full size; ``tests/test_recovery.py`` runs it small. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import crossover
from .bootstrap import percentile_ci
from .fits import N_LAW_PARAMETERS, fit_law, fit_n_law
from .interaction import difference
from .rows import Settings, model_rows

TRUE_LAW = {"E": 0.37, "A": 12.6, "alpha": 0.5, "B": 400.0, "beta": 2.0}
"""A law shaped like the CPU studies' (floor ~0.37, the n term gone by n ~ 1,000, the
capacity term 0.04 -> 0.01 from 0.1M to 1.6M parameters)."""
CROSSOVER_SLOPE = 2.0
"""Steepness s of the simulated memorised_fraction 1 / (1 + (n / n0)^s)."""
N0_PER_PARAM = 2e-4
"""The simulated n0 = N0_PER_PARAM * N (k = 1: the onset grows like the parameters)."""


@dataclass(frozen=True)
class Grid:
    """A study's design and measured noise: parameters per scale, n_train values, seeds, the
    seed spread of log val_loss per n_train, the extra seed spread of memorised_fraction, and
    the samples behind each fraction."""

    name: str
    params: tuple[float, ...]
    sizes: tuple[int, ...]
    seeds: int
    log_noise: dict[int, float] = field(default_factory=dict)
    fraction_noise: float = 0.0
    n_samples: int = 300


def measured_noise(summary: pd.DataFrame) -> tuple[dict[int, float], float]:
    """Median over the model cells of each n_train of the seed std of log val_loss, and of
    memorised_fraction where it is above 0.02 (both need two or more seeds per cell)."""
    rows = model_rows(summary)
    cells = rows.groupby(["arch", "scale", "n_train"])
    log_sd = cells.val_loss.apply(lambda v: float(np.log(v).std(ddof=1)))
    per_n = {int(n): float(v) for n, v in log_sd.groupby(level="n_train").median().items()}
    fraction_sd = cells.memorised_fraction.std(ddof=1)
    busy = cells.memorised_fraction.mean() > 0.02
    return per_n, float(fraction_sd[busy].median())


def grid_of(summary: pd.DataFrame, name: str, noise_from: pd.DataFrame | None = None) -> Grid:
    """The design of a committed summary.csv, with the seed noise measured on it (or on
    ``noise_from`` when it has a single seed, at the nearest n_train)."""
    rows = model_rows(summary)
    params = tuple(sorted(float(v) for v in rows.groupby("scale").n_params.median()))
    sizes = tuple(sorted(int(n) for n in rows.n_train.unique()))
    seeds = int(rows.groupby(["arch", "scale", "n_train"]).seed.nunique().min())
    per_n, fraction_sd = measured_noise(noise_from if noise_from is not None else summary)
    nearest = {n: per_n[min(per_n, key=lambda m: abs(math.log(m / n)))] for n in sizes}
    samples = int(rows.n_samples.median()) if "n_samples" in rows.columns else 300
    return Grid(name, params, sizes, seeds, nearest, fraction_sd, samples)


def true_fraction(n_params: float, n: np.ndarray) -> np.ndarray:
    return 1 / (1 + (n / (N0_PER_PARAM * n_params)) ** CROSSOVER_SLOPE)


def true_crossing(n_params: float, level: float) -> float:
    return N0_PER_PARAM * n_params * (1 / level - 1) ** (1 / CROSSOVER_SLOPE)


def simulate(grid: Grid, rng: np.random.Generator) -> pd.DataFrame:
    """One study's summary rows (one arch, ``sim``) drawn from the truths on ``grid``."""
    law = TRUE_LAW
    rows = []
    for i, n_params in enumerate(grid.params):
        for n in grid.sizes:
            loss = law["E"] + law["A"] / n_params ** law["alpha"] + law["B"] / n ** law["beta"]
            p = float(true_fraction(n_params, np.array(n)))
            for seed in range(grid.seeds):
                drift = float(np.clip(p + rng.normal(0, grid.fraction_noise), 0, 1))
                rows.append(
                    {
                        "kind": "model",
                        "arch": "sim",
                        "scale": f"s{i}",
                        "n_train": n,
                        "seed": seed,
                        "status": "ok",
                        "n_params": n_params,
                        "n_samples": grid.n_samples,
                        "val_loss": loss * math.exp(rng.normal(0, grid.log_noise[n])),
                        "memorised_fraction": rng.binomial(grid.n_samples, drift) / grid.n_samples,
                    }
                )
    return pd.DataFrame(rows)


def _record(out: list, what: str, name: str, entry: dict[str, Any], truth: float) -> None:
    low, high = entry["ci"] if entry.get("ci") else (None, None)
    out.append(
        {
            "what": what,
            "parameter": name,
            "truth": truth,
            "estimate": entry.get("estimate"),
            "covered": None if low is None else bool(low <= truth <= high),
            "low": low,
            "high": high,
        }
    )


def run_once(
    grid: Grid, seed: int, resamples: int, levels=(0.1, 0.5), joint: bool = True
) -> list[dict[str, Any]]:
    """Every parameter of one simulated study: the law (unless not ``joint``), the law in n
    per scale, n* per level and scale, k per level, and the capacity step's difference."""
    rng = np.random.default_rng([seed, len(grid.name)])
    table = simulate(grid, rng)
    settings = Settings(resamples=resamples, seed=seed, levels=tuple(levels))
    out: list[dict[str, Any]] = []
    if joint:
        law = fit_law(table, "val_loss", settings, "sim").entry
        for name in ("E", "A", "alpha", "B", "beta"):
            _record(out, f"law: {law['verdict']}", name, law[name], TRUE_LAW[name])
    for i, n_params in enumerate(grid.params):
        part = table[table.scale == f"s{i}"]
        n_law = fit_n_law(part, settings, "sim", f"s{i}")
        floor = TRUE_LAW["E"] + TRUE_LAW["A"] / n_params ** TRUE_LAW["alpha"]
        truths = {"E": floor, "B": TRUE_LAW["B"], "beta": TRUE_LAW["beta"]}
        for name in N_LAW_PARAMETERS:
            entry = n_law.get(name, {"estimate": None, "ci": None})
            _record(out, f"n-law s{i}: {n_law['verdict']}", name, entry, truths[name])
    onset = crossover.onset(table, table, levels, resamples, seed, grid.n_samples)
    for level in levels:
        label = crossover.level_label(level)
        for i, n_params in enumerate(grid.params):
            entry = onset["n_star"][label]["sim"][f"s{i}"]
            _record(
                out, f"n* s{i}: {entry['verdict']}", label, entry, true_crossing(n_params, level)
            )
        k = onset["n_star_exponent"][label]["sim"]
        _record(out, f"k: {k.get('verdict')}", label, k, 1.0)
    largest = table[table.n_train == max(grid.sizes)]
    step = difference(largest[largest.scale == "s2"], largest[largest.scale == "s1"], "val_loss", 0)
    loss = {
        i: TRUE_LAW["E"]
        + TRUE_LAW["A"] / p ** TRUE_LAW["alpha"]
        + TRUE_LAW["B"] / max(grid.sizes) ** TRUE_LAW["beta"]
        for i, p in enumerate(grid.params)
    }
    # The paired difference of the mean val_loss: the truth is the law's (noise is log-normal,
    # so the mean of a cell is its law value times exp(sd^2 / 2), the same factor in both).
    factor = math.exp(grid.log_noise[max(grid.sizes)] ** 2 / 2)
    verdict = "ok" if step.get("ci") else step["method"]
    _record(out, f"step: {verdict}", "base - small", step, (loss[2] - loss[1]) * factor)
    return out


def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """Per quantity and parameter: simulations, share ``ok``, CI coverage over the ok ones
    (with its Wilson-free binomial 95% band), median relative error of the estimate."""
    records = records.assign(
        quantity=records.what.str.split(":").str[0],
        ok=records.what.str.endswith(": ok"),
    )
    rows = []
    for (quantity, parameter), part in records.groupby(["quantity", "parameter"], sort=False):
        ok = part[part.ok & part.covered.notna()]
        coverage = float(ok.covered.mean()) if len(ok) else math.nan
        band = 1.96 * math.sqrt(coverage * (1 - coverage) / len(ok)) if len(ok) else math.nan
        error = (ok.estimate.astype(float) - ok.truth) / ok.truth
        rows.append(
            {
                "quantity": quantity,
                "parameter": parameter,
                "simulations": len(part),
                "ok": len(ok),
                "coverage": coverage,
                "coverage_band": band,
                "median_relative_error": float(error.median()) if len(ok) else math.nan,
                "relative_error_ci": percentile_ci(error.to_numpy()) if len(ok) > 1 else None,
            }
        )
    return pd.DataFrame(rows)


def recover(
    grid: Grid, simulations: int, resamples: int, seed: int = 0, joint: bool = True
) -> pd.DataFrame:
    """Every record of ``simulations`` simulated studies on ``grid``."""
    records = [
        record | {"simulation": i}
        for i in range(simulations)
        for record in run_once(grid, seed + i, resamples, joint=joint)
    ]
    return pd.DataFrame(records)

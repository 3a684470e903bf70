"""analysis.md from the content of analysis.json.

A number is never printed without its 95% CI; a fit whose verdict is not ``ok`` prints only
its verdict."""

from __future__ import annotations

from typing import Any

from . import crossover, lawfit
from .checks import CHECKS
from .findings import interaction_lines
from .fits import N_LAW_PARAMETERS
from .numbers import ci_text, estimate, number, share, table, with_ci
from .table_rows import collapse_rows, fit_rows, n_star_rows


def _checks(checks: list[dict[str, Any]]) -> list[str]:
    lines = ["## Result checks", ""]
    violated = {check["name"] for check in checks}
    lines += [f"- {name}: {'VIOLATED' if name in violated else 'ok'}" for name in CHECKS]
    lines.append("")
    for check in checks:
        lines += [f"**{check['name']}**: {check['message']}", ""]
        lines += [f"cells: {', '.join(check['cells'])}", ""]
    return lines


VERDICT_RULES = (
    f"A fit is `ok` only when no parameter sits within {lawfit.BOUND_MARGIN:.0%} of an "
    f"optimiser bound, no parameter is at its bound in more than {lawfit.BOUND_SHARE:.1%} of "
    "the bootstrap refits (a CI end on the bound), each exponent's CI is positive and spans at "
    f"most {lawfit.EXPONENT_SPAN:g}x, each coefficient's (E, A, B) spans at most "
    f"{lawfit.COEFFICIENT_DECADES:g} decades, and the leave-one-scale-out error is at most "
    f"{lawfit.LOSO_MAX:g}; otherwise the verdict names the first reason (analysis.json lists "
    "all) and no number is printed. `at bound`: the share of refits with some parameter at a "
    "bound. Bootstrap: seeds resampled within each cell, or, with one seed per cell, the "
    "fit's residuals resampled at the fixed design."
)


def _fits(fits: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Scaling-law fits: L = E + A / N^alpha + B / n^beta",
        "",
        "N = n_params, n = n_train; Huber loss in log space (Hoffmann et al. 2022, approach 3); "
        "95% percentile bootstrap CIs; loso_error: mean relative error on the largest scale "
        "of a fit without it. " + VERDICT_RULES,
        "",
    ]
    return lines + table(*fit_rows(fits))


def _n_laws(laws: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Validation loss against n_train at each scale: L = E + B / n^beta",
        "",
        "The same fit, bootstrap and verdict rules as above (no leave-one-scale-out: one "
        "scale), at one arch x scale with the N term left out; it needs 4 or more n_train "
        "values (3 would fit any 3 points exactly).",
        "",
    ]
    rows = []
    for arch, scales in sorted(laws.items()):
        for scale, entry in scales.items():
            numbers = [
                with_ci(entry[name]) if entry["verdict"] == "ok" else ""
                for name in N_LAW_PARAMETERS
            ]
            bound = share(entry.get("bound_share"))
            rows.append([arch, scale, str(entry["n_cells"]), entry["verdict"], bound, *numbers])
    header = ["arch", "scale", "cells", "verdict", "at bound", *N_LAW_PARAMETERS]
    return lines + table(header, rows)


def _n_star(report: dict[str, Any]) -> list[str]:
    levels = report["levels"]
    lines = [
        "## Memorisation onset n*",
        "",
        f"n* = the n_train where memorised_fraction (mean over seeds) falls through each level "
        f"({', '.join(levels)}) for the last time, interpolated linearly in logit(fraction) "
        "against log n; CI: seeds resampled within each n_train, each fraction redrawn as a "
        "binomial proportion of its samples (n_samples column, else "
        f"{report['n_samples']}). A CI end beyond the grid shows as <grid / >grid. Between grid "
        f"points more than {crossover.MAX_BRACKET:g}x apart the interpolation, not the data, "
        "places n*: such an estimate is printed with its `coarse` verdict and no CI "
        "(`fmscale refine` proposes the n_train values that bracket it); so is one where "
        "rows the model never saw (real_holdout) already score the level.",
        "",
    ]
    lines += table(*n_star_rows(report))
    exponents = report["n_star_exponent"]
    rows = [
        [arch, *[estimate(exponents[level][arch]) for level in levels]]
        for arch in exponents[levels[0]]
    ]
    lines += [
        "Exponent k of n* ~ params^k (least squares over the scales with an n*; CI from the "
        "same resamples, read only when 95% of them keep every n* inside the grid):",
        "",
    ]
    return lines + table(["arch", *[f"k at {level}" for level in levels]], rows)


def _ceiling(report: dict[str, Any]) -> list[str]:
    ceiling, shares = report["ceiling"], report["share_of_ceiling"]
    lines = ["## Memorisation against its ceiling", ""]
    if not ceiling:
        return lines + ["No empirical_flow reference rows: no ceiling to read against.", ""]
    sizes = sorted({n for scales in shares.values() for e in scales.values() for n in e}, key=int)
    lines += [
        "The exact memoriser flow (empirical_flow: the training rows' own velocity field, "
        "sampled with the models' solver and NFE) memorises "
        + ", ".join(f"{ceiling[n]:.3g} at n = {n}" for n in ceiling)
        + ": no model can copy more. Each cell's memorised_fraction as a share of that "
        "ceiling, 95% CI (delta method: the cell's error over seeds, at least binomial, and "
        "the ceiling's binomial error).",
        "",
    ]
    rows = [
        [arch, scale]
        + [
            ci_text(per_n.get(n, {}) | {"estimate": per_n.get(n, {}).get("share_of_ceiling")})
            for n in sizes
        ]
        for arch, scales in shares.items()
        for scale, per_n in scales.items()
    ]
    return lines + table(["arch", "scale", *[f"n={n}" for n in sizes]], rows)


def _collapse(collapse: dict[str, Any]) -> list[str]:
    lines = [
        "## Collapse: memorised_fraction ~ F(n / N^z)",
        "",
        "z: the exponent at which the scales' memorised_fraction curves, drawn against "
        "log n - z log N, lie closest (mean squared gap between each point and every other "
        "scale's curve where it covers it; pairs both below the level of unseen rows (the "
        "largest real_holdout memorised_fraction, at least 0.02) left out), searched on "
        "-1..3 in steps of 0.01; CI from the same resamples as n*. A critical size growing "
        "~ N, the theory's reading, is z = 1; z = 0 is no dependence on N. Loss: - where "
        "fewer than 3 pairs overlap.",
        "",
    ]
    return lines + table(*collapse_rows(collapse))


def _tau_mem(tau: dict[str, dict[str, Any]]) -> list[str]:
    if not tau:
        return ["## Memorisation over training time", "", "No trajectories.csv.", ""]
    lines = [
        "## Memorisation over training time",
        "",
        "tau_mem = the first snapshot step with memorised_fraction above the level; the cells "
        "that get there, and the exponent of tau_mem against n_train (least squares, Student-t "
        "CI) where 3 or more sizes have one before their last snapshot (a cell that first "
        "memorises at its last snapshot crossed after the one before: the budget sets that "
        "step). Snapshots are log-spaced (steps / 2^k), so a tau_mem is known within 2x.",
        "",
    ]
    rows = []
    for level, archs in tau.items():
        for arch, scales in archs.items():
            for scale, entry in scales.items():
                cells = entry["cells"]
                crossed = {c: step for c, step in cells.items() if step is not None}
                listed = ", ".join(f"{c}: {number(step)}" for c, step in crossed.items())
                rows.append(
                    [
                        level,
                        arch,
                        scale,
                        f"{len(crossed)} of {len(cells)}" + (f" ({listed})" if listed else ""),
                        estimate(entry["exponent"]),
                    ]
                )
    header = ["level", "arch", "scale", "cells crossing (step)", "exponent [95% CI]"]
    return lines + table(header, rows)


def _comparisons(comparisons: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Paired comparisons",
        "",
        "Mean difference a - b over cells paired by n_train and seed; 95% CI over the pairs: "
        "a percentile bootstrap from 10 pairs on, the Student-t interval below (method "
        "column); resolved = the CI excludes 0. Pooled over n_train; per n_train rows (two or "
        "more seeds) are listed when resolved.",
        "",
    ]
    rows = [
        [
            c["metric"],
            c["a"],
            c["b"],
            "all" if c["n_train"] is None else str(c["n_train"]),
            str(c["n_pairs"]),
            with_ci({"estimate": c["difference"], "ci": c["ci"]}),
            c["ci_method"] or "none (one pair)",
            "yes" if c["resolved"] else "no",
        ]
        for c in comparisons
        if c["n_train"] is None or c["resolved"]
    ]
    header = ["metric", "a", "b", "n_train", "pairs", "a - b [95% CI]", "CI", "resolved"]
    return lines + table(header, rows)


def markdown(report: dict[str, Any]) -> str:
    """analysis.md: the result checks first, then the interaction, fits, onset, trajectories,
    comparisons."""
    boot = report["bootstrap"]
    dataset = f" of dataset `{report['dataset']}`" if report.get("dataset") else ""
    lines = [
        "# Analysis",
        "",
        f"From summary.csv alone (its rows{dataset}); {boot['resamples']} bootstrap resamples, "
        f"seed {boot['seed']}.",
        "",
        *_checks(report["checks"]),
        *interaction_lines(report["interaction"]),
        *_fits(report["fits"]),
        *_n_laws(report.get("n_laws", {})),
        *_n_star(report),
        *_ceiling(report),
        *_collapse(report["collapse"]),
        *_tau_mem(report["tau_mem"]),
        *_comparisons(report["comparisons"]),
    ]
    return "\n".join(lines)

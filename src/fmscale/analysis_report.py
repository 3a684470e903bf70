"""analysis.md and the analysis figures, from the content of analysis.json (and the fits' draws).

A number is never printed without its 95% CI; a fit whose verdict is not ``ok`` prints only
its verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import crossover, lawfit
from .analysis import CHECKS, N_LAW_PARAMETERS, LawResult, scale_order
from .files import atomic_path, atomic_write
from .interaction import CAPACITY_METRIC
from .lawfit import log_prediction
from .study import ANALYSIS_FIGURES, ANALYSIS_TABLES, FIGURE_DPI, FIGURE_FORMATS
from .summarize import log_axes


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _with_ci(entry: dict[str, Any]) -> str:
    """``estimate [lo, hi]``; a CI bound beyond the grid shows as < or >."""
    low, high = entry["ci"] or (None, None)
    low_text = "<grid" if low is None else f"{low:.3g}"
    high_text = ">grid" if high is None else f"{high:.3g}"
    return f"{entry['estimate']:.3g} [{low_text}, {high_text}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _checks(checks: list[dict[str, Any]]) -> list[str]:
    lines = ["## Result checks", ""]
    violated = {check["name"] for check in checks}
    lines += [f"- {name}: {'VIOLATED' if name in violated else 'ok'}" for name in CHECKS]
    lines.append("")
    for check in checks:
        lines += [f"**{check['name']}**: {check['message']}", ""]
        lines += [f"cells: {', '.join(check['cells'])}", ""]
    return lines


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


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


def _fit_rows(fits: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The scaling-law fits as a table (header, rows): numbers for ``ok`` fits only."""
    header = ["arch", "target", "verdict", "cells", "at bound", "E", "A", "alpha", "B", "beta"]
    header.append("loso_error")
    rows = []
    for arch, targets in fits.items():
        for target, fit in targets.items():
            row = [
                arch,
                target,
                fit["verdict"],
                str(fit["n_cells"]),
                _share(fit.get("bound_share")),
            ]
            if fit["verdict"] == "ok":
                names = ("E", "A", "alpha", "B", "beta")
                row += [_with_ci(fit[name]) for name in names] + [_number(fit["loso_error"])]
            else:
                row += [""] * 6
            rows.append(row)
    return header, rows


def _fits(fits: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Scaling-law fits: L = E + A / N^alpha + B / n^beta",
        "",
        "N = n_params, n = n_train; Huber loss in log space (Hoffmann et al. 2022, approach 3); "
        "95% percentile bootstrap CIs; loso_error: mean relative error on the largest scale "
        "of a fit without it. " + VERDICT_RULES,
        "",
    ]
    return lines + _table(*_fit_rows(fits))


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
                _with_ci(entry[name]) if entry["verdict"] == "ok" else ""
                for name in N_LAW_PARAMETERS
            ]
            share = _share(entry.get("bound_share"))
            rows.append([arch, scale, str(entry["n_cells"]), entry["verdict"], share, *numbers])
    header = ["arch", "scale", "cells", "verdict", "at bound", *N_LAW_PARAMETERS]
    return lines + _table(header, rows)


def _estimate(entry: dict[str, Any]) -> str:
    """``estimate [lo, hi]`` with an ok CI, else the estimate and its verdict, else the verdict."""
    if entry.get("estimate") is None:
        return entry.get("verdict", "-")
    if entry.get("ci") and entry.get("verdict", "ok") == "ok":
        return _with_ci(entry)
    return f"{entry['estimate']:.3g} ({entry.get('verdict', 'no CI')})"


def _n_star_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    levels = report["levels"]
    header = ["arch", "scale", "params", *[f"n* at {level} [95% CI]" for level in levels]]
    first = report["n_star"][levels[0]]
    rows = [
        [arch, scale, _number(entry["n_params"])]
        + [_estimate(report["n_star"][level][arch][scale]) for level in levels]
        for arch, scales in first.items()
        for scale, entry in scales.items()
    ]
    return header, rows


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
    lines += _table(*_n_star_rows(report))
    exponents = report["n_star_exponent"]
    rows = [
        [arch, *[_estimate(exponents[level][arch]) for level in levels]]
        for arch in exponents[levels[0]]
    ]
    lines += [
        "Exponent k of n* ~ params^k (least squares over the scales with an n*; CI from the "
        "same resamples, read only when 95% of them keep every n* inside the grid):",
        "",
    ]
    return lines + _table(["arch", *[f"k at {level}" for level in levels]], rows)


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
            _ci_text(per_n.get(n, {}) | {"estimate": per_n.get(n, {}).get("share_of_ceiling")})
            for n in sizes
        ]
        for arch, scales in shares.items()
        for scale, per_n in scales.items()
    ]
    return lines + _table(["arch", "scale", *[f"n={n}" for n in sizes]], rows)


def _collapse_rows(collapse: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["arch", "z [95% CI]", "verdict", "loss at z", "loss at z = 1", "loss at z = 0"]
    rows = [
        [
            arch,
            _with_ci(entry) if entry.get("ci") else _number(entry.get("estimate")),
            entry["verdict"],
            _number(entry.get("loss")),
            _number(entry.get("loss_at_z1")),
            _number(entry.get("loss_at_z0")),
        ]
        for arch, entry in collapse.items()
    ]
    return header, rows


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
    return lines + _table(*_collapse_rows(collapse))


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
                listed = ", ".join(f"{c}: {_number(step)}" for c, step in crossed.items())
                rows.append(
                    [
                        level,
                        arch,
                        scale,
                        f"{len(crossed)} of {len(cells)}" + (f" ({listed})" if listed else ""),
                        _estimate(entry["exponent"]),
                    ]
                )
    header = ["level", "arch", "scale", "cells crossing (step)", "exponent [95% CI]"]
    return lines + _table(header, rows)


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
            _with_ci({"estimate": c["difference"], "ci": c["ci"]}),
            c["ci_method"] or "none (one pair)",
            "yes" if c["resolved"] else "no",
        ]
        for c in comparisons
        if c["n_train"] is None or c["resolved"]
    ]
    header = ["metric", "a", "b", "n_train", "pairs", "a - b [95% CI]", "CI", "resolved"]
    return lines + _table(header, rows)


def _ci_text(entry: dict[str, Any]) -> str:
    """``estimate [lo, hi]`` of an interaction entry (no CI: the estimate alone, marked)."""
    if entry.get("estimate") is None:
        return "-"
    if entry["ci"] is None:
        return f"{entry['estimate']:.3g} (no CI)"
    low, high = entry["ci"]
    return f"{entry['estimate']:.3g} [{low:.3g}, {high:.3g}]"


INTERACTION_WORDS = {
    "gap": "the generalisation gap (val_loss - train_loss on the same noise draws)",
    "memorised_fraction": "memorised_fraction (samples that copy a training row)",
}


def _finding(metric: str, found: dict[str, Any], archs: list[str], small: int, large: int) -> str:
    grows, shrinks = found["grows_with_scale"], found["shrinks_with_n"]
    pairs = len({(c["arch"], c["scale"]) for c in found["cells"]})
    return (
        f"**Finding ({metric})**: at n_train = {small}, {INTERACTION_WORDS[metric]} grows from "
        f"the smallest to the largest scale, CI above 0, for {len(grows)} of {len(archs)} archs"
        f" ({', '.join(grows) or 'none'}); it shrinks from n_train = {small} to {large}, CI "
        f"above 0, for {len(shrinks)} of {pairs} arch x scale pairs"
        f" ({', '.join(shrinks) or 'none'})."
    )


def _capacity(found: dict[str, Any]) -> list[str]:
    """The val_loss_ratio steps up in scale at the largest n_train: finding and table."""
    steps, n_train = found["steps"], found["n_train"]
    archs = sorted(steps)
    falls = found["falls_with_scale"]
    seeds_short = any(e["method"] == "none" for entries in steps.values() for e in entries)
    finding = (
        f"**Finding (capacity at n_train = {n_train})**: val_loss_ratio falls at every step "
        f"up in scale, CI below 0, for {len(falls)} of {len(archs)} archs"
        f" ({', '.join(falls) or 'none'})."
    )
    if seeds_short:
        finding += (
            " A step's CI needs two or more seeds (the seed-to-seed variation is what "
            "decides it): a step with one seed has none and is never resolved."
        )
    width = max((len(entries) for entries in steps.values()), default=0)
    header = ["arch", *[f"step {i + 1}: larger - smaller [95% CI]" for i in range(width)]]
    rows = [
        [arch, *[f"{e['a']} - {e['b']}: {_ci_text(e)}" for e in steps[arch]]]
        + [""] * (width - len(steps[arch]))
        for arch in archs
    ]
    return [finding, ""] + (_table(header, rows) if width else [])


def _interaction(found: dict[str, Any]) -> list[str]:
    lines = ["## Capacity x data: generalisation gap, memorisation, loss at the largest n", ""]
    sizes, scales = found["n_train"], found["scales"]
    metrics = [m for m in INTERACTION_WORDS if m in found]
    if len(sizes) < 2 or not metrics:
        return lines + ["Needs two or more n_train values.", ""]
    lines += [
        "Mean over seeds with its 95% CI: Student-t over the seeds when there are two or more, "
        "else the cell's own sampling error (the gap's paired standard error over the "
        "validation draws; the binomial error of memorised_fraction). Differences pair seeds.",
        "",
    ]
    for metric in metrics:
        part = found[metric]
        archs = sorted({c["arch"] for c in part["cells"]})
        lines += [_finding(metric, part, archs, sizes[0], sizes[-1]), ""]
        cells = {(c["arch"], c["scale"], c["n_train"]): c for c in part["cells"]}
        rows = [
            [arch, scale] + [_ci_text(cells.get((arch, scale, n), {})) for n in sizes]
            for arch in archs
            for scale in scales
            if any((arch, scale, n) in cells for n in sizes)
        ]
        lines += _table(["arch", "scale", *[f"n={n}" for n in sizes]], rows)
        rows = []
        for arch in archs:
            by_scale = part["largest_minus_smallest_scale"].get(arch)
            by_n = part["smallest_minus_largest_n"].get(arch, {})
            rows.append(
                [
                    arch,
                    "-" if by_scale is None else f"{by_scale['a']} - {by_scale['b']}",
                    "-" if by_scale is None else _ci_text(by_scale),
                    "; ".join(f"{scale}: {_ci_text(d)}" for scale, d in by_n.items()) or "-",
                ]
            )
        header = [
            "arch",
            "scales",
            f"at n={sizes[0]}: larger - smaller [95% CI]",
            f"n={sizes[0]} - n={sizes[-1]} per scale [95% CI]",
        ]
        lines += _table(header, rows)
    if CAPACITY_METRIC in found:
        lines += [
            "Where data is plentiful capacity should help: each step up in scale of "
            f"{CAPACITY_METRIC} at the largest n_train, paired by seed (Student-t over the "
            "pairs), below 0 when the larger model is better.",
            "",
            *_capacity(found[CAPACITY_METRIC]),
        ]
    return lines


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
        *_interaction(report["interaction"]),
        *_fits(report["fits"]),
        *_n_laws(report.get("n_laws", {})),
        *_n_star(report),
        *_ceiling(report),
        *_collapse(report["collapse"]),
        *_tau_mem(report["tau_mem"]),
        *_comparisons(report["comparisons"]),
    ]
    return "\n".join(lines)


def _save(fig, stem: Path) -> None:
    """``stem``.png (FIGURE_DPI), .pdf and .svg, without dates, so a rerun writes the same."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for fmt in FIGURE_FORMATS:
        metadata = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            fig.savefig(tmp, dpi=FIGURE_DPI, format=fmt, metadata=metadata)
    plt.close(fig)


def _heatmaps(rows: pd.DataFrame, path: Path) -> None:
    """Per arch (one row of panels): gap and memorised_fraction over scale x n_train."""
    import matplotlib.pyplot as plt

    archs = sorted(rows.arch.unique()) or ["(no finished cells)"]
    metrics = ["gap", "memorised_fraction"]
    fig, axes = plt.subplots(len(archs), 2, figsize=(9, 2.6 * len(archs)), squeeze=False)
    for ax_row, arch in zip(axes, archs, strict=True):
        part = rows[rows.arch == arch]
        scales = scale_order(part)
        for ax, metric in zip(ax_row, metrics, strict=True):
            ax.set_title(f"{arch}: {metric}")
            if part.empty or metric not in part.columns:
                continue
            table = part.pivot_table(index="scale", columns="n_train", values=metric)
            table = table.reindex(scales)
            image = ax.imshow(table.to_numpy(float), aspect="auto", origin="lower", cmap="viridis")
            params = part.groupby("scale").n_params.median()
            ax.set_yticks(range(len(scales)), [f"{s} ({params[s] / 1e6:.2g}M)" for s in scales])
            ax.set_xticks(range(table.shape[1]), [str(n) for n in table.columns])
            ax.set_xlabel("n_train")
            for (i, j), value in np.ndenumerate(table.to_numpy(float)):
                if np.isfinite(value):
                    ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7, color="w")
            fig.colorbar(image, ax=ax)
    _save(fig, path)


def _law_band(law: LawResult, n_params: float, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """The fitted curve at ``sizes`` for one parameter count, and its 95% bootstrap band."""
    log_params = np.full(len(sizes), np.log(n_params))
    curve = np.exp(log_prediction(law.theta, log_params, np.log(sizes)))
    draws = np.exp(log_prediction(law.draws, log_params, np.log(sizes)))
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return curve, low, high


def _val_loss_fits(rows: pd.DataFrame, laws: dict[str, dict[str, LawResult]], path: Path) -> None:
    """Per arch: val_loss vs n_train per scale, with the fitted law and its band when ok."""
    import matplotlib.pyplot as plt

    archs = sorted(rows.arch.unique()) or ["(no finished cells)"]
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.4), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        part = rows[rows.arch == arch]
        law = laws.get(arch, {}).get("val_loss")
        fitted = law is not None and law.entry["verdict"] == "ok"
        for scale in scale_order(part):
            cells = part[part.scale == scale]
            means = cells.groupby("n_train").val_loss.mean()
            line = ax.plot(means.index, means.values, "o", label=scale)[0]
            if fitted:
                sizes = np.geomspace(means.index.min(), means.index.max(), 50)
                curve, low, high = _law_band(law, cells.n_params.median(), sizes)
                ax.plot(sizes, curve, color=line.get_color())
                ax.fill_between(sizes, low, high, color=line.get_color(), alpha=0.2)
        log_axes(ax, "x")  # val_loss spans less than a decade: a linear y keeps its labels
        sizes = sorted(part.n_train.unique())
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.set_xlabel("n_train")
        ax.set_ylabel("val_loss")
        ax.set_title(f"{arch}: fit {law.entry['verdict'] if law else 'none'}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _save(fig, path)


def _n_star_figure(report: dict[str, Any], path: Path) -> None:
    """n* against parameters per arch and level (95% CI bars), with the diagonal n* = params."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    estimated = []
    markers = "osD^v"
    for index, level in enumerate(report["levels"]):
        for arch, scales in report["n_star"][level].items():
            points = [entry for entry in scales.values() if entry.get("verdict") == "ok"]
            if not points:
                continue
            x = np.array([entry["n_params"] for entry in points])
            y = np.array([entry["estimate"] for entry in points])
            low = np.array([entry["ci"][0] or entry["estimate"] for entry in points])
            high = np.array([entry["ci"][1] or entry["estimate"] for entry in points])
            ax.errorbar(
                x,
                y,
                yerr=[y - low, high - y],
                marker=markers[index % len(markers)],
                capsize=3,
                label=f"{arch}, level {level}",
            )
            estimated += [*x, *y]
    if estimated:
        span = np.array([min(estimated), max(estimated)])
        ax.plot(span, span, "k--", linewidth=1, label="n* = params")
        log_axes(ax, "x", "y")
        ax.legend(fontsize=6)
    else:
        ax.text(0.5, 0.5, "no ok n* (none inside the grid)", ha="center", transform=ax.transAxes)
    ax.set_xlabel("parameters")
    ax.set_ylabel("n* (memorised_fraction falls through the level)")
    _save(fig, path)


def _collapse_figure(rows: pd.DataFrame, collapse: dict[str, Any], path: Path) -> None:
    """Per arch: memorised_fraction (mean over seeds) against n / N^z at the fitted z."""
    import matplotlib.pyplot as plt

    archs = sorted(collapse) or ["(no collapse)"]
    fig, axes = plt.subplots(1, len(archs), figsize=(3.4 * len(archs), 3), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        entry = collapse.get(arch, {})
        z = entry.get("estimate")
        ax.set_title(f"{arch}: z = {_number(z)} ({entry.get('verdict', '-')})", fontsize=8)
        part = rows[rows.arch == arch].dropna(subset=["memorised_fraction"])
        if z is None or part.empty:
            continue
        for scale in scale_order(part):
            cells = part[part.scale == scale]
            means = cells.groupby("n_train").memorised_fraction.mean()
            x = means.index.to_numpy(float) / cells.n_params.median() ** z
            ax.plot(x, means.to_numpy(), "o-", ms=3, label=scale)
        ax.set_xscale("log")
        ax.set_xlabel("n_train / params^z")
        ax.set_ylabel("memorised_fraction")
        ax.legend(fontsize=7)
    _save(fig, path)


def _interaction_figure(found: dict[str, Any], path: Path) -> None:
    """Per arch: the gap and memorised_fraction against n_train, a line per scale, 95% CIs."""
    import matplotlib.pyplot as plt

    metrics = [m for m in INTERACTION_WORDS if m in found]
    cells = pd.DataFrame(
        [c for m in metrics for c in ({"metric": m} | c for c in found[m]["cells"])]
    )
    archs = sorted(cells.arch.unique()) if len(cells) else ["(no finished cells)"]
    fig, axes = plt.subplots(
        max(1, len(metrics)),
        len(archs),
        figsize=(3.2 * len(archs), 2.8 * max(1, len(metrics))),
        squeeze=False,
    )
    for row, metric in zip(axes, metrics or ["gap"], strict=True):
        for ax, arch in zip(row, archs, strict=True):
            ax.set_title(f"{arch}: {metric}", fontsize=9)
            ax.set_xscale("log")
            ax.set_xlabel("n_train")
            ax.axhline(0, color="0.7", lw=0.8)
            if cells.empty:
                continue
            part = cells[(cells.metric == metric) & (cells.arch == arch)]
            for scale in found["scales"]:
                line = part[part.scale == scale].sort_values("n_train")
                if line.empty:
                    continue
                ci = np.array(
                    [
                        c if c is not None else [e, e]
                        for c, e in zip(line.ci, line.estimate, strict=True)
                    ]
                )
                err = np.abs(ci.T - line.estimate.to_numpy(float))
                ax.errorbar(
                    line.n_train, line.estimate, yerr=err, marker="o", ms=3, capsize=2, label=scale
                )
            ax.legend(fontsize=7)
    _save(fig, path)


def write_figures(
    rows: pd.DataFrame,
    report: dict[str, Any],
    laws: dict[str, dict[str, LawResult]],
    out_dir: Path,
) -> list[Path]:
    """The ANALYSIS_FIGURES under ``out_dir`` in every FIGURE_FORMATS; each is written even
    when it has nothing to show."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "fmscale"  # stable SVG ids
    stems = dict(zip(ANALYSIS_FIGURES, (out_dir / name for name in ANALYSIS_FIGURES), strict=True))
    _heatmaps(rows, stems["heatmaps"])
    _val_loss_fits(rows, laws, stems["val_loss_fits"])
    _n_star_figure(report, stems["n_star"])
    _interaction_figure(report["interaction"], stems["interaction"])
    _collapse_figure(rows, report["collapse"], stems["collapse"])
    return [stem.with_suffix(f".{fmt}") for stem in stems.values() for fmt in FIGURE_FORMATS]


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#"}


def _latex_cell(text: str) -> str:
    for char, escaped in LATEX_SPECIALS.items():
        text = text.replace(char, escaped)
    return text.replace("<grid", r"$<$grid").replace(">grid", r"$>$grid")


def latex_table(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular of ``rows`` (needs ``\\usepackage{booktabs}``)."""
    lines = [
        r"\begin{tabular}{" + "l" * len(header) + "}",
        r"\toprule",
        " & ".join(_latex_cell(cell) for cell in header) + r" \\",
        r"\midrule",
        *[" & ".join(_latex_cell(cell) for cell in row) + r" \\" for row in rows],
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _capacity_rows(found: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    steps = found.get(CAPACITY_METRIC, {}).get("steps", {})
    header = ["arch", "step", f"{CAPACITY_METRIC}: larger - smaller [95% CI]"]
    rows = [
        [arch, f"{e['a']} - {e['b']}", _ci_text(e)] for arch in sorted(steps) for e in steps[arch]
    ]
    return header, rows


def write_tables(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """The ANALYSIS_TABLES under ``out_dir`` as LaTeX (the same rows as analysis.md)."""
    tables = {
        "fits": _fit_rows(report["fits"]),
        "n_star": _n_star_rows(report),
        "capacity": _capacity_rows(report["interaction"]),
        "collapse": _collapse_rows(report["collapse"]),
    }
    paths = []
    for name in ANALYSIS_TABLES:
        path = out_dir / f"{name}.tex"
        atomic_write(path, latex_table(*tables[name]))
        paths.append(path)
    return paths

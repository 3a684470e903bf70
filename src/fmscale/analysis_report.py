"""analysis.md and the analysis figures, from the content of analysis.json (and the fits' draws).

A number is never printed without its 95% CI; a fit whose verdict is not ``ok`` prints only
its verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .analysis import CHECKS, N_LAW_PARAMETERS, LawResult, scale_order
from .files import atomic_path
from .interaction import CAPACITY_METRIC
from .lawfit import log_prediction
from .study import ANALYSIS_FIGURES
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


def _fits(fits: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Scaling-law fits: L = E + A / N^alpha + B / n^beta",
        "",
        "N = n_params, n = n_train; Huber loss in log space (Hoffmann et al. 2022, approach 3); "
        "95% percentile bootstrap CIs; loso_error: mean relative error on the largest scale "
        "of a fit without it. Only `ok` fits print numbers.",
        "",
    ]
    header = ["arch", "target", "verdict", "cells", "E", "A", "alpha", "B", "beta", "loso_error"]
    rows = []
    for arch, targets in fits.items():
        for target, fit in targets.items():
            row = [arch, target, fit["verdict"], str(fit["n_cells"])]
            if fit["verdict"] == "ok":
                names = ("E", "A", "alpha", "B", "beta")
                row += [_with_ci(fit[name]) for name in names] + [_number(fit["loso_error"])]
            else:
                row += [""] * 6
            rows.append(row)
    return lines + _table(header, rows)


def _n_laws(laws: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Validation loss against n_train at each scale: L = E + B / n^beta",
        "",
        "The same fit and bootstrap as above, at one arch x scale (the N term left out); "
        "an exponent is `ok` when its CI is positive and spans at most 3x; it needs 4 or more "
        "n_train values (3 would fit any 3 points exactly).",
        "",
    ]
    rows = []
    for arch, scales in sorted(laws.items()):
        for scale, entry in scales.items():
            numbers = [
                _with_ci(entry[name]) if entry["verdict"] == "ok" else ""
                for name in N_LAW_PARAMETERS
            ]
            rows.append([arch, scale, str(entry["n_cells"]), entry["verdict"], *numbers])
    return lines + _table(["arch", "scale", "cells", "verdict", *N_LAW_PARAMETERS], rows)


def _n_star(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Memorisation onset n*",
        "",
        "n* = the n_train where memorised_fraction (mean over seeds) falls through 0.5, linear "
        "in log n; CI: seeds resampled, each fraction redrawn as a binomial proportion of "
        f"{report['n_samples']} samples.",
        "",
    ]
    rows = []
    for arch, scales in report["n_star"].items():
        for scale, entry in scales.items():
            text = _with_ci(entry) if "estimate" in entry else entry["verdict"]
            rows.append([arch, scale, _number(entry["n_params"]), text])
    lines += _table(["arch", "scale", "params", "n* [95% CI]"], rows)
    rows = [
        [arch, _with_ci(entry) if entry.get("ci") else entry.get("verdict", "no CI")]
        for arch, entry in report["n_star_exponent"].items()
    ]
    lines += ["Exponent k of n* ~ params^k:", ""]
    return lines + _table(["arch", "k [95% CI]"], rows)


def _tau_mem(tau: dict[str, dict[str, Any]]) -> list[str]:
    if not tau:
        return ["## Memorisation over training time", "", "No trajectories.csv.", ""]
    lines = [
        "## Memorisation over training time",
        "",
        "tau_mem = the first snapshot step with memorised_fraction > 0.5 (never: -); its "
        "exponent against n_train where at least 3 sizes have one.",
        "",
    ]
    rows = []
    for arch, scales in tau.items():
        for scale, entry in scales.items():
            cells = ", ".join(f"{cell}: {_number(step)}" for cell, step in entry["cells"].items())
            exponent = entry["exponent"]
            text = _with_ci(exponent) if "estimate" in exponent else exponent["verdict"]
            rows.append([arch, scale, cells, text])
    return lines + _table(["arch", "scale", "tau_mem per cell", "exponent [95% CI]"], rows)


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
        *_tau_mem(report["tau_mem"]),
        *_comparisons(report["comparisons"]),
    ]
    return "\n".join(lines)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
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
    """n* against parameters per arch (95% CI bars), with the diagonal n* = params."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    estimated = []
    for arch, scales in report["n_star"].items():
        points = [entry for entry in scales.values() if "estimate" in entry]
        if not points:
            continue
        x = np.array([entry["n_params"] for entry in points])
        y = np.array([entry["estimate"] for entry in points])
        low = np.array([entry["ci"][0] or entry["estimate"] for entry in points])
        high = np.array([entry["ci"][1] or entry["estimate"] for entry in points])
        ax.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=arch)
        estimated += [*x, *y]
    if estimated:
        span = np.array([min(estimated), max(estimated)])
        ax.plot(span, span, "k--", linewidth=1, label="n* = params")
        log_axes(ax, "x", "y")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no n* inside the grid", ha="center", transform=ax.transAxes)
    ax.set_xlabel("parameters")
    ax.set_ylabel("n* (memorised_fraction = 0.5)")
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
    """The ANALYSIS_FIGURES under ``out_dir``; each is written even when it has nothing to show."""
    import matplotlib

    matplotlib.use("Agg")
    paths = [out_dir / f"{name}.png" for name in ANALYSIS_FIGURES]
    _heatmaps(rows, paths[0])
    _val_loss_fits(rows, laws, paths[1])
    _n_star_figure(report, paths[2])
    _interaction_figure(report["interaction"], paths[3])
    return paths

"""The analysis figures (heatmaps, fits, n*, interaction, collapse), each as PNG, PDF and SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..record import ANALYSIS_FIGURES, FIGURE_DPI, FIGURE_FORMATS
from ..render import log_axes, save_figure
from .findings import INTERACTION_WORDS
from .fits import LawResult
from .lawfit import log_prediction
from .numbers import number
from .rows import scale_order


def _save(fig, stem: Path) -> None:
    """``stem``.png (FIGURE_DPI), .pdf and .svg, without dates, so a rerun writes the same."""
    fig.tight_layout()
    save_figure(fig, stem, FIGURE_FORMATS, FIGURE_DPI)


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
        ax.set_title(f"{arch}: z = {number(z)} ({entry.get('verdict', '-')})", fontsize=8)
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

"""The summary's plots: each catalogue plot ``<metric>_vs_params`` (one panel per n_train) or
``*_vs_n_train`` (one panel per metric), one PNG per dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..catalogue import plot_metrics, plot_names
from ..render import log_axes, save_figure

PLOT_DPI = 110


def _legend(ax, **kwargs: Any) -> None:
    """A legend, unless nothing was drawn (an empty panel of a grid with no finished cell)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _plot_vs_params(frame: pd.DataFrame, metric: str, grid: dict[str, list], path: Path) -> None:
    import matplotlib.pyplot as plt

    sizes = grid["n_train"]
    panels = max(len(sizes), 1)  # an empty grid still gets its (empty) plot
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.4), sharey=True, squeeze=False)
    models = frame[(frame.kind == "model") & (frame.status == "ok")]
    refs = frame[(frame.kind == "reference") & (frame.status == "ok")]
    for ax, n in zip(axes[0], sizes, strict=False):
        for arch in grid["archs"]:
            part = models[(models.arch == arch) & (models.n_train == n)]
            if not part[metric].notna().any():
                continue
            stats = part.groupby("n_params")[metric].agg(["mean", "std"]).reset_index()
            ax.errorbar(
                stats.n_params,
                stats["mean"],
                yerr=stats["std"].fillna(0),
                marker="o",
                capsize=3,
                label=arch,
            )
        for name, style in (("real_holdout", "k--"), ("gaussian_fit", "r:")):
            value = refs[(refs.arch == name) & (refs.n_train == n)][metric].dropna()
            if not value.empty:
                ax.axhline(
                    float(value.iloc[0]),
                    color=style[0],
                    linestyle=style[1:],
                    linewidth=1,
                    label=name,
                )
        log_axes(ax, "x")
        ax.set_title(f"n_train = {n}")
        ax.set_xlabel("parameters")
    axes[0][0].set_ylabel(metric)
    _legend(axes[0][-1], fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, ["png"], PLOT_DPI)


def _plot_vs_n_train(
    frame: pd.DataFrame, metrics: list[str], grid: dict[str, list], path: Path
) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    models = frame[(frame.kind == "model") & (frame.status == "ok")]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (arch, scale), part in models.groupby(["arch", "scale"]):
            if not part[metric].notna().any():
                continue
            stats = part.groupby("n_train")[metric].mean()
            ax.plot(stats.index, stats.values, marker="o", label=f"{arch}/{scale}")
        refs = frame[(frame.kind == "reference") & (frame.status == "ok")]
        for name, style in (("real_holdout", "k--"), ("memoriser", "r:")):
            part = refs[refs.arch == name].sort_values("n_train")
            if part[metric].notna().any():
                ax.plot(part.n_train, part[metric], style, linewidth=1, label=f"ref: {name}")
        log_axes(ax, "x")
        ax.set_xlabel("n_train")
        ax.set_ylabel(metric)
    _legend(axes[0][-1], fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(fig, path, ["png"], PLOT_DPI)


def write_plots(
    frame: pd.DataFrame, grid: dict[str, list], out_dir: Path, synthetic: bool
) -> list[Path]:
    """``plot_names(synthetic)`` of one dataset's rows under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in plot_names(synthetic):
        path = out_dir / f"{name}.png"
        if name.endswith("_vs_params"):
            (metric,) = plot_metrics(name)
            _plot_vs_params(frame, metric, grid, path)
        else:
            _plot_vs_n_train(frame, plot_metrics(name), grid, path)
        paths.append(path)
    return paths

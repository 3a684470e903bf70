"""Summary tables and plots from finished cells; retrains nothing.

``summary.csv`` holds one row per cell (its config, status and every headline-NFE metric) and
one row per reference (kind = reference). ``summary.md`` pivots each headline metric: rows
arch x scale, columns n_train, mean ± std over seeds, with the reference rows below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .files import atomic_path, atomic_write
from .study import CELL_LOG_NAME, CELL_PATTERN, HEADLINE_METRICS, PLOTS, cells, parse_cell_dir

DIRECTION = {
    "val_loss_ratio": "lower is better; 1.0 = the v = 0 baseline",
    "mmd2_pca": "lower is better; real_holdout is the floor",
    "precision_pca": "higher is better (k-NN, Naeem et al. 2020)",
    "recall_pca": "higher is better",
    "one_nn_acc_pca": "0.5 is ideal; 1.0 = samples and real data fully separable",
    "fd_pca": "lower is better; a Gaussian fit wins it by construction (it matches the moments)",
    "mode_kl": "lower is better; KL(true weights || sample mode histogram)",
    "modes_covered": "higher is better; out of modes_total",
    "variance_ratio": "1.0 is ideal; > 1 = excess spread / noise",
    "memorised_fraction": "lower is better; the memoriser scores 1.0",
    "nn_train_test_ratio": "1.0 = generalises; near 0 = copies the training set",
}
REFERENCES = ("real_holdout", "gaussian_fit", "memoriser")


def _failure_reason(results: Path, cell: dict[str, Any]) -> str:
    log = results / "logs" / "train" / f"{CELL_LOG_NAME.format(**cell)}.log"
    if not log.exists():
        return "not run"
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "preempted" in line.lower()]
    return (errors or lines or ["empty log"])[-1][:200]


def _cell_row(results: Path, cell: dict[str, Any]) -> dict[str, Any]:
    folder = results / CELL_PATTERN.format(**cell)
    row: dict[str, Any] = {"kind": "model", **cell}
    metrics_file, cell_file = folder / "metrics.json", folder / "cell.json"
    if cell_file.exists():
        info = json.loads(cell_file.read_text())
        row.update(
            n_params=info["n_params"],
            steps=info["steps"],
            train_time_s=info["wall_time_s"],
            steps_per_s=info["steps_per_s"],
            device=info["device"],
        )
    if not metrics_file.exists():
        row.update(status="failed", error=_failure_reason(results, cell))
        return row
    m = json.loads(metrics_file.read_text())
    row.update(
        status="ok",
        val_loss=m["val_loss"],
        val_loss_zero_velocity=m["val_loss_zero_velocity"],
        val_loss_ratio=m["val_loss_ratio"],
        headline_nfe=m["headline_nfe"],
        **m["metrics"],
    )
    return row


def discover_grid(results: Path) -> dict[str, list]:
    """The grid implied by the run folders present (when no config is given)."""
    folders = (p.relative_to(results) for p in results.glob("runs/*/*/*/*") if p.is_dir())
    found = [cell for cell in map(parse_cell_dir, folders) if cell is not None]
    return {
        axis: sorted({cell[key] for cell in found})
        for axis, key in (
            ("archs", "arch"),
            ("scales", "scale"),
            ("n_train", "n_train"),
            ("seeds", "seed"),
        )
    }


def collect(results: str | Path, grid: dict[str, list] | None = None) -> pd.DataFrame:
    """One row per grid cell (failed or missing cells included) and per reference row."""
    results = Path(results)
    grid = grid or discover_grid(results)
    rows = [_cell_row(results, c) for c in cells(grid)]
    for n_train in grid["n_train"]:
        ref_file = results / "references" / f"n{n_train}.json"
        if ref_file.exists():
            for name, metrics in json.loads(ref_file.read_text())["references"].items():
                rows.append(
                    {
                        "kind": "reference",
                        "arch": name,
                        "scale": "",
                        "n_train": n_train,
                        "seed": None,
                        "status": "ok",
                        **metrics,
                    }
                )
    return pd.DataFrame(rows)


def _fmt(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "FAILED"
    mean = values.mean()
    text = f"{mean:.4g}"
    return text if len(values) < 2 else f"{text} ± {values.std():.2g}"


def _params_label(n: float) -> str:
    return "?" if pd.isna(n) else f"{n / 1e6:.2f}M"


def pivot(frame: pd.DataFrame, metric: str, grid: dict[str, list]) -> pd.DataFrame:
    """Rows arch x scale (+ references), columns n_train, cells mean ± std over seeds."""
    models = frame[frame.kind == "model"]
    out = {}
    for arch in grid["archs"]:
        for scale in grid["scales"]:
            part = models[(models.arch == arch) & (models.scale == scale)]
            n_params = part.n_params.max() if "n_params" in part else float("nan")
            label = f"{arch} / {scale} ({_params_label(n_params)})"
            out[label] = {
                n: _fmt(part[part.n_train == n].get(metric, pd.Series(dtype=float)))
                for n in grid["n_train"]
            }
    refs = frame[frame.kind == "reference"]
    for name in REFERENCES:
        part = refs[refs.arch == name]
        if metric in part and part[metric].notna().any():
            out[f"ref: {name}"] = {
                n: _fmt(part[part.n_train == n][metric]) for n in grid["n_train"]
            }
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = [f"n={n}" for n in table.columns]
    return table


def _markdown_table(table: pd.DataFrame, corner: str) -> str:
    head = f"| {corner} | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---:|" * len(table.columns)
    body = [f"| {idx} | " + " | ".join(str(v) for v in row) + " |" for idx, row in table.iterrows()]
    return "\n".join([head, rule, *body])


def summary_markdown(frame: pd.DataFrame, grid: dict[str, list]) -> str:
    models = frame[frame.kind == "model"]
    failed = models[models.status != "ok"]
    parts = [
        "# fmscale summary",
        "",
        f"{len(models)} cells ({len(models) - len(failed)} finished, {len(failed)} failed). "
        "Metrics at the headline NFE, in standardised space; `_pca` = in the real data's top-k PCA "
        "space. Reference rows: `real_holdout` = held-out real data (the floor), `gaussian_fit` = "
        "samples of a Gaussian fitted to the training rows, `memoriser` = the training rows "
        "themselves.",
    ]
    if len(failed):
        parts += [
            "",
            "## Failed cells",
            "",
            "| arch | scale | n_train | seed | reason |",
            "|---|---|---:|---:|---|",
        ]
        parts += [
            f"| {r.arch} | {r.scale} | {r.n_train} | {r.seed} | {r.error} |"
            for r in failed.itertuples()
        ]
    for metric in HEADLINE_METRICS:
        if metric not in frame:
            continue
        parts += [
            "",
            f"## {metric}",
            "",
            f"_{DIRECTION[metric]}_",
            "",
            _markdown_table(pivot(frame, metric, grid), "arch / scale (params)"),
        ]
    return "\n".join(parts) + "\n"


def _log_x(ax) -> None:
    """Log x axis labelled only at powers of ten (minor labels overlap)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plot_vs_params(frame: pd.DataFrame, metric: str, grid: dict[str, list], path: Path) -> None:
    import matplotlib.pyplot as plt

    sizes = grid["n_train"]
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4 * len(sizes), 3.4), sharey=True, squeeze=False
    )
    models = frame[(frame.kind == "model") & (frame.status == "ok")]
    refs = frame[frame.kind == "reference"]
    for ax, n in zip(axes[0], sizes, strict=True):
        for arch in grid["archs"]:
            part = models[(models.arch == arch) & (models.n_train == n)]
            if part.empty or metric not in part:
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
            value = refs[(refs.arch == name) & (refs.n_train == n)].get(metric)
            if value is not None and not value.empty:
                ax.axhline(
                    float(value.iloc[0]),
                    color=style[0],
                    linestyle=style[1:],
                    linewidth=1,
                    label=name,
                )
        _log_x(ax)
        ax.set_title(f"n_train = {n}")
        ax.set_xlabel("parameters")
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _plot_vs_n_train(
    frame: pd.DataFrame, metrics: list[str], grid: dict[str, list], path: Path
) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    models = frame[(frame.kind == "model") & (frame.status == "ok")]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (arch, scale), part in models.groupby(["arch", "scale"]):
            if metric not in part:
                continue
            stats = part.groupby("n_train")[metric].mean()
            ax.plot(stats.index, stats.values, marker="o", label=f"{arch}/{scale}")
        refs = frame[frame.kind == "reference"]
        for name, style in (("real_holdout", "k--"), ("memoriser", "r:")):
            part = refs[refs.arch == name].sort_values("n_train")
            if metric in part and part[metric].notna().any():
                ax.plot(part.n_train, part[metric], style, linewidth=1, label=f"ref: {name}")
        _log_x(ax)
        ax.set_xlabel("n_train")
        ax.set_ylabel(metric)
    axes[0][-1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_plots(frame: pd.DataFrame, grid: dict[str, list], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PLOTS:
        path = out_dir / f"{name}.png"
        if name.endswith("_vs_params"):
            _plot_vs_params(frame, name.removesuffix("_vs_params"), grid, path)
        elif name == "memorisation_vs_n_train":
            _plot_vs_n_train(frame, ["memorised_fraction", "nn_train_test_ratio"], grid, path)
        else:
            _plot_vs_n_train(frame, [name.removesuffix("_vs_n_train")], grid, path)
        paths.append(path)
    return paths


def summarize(results: str | Path, grid: dict[str, list] | None = None) -> pd.DataFrame:
    """Write summary.csv, summary.md and plots/ under ``results``; return the frame."""
    results = Path(results)
    grid = grid or discover_grid(results)
    frame = collect(results, grid)
    atomic_write(results / "summary.csv", frame.to_csv(index=False))
    atomic_write(results / "summary.md", summary_markdown(frame, grid))
    write_plots(frame, grid, results / "plots")
    return frame

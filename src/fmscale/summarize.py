"""Summary tables and plots from finished cells; retrains nothing.

``summary.csv`` holds one row per cell (its config, status and every headline-NFE metric) and
one row per reference (kind = reference). ``summary.md`` pivots each headline metric: rows
arch x scale, columns n_train, mean ± std over seeds, with the reference rows below.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .files import atomic_path, atomic_write
from .refine import refined_cells
from .study import (
    CELL_KEYS,
    CELL_LOG_NAME,
    CELL_PATTERN,
    GRID_AXES,
    HEADLINE_METRICS,
    REFERENCE_PATTERN,
    REFERENCES,
    SYNTHETIC_ONLY,
    TRAJECTORY_FIELDS,
    cell_digest,
    cells,
    check_layout,
    parse_cell_dir,
    plot_names,
)

log = logging.getLogger(__name__)

DIRECTION = {
    "val_loss_ratio": "lower is better; 1.0 = the v = 0 baseline",
    "gap_ratio": "val_loss / train_loss; 1.0 = generalises, > 1 = fits its training rows better",
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
COLUMNS = (
    "kind",
    "dataset",
    "arch",
    "scale",
    "n_train",
    "seed",
    "n_params",
    "steps",
    "epochs",
    "samples_seen",
    "train_flops",
    "sampling_flops_per_sample_per_nfe",
    "train_time_s",
    "steps_per_s",
    "device",
    "mamba_kernel",
    "status",
    "error",
    "val_loss",
    "val_loss_zero_velocity",
    "val_loss_ratio",
    "train_loss",
    "train_loss_ratio",
    "gap",
    "gap_se",
    "gap_ratio",
    "headline_nfe",
    "n_samples",
)
"""Leading columns of summary.csv; the metrics follow, every one of HEADLINE_METRICS always."""
TRAIN_FIELDS = {
    "n_params": "n_params",
    "steps": "steps",
    "wall_time_s": "train_time_s",
    "steps_per_s": "steps_per_s",
    "device": "device",
}
"""cell.json key -> summary column."""
MAMBA_KERNEL_KEYS = ("mamba_kernel", "mamba_path")
"""cell.json keys naming the kernel Mamba ran (``fused`` / ``scan``; null without Mamba):
``mamba_path`` in cells trained before the name changed."""
BUDGET_FIELDS = ("epochs", "samples_seen", "train_flops", "sampling_flops_per_sample_per_nfe")
"""cell.json keys of the budget and compute (absent from cells trained before them)."""
METRIC_FIELDS = ("val_loss", "val_loss_zero_velocity", "val_loss_ratio", "headline_nfe", "metrics")
GAP_FIELDS = ("train_loss", "train_loss_ratio", "gap", "gap_se", "gap_ratio")
"""metrics.json keys of the generalisation gap (absent from cells evaluated before it)."""
SAMPLES_FIELD = "n_samples"
"""metrics.json key: the samples behind every sample metric (the analysis's binomial errors)."""


class ResultsError(ValueError):
    """A results folder or file that cannot be read; the message names it."""


def _read_json(path: Path) -> tuple[dict[str, Any], bytes] | None:
    """The JSON object in ``path`` and its bytes; None if the file is missing."""
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: unreadable (not a JSON object)")
    return data, raw


def _require(data: dict[str, Any], keys: Iterable[str], path: Path) -> None:
    """ResultsError naming ``path`` and the first of ``keys`` that ``data`` lacks."""
    missing = [key for key in keys if key not in data]
    if missing:
        raise ResultsError(f"{path}: unreadable (no {missing[0]!r})")


def _last_error_line(log: Path) -> str:
    """The last line of ``log`` naming an error (else its last line); "not run" if absent."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return "not run"
    except OSError as exc:
        return f"{log}: unreadable ({exc})"
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "preempted" in line.lower()]
    return (errors or lines or ["empty log"])[-1][:200]


def _failure_reason(results: Path, cell: dict[str, Any], rule: str) -> str:
    """The last error line of the cell's ``rule`` (train or evaluate) job log."""
    return _last_error_line(results / "logs" / rule / f"{CELL_LOG_NAME.format(**cell)}.log")


def _status(
    results: Path, cell: dict[str, Any], digest: str | None, metrics: dict[str, Any] | None
) -> tuple[str, str | None]:
    """(status, reason) of a cell from its cell.json digest (None: no cell.json) and metrics.

    Stale: metrics.json scored another training run than the cell.json present (its
    ``cell_digest`` differs), or cell.json is gone (deleted by a rerun whose training then
    failed). A metrics.json without ``cell_digest`` (written before it existed) counts as
    current when cell.json exists.
    """
    if digest is None:
        reason = _failure_reason(results, cell, "train")
        if metrics is None:
            return "failed", reason
        return (
            "stale",
            f"cell.json missing: metrics.json is from a deleted run (train log: {reason})",
        )
    if metrics is None:
        return "failed", _failure_reason(results, cell, "evaluate")
    if metrics.get("cell_digest", digest) != digest:
        reason = _failure_reason(results, cell, "evaluate")
        return "stale", f"metrics.json scored another run than cell.json (evaluate log: {reason})"
    return "ok", None


def _train_columns(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The cell.json columns of a run folder and the file's sha256 (what evaluate records).

    ({}, None) if there is no cell.json.
    """
    path = folder / "cell.json"
    found = _read_json(path)
    if found is None:
        return {}, None
    info, raw = found
    _require(info, TRAIN_FIELDS, path)
    columns = {column: info[key] for key, column in TRAIN_FIELDS.items()}
    columns |= {key: info[key] for key in BUDGET_FIELDS if key in info}
    columns["mamba_kernel"] = next((info[k] for k in MAMBA_KERNEL_KEYS if k in info), None)
    return columns, cell_digest(raw)


def _metrics(folder: Path) -> dict[str, Any] | None:
    """The run folder's metrics.json, checked for the keys the summary reads (None if missing)."""
    path = folder / "metrics.json"
    found = _read_json(path)
    if found is None:
        return None
    metrics = found[0]
    _require(metrics, METRIC_FIELDS, path)
    if not isinstance(metrics["metrics"], dict):
        raise ResultsError(f"{path}: unreadable ('metrics' is not an object)")
    return metrics


def _metric_columns(m: dict[str, Any]) -> dict[str, Any]:
    """The summary columns of a checked metrics.json: losses, headline NFE, its metrics."""
    losses = {key: m[key] for key in (*METRIC_FIELDS, *GAP_FIELDS, SAMPLES_FIELD) if key in m}
    return {key: value for key, value in losses.items() if key != "metrics"} | m["metrics"]


def _cell_row(results: Path, cell: dict[str, Any]) -> dict[str, Any]:
    """The summary row of one cell; an unreadable file fails the cell, naming the file."""
    folder = results / CELL_PATTERN.format(**cell)
    row: dict[str, Any] = {"kind": "model", **cell}
    try:
        train, digest = _train_columns(folder)
        row.update(train)
        metrics = _metrics(folder)
    except ResultsError as exc:
        return {**row, "status": "failed", "error": str(exc)}
    status, reason = _status(results, cell, digest, metrics)
    row.update(status=status, error=reason)
    if status == "ok":
        row.update(_metric_columns(metrics))
    return row


def _references(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The reference rows of a ``references/n<N>.json`` (name -> metrics) and the columns
    every row shares (samples behind them, headline NFE; absent from older files)."""
    found = _read_json(path)
    if found is None:
        raise ResultsError(f"{path}: missing")
    refs = found[0].get("references")
    if not isinstance(refs, dict) or not all(isinstance(m, dict) for m in refs.values()):
        raise ResultsError(f"{path}: unreadable (no 'references' object of metrics)")
    shared = {key: found[0].get(key) for key in (SAMPLES_FIELD, "headline_nfe")}
    return refs, shared


def _reference_rows(results: Path, dataset: str, n_train: int) -> list[dict[str, Any]]:
    """The reference rows of a dataset for ``n_train``; status "missing" (and why) if their
    file is bad."""
    base = {"kind": "reference", "dataset": dataset, "scale": "", "n_train": n_train, "seed": None}
    try:
        path = results / REFERENCE_PATTERN.format(dataset=dataset, n_train=n_train)
        refs, shared = _references(path)
    except ResultsError as exc:
        return [
            {**base, "arch": name, "status": "missing", "error": str(exc)} for name in REFERENCES
        ]
    base |= shared
    return [_reference_row(base, name, metrics) for name, metrics in refs.items()]


def _reference_row(base: dict[str, Any], name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """One reference row: its metrics, or status "skipped" and the reason evaluate gave."""
    if "skipped" in metrics:
        return {**base, "arch": name, "status": "skipped", "error": metrics["skipped"]}
    return {**base, "arch": name, "status": "ok", **metrics}


def _cell_key(cell: dict[str, Any]) -> tuple:
    return tuple(cell[k] for k in CELL_KEYS)


def discover_grids(results: Path) -> dict[str, dict[str, list]]:
    """Per dataset, the grid implied by its run folders present (those of refined cells left
    out: they are listed on their own), datasets in name order."""
    folders = (p.relative_to(results) for p in results.glob("runs/*/*/*/*/*") if p.is_dir())
    found = [cell for cell in map(parse_cell_dir, folders) if cell is not None]
    refined = {
        _cell_key(c) for d in {c["dataset"] for c in found} for c in refined_cells(results, d)
    }
    found = [c for c in found if _cell_key(c) not in refined]
    axes = (("archs", "arch"), ("scales", "scale"), ("n_train", "n_train"), ("seeds", "seed"))
    return {
        dataset: {
            "datasets": [dataset],
            **{
                axis: sorted({c[key] for c in found if c["dataset"] == dataset})
                for axis, key in axes
            },
        }
        for dataset in sorted({c["dataset"] for c in found})
    }


def study_grids(results: Path, grid: dict[str, list] | None) -> dict[str, dict[str, list]]:
    """The grids to summarise: the study's own (``grid``: its cells listed whether finished
    or not) and every other dataset's cells found in ``results`` (finished or failed there)."""
    grids = discover_grids(results)
    if grid is None:
        return grids
    own = {dataset: {**grid, "datasets": [dataset]} for dataset in grid["datasets"]}
    return own | {d: g for d, g in grids.items() if d not in own}


def study_cells(results: Path, dataset: str, grid: dict[str, list]) -> list[dict[str, Any]]:
    """The cells summarised for one dataset: its grid's, then those the refinement rounds
    added (``refine.refined_cells``, whether finished or not)."""
    listed = cells(grid)
    keys = {_cell_key(c) for c in listed}
    return listed + [c for c in refined_cells(results, dataset) if _cell_key(c) not in keys]


def _results_folder(results: str | Path) -> Path:
    """``results`` as a Path; ResultsError if there is no such folder (nothing to summarise)."""
    results = Path(results)
    if not results.is_dir():
        raise ResultsError(f"{results}: no such results folder; run the study first")
    check_layout(results)
    return results


INTEGER_COLUMNS = (
    "seed",
    "n_params",
    "steps",
    "samples_seen",
    "train_flops",
    "sampling_flops_per_sample_per_nfe",
    "headline_nfe",
    "n_samples",
)
"""Counts, printed as integers (a row without one, e.g. a reference row's seed, leaves it empty)."""


def _frame(rows: list[dict[str, Any]], synthetic: bool) -> pd.DataFrame:
    """The rows with every column tables and plots read; counts as integers. Unless a dataset
    is ``synthetic``, the synthetic-only metrics are left out where no row has them (real data:
    they need the generating distribution)."""
    frame = pd.DataFrame(rows)
    columns = dict.fromkeys([*COLUMNS, *frame.columns, *HEADLINE_METRICS])
    frame = frame.reindex(columns=list(columns))
    if not synthetic:
        frame = frame.drop(
            columns=[c for c in SYNTHETIC_ONLY if c in frame.columns and _empty(frame, c)]
        )
    return frame.astype({c: "Int64" for c in INTEGER_COLUMNS if c in frame.columns})


def collect(
    results: str | Path, grid: dict[str, list] | None = None, synthetic: bool = False
) -> pd.DataFrame:
    """One row per cell of ``study_grids`` and of the refinement rounds (failed, stale or
    missing cells included) and per reference row at each of their n_train, every dataset's;
    ``synthetic``: the study's data is (keep its columns)."""
    results = _results_folder(results)
    rows = []
    for dataset, part in study_grids(results, grid).items():
        listed = study_cells(results, dataset, part)
        rows += [_cell_row(results, c) for c in listed]
        refined = sorted({c["n_train"] for c in listed} - set(part["n_train"]))
        for n_train in [*part["n_train"], *refined]:
            rows += _reference_rows(results, dataset, n_train)
    return _frame(rows, synthetic)


def cell_rows(results: str | Path, listed: list[dict[str, Any]]) -> pd.DataFrame:
    """The summary rows of the cells ``listed`` (status ok, failed or stale, with their
    metrics), as ``collect`` makes them: what a refinement round reads."""
    results = _results_folder(results)
    return _frame([_cell_row(results, c) for c in listed], synthetic=True)


def _fmt(values: pd.Series, empty: str) -> str:
    """Mean ± std of the values present; ``empty`` when there is none."""
    values = values.dropna()
    if values.empty:
        return empty
    mean = values.mean()
    text = f"{mean:.4g}"
    return text if len(values) < 2 else f"{text} ± {values.std():.2g}"


def _params_label(n: float) -> str:
    return "?" if pd.isna(n) else f"{n / 1e6:.2f}M"


def _model_entry(part: pd.DataFrame, metric: str) -> str:
    """One table cell from the model rows of one arch, scale and n_train; empty where the
    study has no such cell (an n_train refinement added for other archs or scales)."""
    if part.empty:
        return ""
    return _fmt(part[metric], "STALE" if (part.status == "stale").any() else "FAILED")


def pivot(frame: pd.DataFrame, metric: str, grid: dict[str, list]) -> pd.DataFrame:
    """Rows arch x scale (+ references), columns n_train, cells mean ± std over seeds."""
    models = frame[frame.kind == "model"]
    out = {}
    for arch in grid["archs"]:
        for scale in grid["scales"]:
            part = models[(models.arch == arch) & (models.scale == scale)]
            label = f"{arch} / {scale} ({_params_label(part.n_params.max())})"
            out[label] = {n: _model_entry(part[part.n_train == n], metric) for n in grid["n_train"]}
    refs = frame[frame.kind == "reference"]
    for name in REFERENCES:
        part = refs[refs.arch == name]
        if part[metric].notna().any():
            out[f"ref: {name}"] = {
                n: _fmt(part[part.n_train == n][metric], _absent(part[part.n_train == n]))
                for n in grid["n_train"]
            }
    table = pd.DataFrame.from_dict(out, orient="index")
    table.columns = [f"n={n}" for n in table.columns]
    return table


def _absent(rows: pd.DataFrame) -> str:
    """What a reference table cell without a value says: skipped (by design) or missing."""
    return "skipped" if (rows.status == "skipped").any() else "missing"


def _markdown_table(table: pd.DataFrame, corner: str) -> str:
    head = f"| {corner} | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---:|" * len(table.columns)
    body = [f"| {idx} | " + " | ".join(str(v) for v in row) + " |" for idx, row in table.iterrows()]
    return "\n".join([head, rule, *body])


def _md_cell(text: Any) -> str:
    """``text`` as a Markdown table cell."""
    return str(text).replace("|", "\\|")


def _cell_list(listed: pd.DataFrame, title: str, note: str) -> list[str]:
    """A section listing model rows (arch, scale, n_train, seed, reason); none if empty."""
    if listed.empty:
        return []
    head = ["", f"### {title}", "", note, "", "| arch | scale | n_train | seed | reason |"]
    rows = [
        f"| {r.arch} | {r.scale} | {r.n_train} | {r.seed} | {_md_cell(r.error)} |"
        for r in listed.itertuples()
    ]
    return [*head, "|---|---|---:|---:|---|", *rows]


def _missing_references(refs: pd.DataFrame) -> list[str]:
    """A section naming each n_train whose reference rows are missing; none if all are there."""
    missing = refs[refs.status == "missing"].drop_duplicates("n_train")
    if missing.empty:
        return []
    rows = [f"| {r.n_train} | {_md_cell(r.error)} |" for r in missing.itertuples()]
    note = "The tables show `missing` for them; rerun Snakemake to score them."
    return [
        "",
        "### Missing reference rows",
        "",
        note,
        "",
        "| n_train | reason |",
        "|---:|---|",
        *rows,
    ]


def _skipped_references(refs: pd.DataFrame) -> list[str]:
    """A section naming the reference rows skipped by design (cost caps), with the reason."""
    skipped = refs[refs.status == "skipped"]
    if skipped.empty:
        return []
    rows = [f"| {r.arch} | {r.n_train} | {_md_cell(r.error)} |" for r in skipped.itertuples()]
    head = ["", "### Skipped reference rows", "", "| reference | n_train | reason |"]
    return [*head, "|---|---:|---|", *rows]


def summary_markdown(frame: pd.DataFrame, grids: dict[str, dict[str, list]]) -> str:
    """summary.md: counts, then per dataset its failed and stale cells, missing references and
    one table per metric."""
    models = frame[frame.kind == "model"]
    counts = models.status.value_counts()
    parts = [
        "# fmscale summary",
        "",
        f"{len(models)} cells ({counts.get('ok', 0)} finished, {counts.get('failed', 0)} failed, "
        f"{counts.get('stale', 0)} stale) on {len(grids)} dataset(s): "
        f"{', '.join(f'`{d}`' for d in grids)}. "
        "Metrics at the headline NFE, in standardised space; `_pca` = in the real data's top-k PCA "
        "space. Reference rows: `real_holdout` = held-out real data (the floor), `gaussian_fit` = "
        "samples of a Gaussian fitted to the training rows, `memoriser` = the training rows "
        "themselves, `empirical_flow` = the exact velocity field of the training rows, sampled "
        "like a model, `exact_field` (synthetic data) = the generating mixture's exact field: its "
        "val_loss_ratio is the irreducible loss, and its samples show what the solver at the "
        "headline NFE loses.",
    ]
    for dataset, grid in grids.items():
        parts += _dataset_markdown(frame[frame.dataset == dataset], dataset, grid)
    return "\n".join(parts) + "\n"


def _refined_sizes(models: pd.DataFrame, grid: dict[str, list]) -> list[str]:
    """A section naming the n_train values refinement added per arch x scale; none if none."""
    added = models[~models.n_train.isin(grid["n_train"])]
    if added.empty:
        return []
    rows = [
        f"| {arch} | {scale} | {', '.join(str(n) for n in sorted(part.n_train.unique()))} |"
        for (arch, scale), part in added.groupby(["arch", "scale"], sort=False)
    ]
    note = (
        "n_train values the refinement rounds added around the memorisation crossover "
        "(`refine/<dataset>/round<r>.json`, docs/refine.md); the tables leave their columns "
        "empty for the other archs and scales."
    )
    head = ["", "### Refined n_train", "", note, "", "| arch | scale | n_train added |"]
    return [*head, "|---|---|---|", *rows]


def _dataset_markdown(frame: pd.DataFrame, dataset: str, grid: dict[str, list]) -> list[str]:
    """One dataset's part of summary.md."""
    models = frame[frame.kind == "model"]
    parts = ["", f"## Dataset `{dataset}`", ""]
    parts += _cell_list(
        models[models.status == "failed"],
        "Failed cells",
        "No metrics: the reason is the last error line of the train or evaluate log, or the file "
        "that could not be read.",
    )
    parts += _cell_list(
        models[models.status == "stale"],
        "Stale cells",
        "Their metrics.json scored a training run that is gone (cell.json deleted or replaced "
        "since), so the tables leave it out (`STALE`); rerun Snakemake to retrain or re-evaluate.",
    )
    parts += _missing_references(frame[frame.kind == "reference"])
    parts += _skipped_references(frame[frame.kind == "reference"])
    parts += _refined_sizes(models, grid)
    if not models.n_train.isin(grid["n_train"]).all():  # refined columns, in order
        grid = {**grid, "n_train": sorted({*grid["n_train"], *map(int, models.n_train)})}
    unscored = [m for m in HEADLINE_METRICS if m in SYNTHETIC_ONLY and _empty(frame, m)]
    if unscored and len(models):
        parts += [
            "",
            f"{', '.join(unscored)}: not scored on `{dataset}`, which is not synthetic (they "
            "need the generating distribution).",
        ]
    for metric in HEADLINE_METRICS:
        if _empty(frame, metric):
            continue
        parts += [
            "",
            f"### {metric}",
            "",
            f"_{DIRECTION[metric]}_",
            "",
            _markdown_table(pivot(frame, metric, grid), "arch / scale (params)"),
        ]
    return parts


def _empty(frame: pd.DataFrame, metric: str) -> bool:
    return metric not in frame.columns or not frame[metric].notna().any()


def log_axes(ax, *names: str) -> None:
    """Log scale on the named axes ("x", "y"), labelled only at powers of ten (minor labels
    overlap)."""
    from matplotlib.ticker import NullFormatter

    for name in names:
        getattr(ax, f"set_{name}scale")("log")
        getattr(ax, f"{name}axis").set_minor_formatter(NullFormatter())


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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


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
            _plot_vs_params(frame, name.removesuffix("_vs_params"), grid, path)
        elif name == "memorisation_vs_n_train":
            _plot_vs_n_train(frame, ["memorised_fraction", "nn_train_test_ratio"], grid, path)
        else:
            _plot_vs_n_train(frame, [name.removesuffix("_vs_n_train")], grid, path)
        paths.append(path)
    return paths


def trajectories(results: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Every finished cell's trajectory.csv rows, keyed by the cell (one table to analyse).

    Cells without one (trained before trajectories, or with ``trajectory_points: 0``) are left
    out; an unreadable one is left out with a warning in the log.
    """
    keys = ["dataset", "arch", "scale", "n_train", "seed", "n_params"]
    parts = []
    for cell in frame[(frame.kind == "model") & (frame.status == "ok")].itertuples():
        path = results / CELL_PATTERN.format(**{k: getattr(cell, k) for k in keys[:5]})
        path = path / "trajectory.csv"
        if not path.exists():
            continue
        try:
            part = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); left out of trajectories.csv", path, exc)
            continue
        parts.append(part.assign(**{k: getattr(cell, k) for k in keys}))
    if not parts:
        return pd.DataFrame(columns=[*keys, *TRAJECTORY_FIELDS])
    table = pd.concat(parts, ignore_index=True)
    return table[[*keys, *[c for c in table.columns if c not in keys]]]


def summarize(
    results: str | Path, grid: dict[str, list] | None = None, synthetic: bool | None = None
) -> pd.DataFrame:
    """Write summary.csv, trajectories.csv, summary.md and plots/ under ``results``; return
    the frame.

    ``grid``: the study's (``study.study_grid``), whose cells are listed finished or not; cells
    of other datasets in ``results`` are listed too. The plots are of the study's dataset (the
    only one found when ``grid`` is None); ``synthetic`` (default: whether its rows have the
    synthetic-only metrics) says whether the synthetic-only plots are drawn. Failed, stale and
    missing cells and reference rows are listed, never fatal; only a missing ``results`` folder
    raises (ResultsError), or several datasets without a ``grid`` to say which to plot.
    """
    results = _results_folder(results)
    grids = study_grids(results, grid)
    if grid is not None:
        dataset = grid["datasets"][0]
    elif len(grids) > 1:
        raise ResultsError(
            f"{results}: cells of {len(grids)} datasets ({', '.join(grids)}); give the study's "
            "config (--config) to say whose plots to draw"
        )
    else:
        dataset = next(iter(grids), None)
    frame = collect(results, grid, bool(synthetic))
    own = frame[frame.dataset == dataset]
    if synthetic is None:
        synthetic = not _empty(own, "mode_kl")
    empty_grid = {axis: [] for axis in GRID_AXES}
    atomic_write(results / "summary.csv", frame.to_csv(index=False))
    atomic_write(results / "trajectories.csv", trajectories(results, frame).to_csv(index=False))
    atomic_write(results / "summary.md", summary_markdown(frame, grids))
    write_plots(own, grids.get(dataset, empty_grid), results / "plots", synthetic)
    return frame

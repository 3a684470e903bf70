"""summary.md: per dataset its failed, stale and refined cells, its reference rows, and one
table per headline metric (rows arch x scale, columns n_train, mean ± std over seeds)."""

from __future__ import annotations

import pandas as pd

from ..catalogue import DIRECTION, HEADLINE_METRICS, REFERENCES, SYNTHETIC_ONLY
from ..render import markdown_table, md_cell


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
    rows = ([idx, *row] for idx, row in table.iterrows())
    align = "l" + "r" * len(table.columns)
    return "\n".join(markdown_table([corner, *table.columns], rows, align))


def _cell_list(listed: pd.DataFrame, title: str, note: str) -> list[str]:
    """A section listing model rows (arch, scale, n_train, seed, reason); none if empty."""
    if listed.empty:
        return []
    head = ["", f"### {title}", "", note, "", "| arch | scale | n_train | seed | reason |"]
    rows = [
        f"| {r.arch} | {r.scale} | {r.n_train} | {r.seed} | {md_cell(r.error)} |"
        for r in listed.itertuples()
    ]
    return [*head, "|---|---|---:|---:|---|", *rows]


def _missing_references(refs: pd.DataFrame) -> list[str]:
    """A section naming each n_train whose reference rows are missing; none if all are there."""
    missing = refs[refs.status == "missing"].drop_duplicates("n_train")
    if missing.empty:
        return []
    rows = [f"| {r.n_train} | {md_cell(r.error)} |" for r in missing.itertuples()]
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
    rows = [f"| {r.arch} | {r.n_train} | {md_cell(r.error)} |" for r in skipped.itertuples()]
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
    unscored = [m for m in HEADLINE_METRICS if m in SYNTHETIC_ONLY and is_empty(frame, m)]
    if unscored and len(models):
        parts += [
            "",
            f"{', '.join(unscored)}: not scored on `{dataset}`, which is not synthetic (they "
            "need the generating distribution).",
        ]
    for metric in HEADLINE_METRICS:
        if is_empty(frame, metric):
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


def is_empty(frame: pd.DataFrame, metric: str) -> bool:
    """Whether no row has a value of ``metric`` (or the column is absent)."""
    return metric not in frame.columns or not frame[metric].notna().any()

"""Does the validation loss fall with scale at fixed steps and batch? Seed-paired, with CIs.

    python benchmarks/capacity_sweep.py [--table cpu] [--n 4096] [--steps 1200] [--batch 64]
        [--seeds 0,1,2] [--archs mlp,dit,unet,mamba] [--latent-dim 16] [--name capacity_sweep]

Every arch x scale of a scaling table is trained on the first ``--n`` rows of the synthetic
data for ``--steps`` of batch ``--batch`` (the same budget for every cell), one torch thread,
under ``--parameterisation`` (default: the study's), and scored like a study cell (EMA weights,
``--samples`` samples at NFE ``--nfe``, midpoint). Cells run interleaved (seed, then arch, then
scale), so a noisy machine hits the scales of one arch alike. Writes ``<--name>.csv`` / ``.md``
under ``--out``: each cell, then per arch x scale the mean val_loss_ratio over seeds with its
95% Student-t interval, and each step up in scale (small - tiny, base - small) as a difference
paired by seed with its 95% interval: "falls" when the interval lies below 0. The floor is the
exact field's val_loss_ratio (no model can beat it).

    python benchmarks/capacity_sweep.py --summary docs/cpu_validation/summary.csv --n 4096
    python benchmarks/capacity_sweep.py --summary benchmarks/results/capacity_sweep_b256.csv \
        benchmarks/results/capacity_sweep_b256_mamba.csv

reads the cells of study summary.csv files (at n_train = ``--n``) or of earlier sweeps' CSVs
(each at one n_train) instead, pooled, and prints the same by-scale table (no training).
``--baseline`` (files read the same way) adds, per arch x scale, the cells' difference from
the baseline's (say, another parameterisation at the same budget), paired by seed, with its CI.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from _cells import add_cell_arguments, budget, synthetic_data
from _common import RESULTS_DIR, comma_list, machine_lines, markdown_table, write_report

from fmscale.analysis.interaction import (
    CAPACITY_METRIC,
    capacity_at_largest_n,
    cell_estimate,
    difference,
)
from fmscale.config import EvalConfig
from fmscale.evaluate import evaluate_cell
from fmscale.models.scaling import load_table
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec

CELL_COLUMNS = {
    "seed": ("seed", "{}"),
    "arch": ("arch", "{}"),
    "scale": ("scale", "{}"),
    "params": ("n_params", "{:,}"),
    "val_loss_ratio": ("val_loss_ratio", "{:.4f}"),
    "variance_ratio": ("variance_ratio", "{:.3f}"),
    "precision_pca": ("precision_pca", "{:.3f}"),
    "mode_kl": ("mode_kl", "{:.3f}"),
    "modes": ("modes_covered", "{}"),
    "train s": ("train_s", "{:.1f}"),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default="cpu", help="a scaling table: packaged name or path")
    p.add_argument("--archs", type=comma_list(str), default=None, help="default: the table's archs")
    p.add_argument("--seeds", type=comma_list(int), default=[0, 1, 2])
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--nfe", type=int, default=8)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--name", default="capacity_sweep", help="file stem of the report")
    p.add_argument(
        "--summary", type=Path, nargs="+", help="summary.csv or sweep CSVs: tabulate, no training"
    )
    p.add_argument(
        "--baseline", type=Path, nargs="+", help="with --summary: paired differences from these"
    )
    add_cell_arguments(p)
    return p.parse_args()


def _text(entry: dict) -> str:
    """``mean [low, high]`` of a cell or step entry (the mean alone without a CI)."""
    if entry["ci"] is None:
        return f"{entry['estimate']:.4f}"
    low, high = entry["ci"]
    return f"{entry['estimate']:.4f} [{low:.4f}, {high:.4f}]"


def _verdict(step: dict, below: str = "falls", above: str = "rises") -> str:
    """How a difference's CI lies against 0: ``below``, ``above``, not resolved, or nothing."""
    if step["ci"] is None:
        return ""
    if not step["resolved"]:
        return " not resolved"
    return f" {below}" if step["estimate"] < 0 else f" {above}"


def scale_summary(rows: list[dict], scales: list[str]) -> str:
    """Per arch: mean val_loss_ratio at each scale and each step's seed-paired difference,
    as the analysis reads them (``interaction.cell_estimate``, ``capacity_at_largest_n``)."""
    frame = pd.DataFrame(rows)
    n_train = int(frame.n_train.iloc[0])  # a sweep, or a summary read at one n_train
    found = capacity_at_largest_n(frame, scales, n_train)["steps"]
    pairs = list(itertools.pairwise(scales))
    head = ["arch", *scales, *(f"{b} - {a}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arch, part in frame.groupby("arch", sort=False):
        cells = [
            _text(cell_estimate(part[part.scale == scale], CAPACITY_METRIC, 0))
            if scale in set(part.scale)
            else ""
            for scale in scales
        ]
        steps = {(step["b"], step["a"]): step for step in found[arch]}
        cells += [
            _text(steps[pair]) + _verdict(steps[pair]) if pair in steps else "" for pair in pairs
        ]
        lines.append("| " + " | ".join([arch, *cells]) + " |")
    return "\n".join(lines) + "\n"


def baseline_differences(rows: list[dict], baseline: list[dict], scales: list[str]) -> str:
    """Per arch x scale: val_loss_ratio of ``rows`` minus ``baseline``'s, paired by seed."""
    frame, base = pd.DataFrame(rows), pd.DataFrame(baseline)
    lines = ["| arch | scale | seeds | difference [95% CI] |", "|---|---|---:|---|"]
    for arch in frame.arch.unique():
        for scale in scales:
            pick = (frame.arch == arch) & (frame.scale == scale)
            base_pick = (base.arch == arch) & (base.scale == scale)
            step = difference(frame[pick], base[base_pick], CAPACITY_METRIC, 0)
            if step["pairs"]:
                verdict = _verdict(step, below="lower", above="higher")
                lines.append(f"| {arch} | {scale} | {step['pairs']} | {_text(step)}{verdict} |")
    return "\n".join(lines) + "\n"


def pooled_rows(paths: list[Path], n_train: int, flag: str) -> list[dict]:
    """The cells of ``paths`` (``summary_rows``), refusing a cell that appears twice."""
    rows = [row for path in paths for row in summary_rows(path, n_train)]
    cells = [(r["arch"], r["scale"], r["seed"]) for r in rows]
    repeated = sorted({c for c in cells if cells.count(c) > 1})
    if repeated:
        raise SystemExit(
            f"{flag}: cells {repeated[:3]} appear more than once; pool files of one "
            "budget with distinct seeds"
        )
    return rows


def summary_rows(path: Path, n_train: int) -> list[dict]:
    """The model cells of a study's summary.csv at ``n_train`` (reference rows have no scale),
    or every cell of a sweep's CSV (one n_train; older sweeps have no n_train column)."""
    with path.open(newline="") as f:
        return [
            {
                "arch": r["arch"],
                "scale": r["scale"],
                "n_train": n_train,
                "seed": int(r["seed"]),
                "val_loss_ratio": float(r["val_loss_ratio"]),
            }
            for r in csv.DictReader(f)
            if r["scale"] and int(r.get("n_train") or n_train) == n_train and r["val_loss_ratio"]
        ]


def main() -> None:
    args = parse_args()
    if args.baseline and not args.summary:
        raise SystemExit("--baseline compares sweeps already run: give --summary too")
    if args.summary:
        rows = pooled_rows(args.summary, args.n, "--summary")
        scales = list(load_table(args.table).scales)
        names = ", ".join(map(str, args.summary))
        print(f"{names}: n_train {args.n}, seeds {sorted({r['seed'] for r in rows})}")
        print(scale_summary(rows, scales))
        if args.baseline:
            baseline = pooled_rows(args.baseline, args.n, "--baseline")
            print(f"minus {', '.join(map(str, args.baseline))}, paired by seed:")
            print(baseline_differences(rows, baseline, scales))
        return
    torch.set_num_threads(1)
    table = load_table(args.table)
    archs = args.archs or list(table.archs)
    data, floor = synthetic_data(args.n, args.n_modes, args.latent_dim)
    eval_cfg = EvalConfig(nfe=(args.nfe,), n_samples=args.samples)
    train = budget(args, trajectory_points=0)
    lines = [
        *machine_lines(torch.device("cpu")),
        f"table {args.table}, n_train {args.n}, {args.steps} steps of batch {args.batch}, "
        f"lr {args.lr}, parameterisation {train.parameterisation}, seeds {args.seeds}",
        f"data: synthetic D = {data.dim}, {args.n_modes} modes on a {args.latent_dim}-dim "
        f"latent; floor (the exact field's val_loss_ratio) {floor:.4f}",
        f"scoring: EMA weights, {args.samples} samples at NFE {args.nfe} (midpoint)",
    ]
    print("\n".join(lines), flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arch in archs:
                for scale in table.scales:
                    run = Path(tmp) / f"{arch}_{scale}_{seed}"
                    start = time.perf_counter()
                    spec = CellSpec(arch, scale, args.n, seed, args.table)
                    cell = train_cell(spec, data, train, run, None, False)
                    train_s = time.perf_counter() - start
                    result = evaluate_cell(run, data, eval_cfg, "cpu")
                    metrics = result["metrics"]
                    row = {
                        "seed": seed,
                        "arch": arch,
                        "scale": scale,
                        "n_train": args.n,
                        "n_params": cell["n_params"],
                        "val_loss_ratio": result["val_loss_ratio"],
                        **{k: metrics[k] for k in ("variance_ratio", "precision_pca", "mode_kl")},
                        "modes_covered": f"{metrics['modes_covered']}/{metrics['modes_total']}",
                        "train_s": train_s,
                    }
                    rows.append(row)
                    print(markdown_table([row], CELL_COLUMNS).splitlines()[-1], flush=True)
                    summary = scale_summary(rows, list(table.scales))
                    table_md = (
                        "## By scale (mean over seeds [95% CI]; steps paired by seed)\n\n"
                        + summary
                        + "\n## Cells\n\n"
                        + markdown_table(rows, CELL_COLUMNS)
                    )
                    write_report(
                        args.out / args.name, "Capacity at a fixed budget", lines, table_md, rows
                    )
    print("\n" + summary, flush=True)


if __name__ == "__main__":
    main()

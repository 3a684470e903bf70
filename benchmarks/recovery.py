"""Do the analysis's 95% intervals cover the truth? Parameter recovery on the committed grids.

For each grid (the CPU validation study's: 3 scales x 5 n_train x 3 seeds; the default
study's: 3 scales x 3 n_train x 1 seed), ``--simulations`` studies are simulated from known
truths (``fmscale.recovery``: the law, a crossover with k = 1, the capacity step) with the seed
noise measured on the CPU validation study, and analysed with ``--resamples`` bootstrap
resamples. Per quantity and parameter: how many fits were ``ok``, the coverage of their CIs
(target 0.90-0.98), and the median relative error. Writes ``recovery.csv`` / ``.md`` and
``recovery.{png,pdf,svg}`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from _common import RESULTS_DIR, markdown_table, run_lines, write_report

from fmscale.analysis.recovery import grid_of, recover, summarise

ROOT = Path(__file__).resolve().parent.parent
STUDIES = {
    "cpu_validation": ROOT / "docs/cpu_validation/summary.csv",
    "default_study": ROOT / "docs/default_study/summary.csv",
}
TARGET = (0.90, 0.98)
COLUMNS = {
    "grid": ("grid", "{}"),
    "quantity": ("quantity", "{}"),
    "parameter": ("parameter", "{}"),
    "simulations": ("simulations", "{}"),
    "ok": ("ok", "{}"),
    "coverage": ("coverage", "{:.3f}"),
    "± (95%)": ("coverage_band", "{:.3f}"),
    "in 0.90-0.98": ("in_target", "{}"),
    "median rel. error": ("median_relative_error", "{:+.3f}"),
}


def figure(rows: pd.DataFrame, stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = rows[rows.ok > 0].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(shown) + 1.2))
    y = range(len(shown))
    ax.errorbar(shown.coverage, y, xerr=shown.coverage_band, fmt="o", ms=3, capsize=2)
    ax.axvspan(*TARGET, color="0.85", label="target 0.90-0.98")
    ax.axvline(0.95, color="k", lw=0.8)
    ax.set_yticks(list(y), [f"{r.grid}: {r.quantity} {r.parameter}" for r in shown.itertuples()])
    ax.tick_params(axis="y", labelsize=6)
    ax.set_xlabel("coverage of the 95% CI (ok fits)")
    ax.set_xlim(0.5, 1.0)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    for fmt in ("png", "pdf", "svg"):
        fig.savefig(
            stem.with_suffix(f".{fmt}"),
            dpi=200,
            metadata={"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {}),
        )
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulations", type=int, default=120)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--grids", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "recovery")
    parser.add_argument(
        "--records",
        action="store_true",
        help="re-tabulate the records a previous run wrote, without simulating",
    )
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    noise = pd.read_csv(STUDIES["cpu_validation"])
    tables = []
    lines = run_lines()
    for name in args.grids:
        grid = grid_of(pd.read_csv(STUDIES[name]), name, noise_from=noise)
        lines.append(
            f"{name}: params {[int(p) for p in grid.params]}, n_train {list(grid.sizes)}, "
            f"{grid.seeds} seed(s), seed sd of log val_loss "
            f"{ {n: round(v, 4) for n, v in grid.log_noise.items()} }, of memorised_fraction "
            f"{grid.fraction_noise:.4f}, {grid.n_samples} samples"
        )
        path = args.out.with_name(f"{args.out.name}_{name}_records.csv")
        if args.records:
            records = pd.read_csv(path, index_col=0)
        else:
            records = recover(grid, args.simulations, args.resamples)
            records.assign(grid=name).to_csv(path)
        tables.append(summarise(records).assign(grid=name))
    table = pd.concat(tables, ignore_index=True)
    table["in_target"] = table.coverage.between(*TARGET).map({True: "yes", False: "no"})
    table.loc[table.ok == 0, "in_target"] = "-"
    lines += [
        f"{args.simulations} simulations per grid, {args.resamples} bootstrap resamples each;"
        " coverage over the simulations whose verdict was ok (± its binomial 95% band).",
    ]
    rows = table.drop(columns=["relative_error_ci"]).to_dict("records")
    write_report(args.out, "Parameter recovery", lines, markdown_table(rows, COLUMNS), rows)
    figure(table, args.out)


if __name__ == "__main__":
    main()

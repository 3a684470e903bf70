"""How long ``fmscale analyze`` takes, before and after, and whether its batched refits reach
the optima of per-resample L-BFGS-B.

1. Wall time of ``python -m fmscale analyze`` on a copy of ``--summary`` (the default study's),
   with this checkout's code and with ``--baseline``'s (its ``src/`` exported by ``git
   archive``), one after the other in this run: their ratio is the speed-up.
2. This checkout's analysis split into the numbers (``analyse``) and the figures and tables.
3. For every law fit of the summary, ``--resamples`` bootstrap targets refitted both ways: the
   batched solver (``lawfit.refit``) and L-BFGS-B from the same two starts per resample (the
   baseline's refit); the share of resamples where the batched objective is within 1e-4
   (relative) of L-BFGS-B's or below it, and the largest excess.

Writes ``analysis_speed.csv`` / ``.md`` to ``--out``. Run it alone: it times things.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import RESULTS_DIR, markdown_table, run_lines, write_report

from fmscale.analysis import bootstrap, fits, lawfit
from fmscale.analysis.figures import write_figures
from fmscale.analysis.fits import FIT_TARGETS
from fmscale.analysis.latex import write_tables
from fmscale.analysis.rows import Settings, model_rows
from fmscale.analysis.run import analyze_rows

ROOT = Path(__file__).resolve().parent.parent


def timed_analyze(summary: Path, src: Path, workdir: Path) -> float:
    results = workdir / "results"
    results.mkdir(parents=True)
    shutil.copy(summary, results / "summary.csv")
    env = os.environ | {"PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fmscale", "analyze", str(results)],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - start


def baseline_src(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def split(summary: Path, workdir: Path) -> tuple[float, float]:
    frame = pd.read_csv(summary)
    start = time.perf_counter()
    report, laws, rows = analyze_rows(frame, None, Settings())
    numbers = time.perf_counter() - start
    start = time.perf_counter()
    write_figures(rows, report, laws, workdir / "figures")
    write_tables(report, workdir / "figures")
    return numbers, time.perf_counter() - start


def agreement(summary: Path, resamples: int) -> list[dict]:
    rows = model_rows(pd.read_csv(summary))
    out = []
    with bootstrap.single_threaded_blas():
        for arch, part in rows.groupby("arch"):
            for target in FIT_TARGETS:
                data = part[np.isfinite(part[target]) & (part[target] > 0)].reset_index(drop=True)
                points = fits._points(data, target)
                best = lawfit.fit_from_grid(points)
                rng = bootstrap.stream(0, "fit", arch, target)
                targets, _ = bootstrap.law_targets(data, points, best.theta, 5, resamples, rng)
                start = time.perf_counter()
                batched = lawfit.refit(points, targets, best.theta, 1)
                batched_s = time.perf_counter() - start
                axes, bounds = lawfit._space(lawfit.REFIT_GRID, False)
                excess, start = [], time.perf_counter()
                for theta, target_row in zip(batched, targets, strict=True):
                    row = lawfit.Points(points.log_params, points.log_n, target_row)
                    starts = np.vstack([best.theta, lawfit.best_starts(axes, row, 1)])
                    reference = min(lawfit._minimise(s, row, bounds).fun for s in starts)
                    ours = lawfit.objective(theta, row)[0]
                    excess.append((ours - reference) / max(reference, 1e-12))
                lbfgsb_s = time.perf_counter() - start
                excess = np.array(excess)
                out.append(
                    {
                        "fit": f"{arch} {target}",
                        "resamples": resamples,
                        "lbfgsb_s": lbfgsb_s,
                        "batched_s": batched_s,
                        "speedup": lbfgsb_s / batched_s,
                        "as_good": float(np.mean(excess <= 1e-4)),
                        "lower": float(np.mean(excess < -1e-4)),
                        "worst_excess": float(excess.max()),
                    }
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summary", type=Path, default=ROOT / "docs/default_study/summary.csv")
    parser.add_argument("--baseline", default="b743440", help="revision to compare against")
    parser.add_argument("--resamples", type=int, default=200, help="for the agreement check")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "analysis_speed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = timed_analyze(args.summary, baseline_src(args.baseline, tmp), tmp / "old")
        new = timed_analyze(args.summary, ROOT / "src", tmp / "new")
        numbers, figures = split(args.summary, tmp)
    rows = agreement(args.summary, args.resamples)
    lines = run_lines() + [
        f"`fmscale analyze` of {args.summary.relative_to(ROOT)}: {old:.1f} s at "
        f"{args.baseline}, {new:.1f} s now ({old / new:.1f}x faster); now = {numbers:.1f} s of "
        f"numbers + {figures:.1f} s of figures and tables (in-process, imports excluded).",
        f"Refits of each law fit, {args.resamples} resamples: per-resample L-BFGS-B (the "
        "baseline's refit) against the batched solver, from the same starts; `as good`: the "
        "share where the batched objective is at most 1e-4 (relative) above L-BFGS-B's, "
        "`lower`: more than 1e-4 below it.",
    ]
    columns = {
        "fit": ("fit", "{}"),
        "L-BFGS-B s": ("lbfgsb_s", "{:.2f}"),
        "batched s": ("batched_s", "{:.2f}"),
        "speed-up": ("speedup", "{:.1f}x"),
        "as good": ("as_good", "{:.3f}"),
        "lower": ("lower", "{:.3f}"),
        "worst excess": ("worst_excess", "{:.2e}"),
    }
    summary_row = {"old_s": old, "new_s": new, "numbers_s": numbers, "figures_s": figures}
    rows = [row | summary_row for row in rows]
    write_report(args.out, "Analysis speed", lines, markdown_table(rows, columns), rows)


if __name__ == "__main__":
    main()

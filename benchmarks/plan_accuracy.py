"""How close `fmscale plan`'s CPU wall time is to a measured `snakemake --cores N` run.

    python benchmarks/plan_accuracy.py [--study NAME=OVERLAY.yaml ...] [--cores 2] [--out DIR]
    python benchmarks/plan_accuracy.py --tail      # the analyze job's cost: cpucost.TAIL_JOB_S

For each study (default: ``default``, config.yaml as it is, and ``small``, ``SMALL`` merged over
it): ``fmscale plan --json --cores N`` on that config, then the study itself, fresh, in a
temporary results folder (``snakemake --cores N --configfile ...`` from the repository root),
timed from start to exit. Records the predicted and measured wall time and their ratio, the
predicted and measured seconds of each train and evaluate job (Snakemake's ``benchmark:``
files), the seconds from Snakemake's start to its first job, and the load average before and
after each run (the machine must be otherwise idle for the figures to mean anything).
Writes DIR/plan_accuracy.json and .md (default benchmarks/results); ``--tail``:
DIR/plan_accuracy_tail.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from _common import RESULTS_DIR, cpu_model, report_head, run_lines, versions_line

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = {
    "grid": {"archs": ["mlp", "dit"], "scales": ["tiny", "small"], "n_train": [32, 256]},
}
"""The smaller study: 2 archs x 2 scales x 2 n_train of the default's budget (8 cells)."""
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
JOB_START = re.compile(r"^Job (\d+): (.*)$")
JOB_END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def env() -> dict[str, str]:
    """os.environ with this repository's src first on PYTHONPATH (the jobs import it from
    there anyway: workflow/rules/common.smk)."""
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def study_config(overlay: dict[str, Any], results: Path, folder: Path) -> Path:
    """config.yaml with ``overlay`` merged over it and results in ``results``; its path."""
    sys.path.insert(0, str(REPO / "src"))
    from fmscale.configfiles import merge_configs, read_yaml

    raw = merge_configs(read_yaml(REPO / "config.yaml"), overlay)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({**raw, "results": str(results)}, sort_keys=False))
    return path


def predict(config: Path, cores: int, folder: Path) -> tuple[dict[str, Any], float]:
    """``fmscale plan --json`` of ``config``; the plan and how long it took."""
    out = folder / "plan.json"
    cmd = [sys.executable, "-m", "fmscale", "plan", "--configfile", str(config), "--json"]
    start = time.perf_counter()
    subprocess.run(
        [*cmd, "--cores", str(cores), "--out", str(out)],
        cwd=REPO,
        env=env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(out.read_text()), time.perf_counter() - start


def run_study(config: Path, cores: int) -> float:
    """``snakemake --cores N`` on ``config``, from the repository root; its wall seconds."""
    cmd = [str(BIN / "snakemake"), "--cores", str(cores), "--configfile", str(config)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env(), check=True, capture_output=True)
    return time.perf_counter() - start


def log_jobs(started: float) -> dict[str, Any]:
    """From the newest Snakemake log: seconds from the run's start to its first job, and each
    job's rule, message and seconds (Snakemake stamps each start and end to the second)."""
    logs = sorted((REPO / ".snakemake" / "log").glob("*.snakemake.log"))
    stamp, first = None, None
    jobs: dict[str, dict[str, Any]] = {}
    for line in logs[-1].read_text().splitlines() if logs else []:
        line = line.strip()
        if match := STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
            first = stamp if first is None else first
        elif match := JOB_START.match(line):
            jobs[match.group(1)] = {"message": match.group(2), "start": stamp}
        elif (match := JOB_END.match(line)) and match.group(1) in jobs:
            job = jobs[match.group(1)]
            job.update(rule=match.group(2), seconds=stamp - job.pop("start"))
    finished = [j for j in jobs.values() if "rule" in j]
    by_rule: dict[str, float] = {}
    for job in finished:
        by_rule[job["rule"]] = by_rule.get(job["rule"], 0.0) + job["seconds"]
    return {
        "first_job_after_s": None if first is None else round(first - started, 1),
        "job_seconds_by_rule": by_rule,
        "jobs": finished,
    }


def time_analyze(summary: Any, folder: Path) -> float:
    """Wall seconds of ``fmscale analyze`` (a fresh process) on ``summary`` (a DataFrame)."""
    folder.mkdir(parents=True)
    summary.to_csv(folder / "summary.csv", index=False)
    cmd = [sys.executable, "-m", "fmscale", "analyze", str(folder)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env(), check=True, capture_output=True)
    return time.perf_counter() - start


def tail_jobs() -> dict[str, Any]:
    """``fmscale analyze`` of docs/default_study (36 cells) and of its cells in ``SMALL``'s grid
    (8), with their reference rows: the fixed and per-cell seconds of cpucost.TAIL_JOB_S."""
    import pandas as pd

    full = pd.read_csv(REPO / "docs" / "default_study" / "summary.csv")
    grid = SMALL["grid"]
    model = full.arch.isin(grid["archs"]) & full.scale.isin(grid["scales"])
    part = full[(model | (full.kind == "reference")) & full.n_train.isin(grid["n_train"])]
    sizes = {int((f.kind == "model").sum()): f for f in (full, part)}
    with tempfile.TemporaryDirectory(prefix="plan_accuracy_tail_") as tmp:
        seconds = {n: time_analyze(f, Path(tmp) / str(n)) for n, f in sizes.items()}
    (small, s_small), (large, s_large) = sorted(seconds.items())
    per_cell = (s_large - s_small) / (large - small)
    return {
        "analyze_s": seconds,
        "analyze_fixed_s": round(s_small - per_cell * small, 2),
        "analyze_per_cell_s": round(per_cell, 3),
        "load_1min": load(),
    }


def measure_one(name: str, overlay: dict[str, Any], cores: int) -> dict[str, Any]:
    """Plan, then run, one study; the comparison."""
    with tempfile.TemporaryDirectory(prefix=f"plan_accuracy_{name}_") as tmp:
        folder = Path(tmp)
        results = folder / "results"
        config = study_config(overlay, results, folder)
        load_before_plan = load()
        plan, plan_s = predict(config, cores, folder)
        load_before = load()
        started = time.time()
        measured = run_study(config, cores)
        logged = log_jobs(started)
        load_after = load()
        cpu = plan["cpu"]
    return {
        "study": name,
        "overlay": overlay,
        "cores": cores,
        "cells": plan["jobs"]["train"],
        "predicted_wall_s": round(cpu["wall_s"], 1),
        "measured_wall_s": round(measured, 1),
        "ratio": round(cpu["wall_s"] / measured, 3),
        "predicted_one_job_at_a_time_s": round(cpu["one_job_at_a_time_s"], 1),
        "predicted_job_seconds_by_rule": {
            k: round(v, 1) for k, v in cpu["job_seconds_by_rule"].items()
        },
        "measured_job_seconds_by_rule": logged["job_seconds_by_rule"],
        "measured_first_job_after_s": logged["first_job_after_s"],
        "measured_jobs": logged["jobs"],
        "plan_run_s": round(plan_s, 1),
        "load_1min": {
            "before_plan": load_before_plan,
            "before_study": load_before,
            "after_study": load_after,
        },
        "plan_cpu": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--study",
        action="append",
        help="NAME=OVERLAY.yaml merged over config.yaml ('default' alone: config.yaml as it is); "
        "default: default and small",
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--tail", action="store_true", help="time fmscale analyze only (cpucost.TAIL_JOB_S)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.tail:
        tail = tail_jobs()
        print(json.dumps(tail, indent=2))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "plan_accuracy_tail.json").write_text(json.dumps(tail, indent=2) + "\n")
        return 0
    studies = {"default": {}, "small": SMALL}
    if args.study:
        studies = {}
        for item in args.study:
            name, _, path = item.partition("=")
            studies[name] = yaml.safe_load(Path(path).read_text()) if path else {}
    rows = []
    for name, overlay in studies.items():
        row = measure_one(name, overlay, args.cores)
        print(
            f"{name}: predicted {row['predicted_wall_s']:.0f} s, measured "
            f"{row['measured_wall_s']:.0f} s, ratio {row['ratio']:.2f} (load {row['load_1min']})",
            flush=True,
        )
        rows.append(row)
    head = [
        f"machine: {cpu_model()}, {os.cpu_count()} cores",
        versions_line("torch", "snakemake"),
        *run_lines(),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plan_accuracy.json").write_text(
        json.dumps({"head": head, "studies": rows}, indent=2) + "\n"
    )
    table = (
        "| study | cells | cores | predicted s | measured s | predicted / measured |"
        " load before / after |\n|---|---:|---:|---:|---:|---:|---|\n"
    )
    for r in rows:
        table += (
            f"| {r['study']} | {r['cells']} | {r['cores']} | {r['predicted_wall_s']:.0f} | "
            f"{r['measured_wall_s']:.0f} | {r['ratio']:.2f} | "
            f"{r['load_1min']['before_study']:.2f} / {r['load_1min']['after_study']:.2f} |\n"
        )
    (args.out / "plan_accuracy.md").write_text(
        report_head("Plan accuracy (CPU wall time)", head) + table
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

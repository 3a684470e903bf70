"""Operations per training step, per arch x scale x phase, eager and compiled, against a
baseline revision: the count `fmscale plan` bounds a GPU step with (fmscale.opcount), for the
CPU table (config.yaml) and the GPU table (workflow/configs/gpu_study.yaml).

    python benchmarks/op_count.py [--baseline REV] [--no-compiled] [--out DIR]

Counts one trainer step on the CPU (autocast as on CUDA where train.bf16) at D = 1024: the
eager step with a dispatch mode, the ``train.compile`` step with the profiler (each inductor
kernel and each GEMM one operation). ``--baseline`` (default: landed main before the step's
operations were cut) is counted by its own copy of this script in a git worktree. About 15
minutes on the 2-core CPU, mostly compiling. Writes DIR/op_count.json, .csv and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, markdown_table, run_lines, versions_line, write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
STUDIES = {"cpu": [], "default": ["workflow/configs/gpu_study.yaml"]}
"""Scaling table -> the configs merged over config.yaml that train at it."""
BASELINE = "445b2db"
"""Landed main before issue 27 cut the step's operations."""


def counts(overlays: list[str], compiled: bool) -> list[dict[str, Any]]:
    """One row per arch x scale of the study's table: operations per phase and totals."""
    from fmscale.configfiles import merge_configs, read_yaml
    from fmscale.opcount import PHASES
    from fmscale.plan import arch_counts
    from fmscale.study import data_shape, load_study

    raw = read_yaml(REPO / "config.yaml")
    for overlay in overlays:
        raw = merge_configs(raw, read_yaml(REPO / overlay))
    study = load_study(raw)
    study = dataclasses.replace(study, train=dataclasses.replace(study.train, compile=compiled))
    rows = []
    for (arch, scale), info in arch_counts(study, data_shape(study.data)[1]).items():
        rows.append(
            {
                "table": study.scaling_table,
                "step": "compiled" if compiled else "eager",
                "arch": arch,
                "scale": scale,
                "params": info["n_params"],
                **{phase: info["ops"][phase] for phase in PHASES},
                "ops": info["total_ops"],
                "views": sum(info["views"].values()),
                "kernels": info["kernel_ops"],
                "autocast": study.train.bf16,
            }
        )
    return rows


def baseline_rows(revision: str) -> list[dict[str, Any]]:
    """The eager rows of ``revision``, counted by its own op_count.py in a git worktree."""
    with tempfile.TemporaryDirectory() as tmp:
        tree, out = Path(tmp) / "tree", Path(tmp) / "out"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(tree), revision], cwd=REPO, check=True
        )
        try:
            script = tree / "benchmarks/op_count.py"
            subprocess.run(
                [sys.executable, str(script), "--out", str(out)],
                cwd=tree / "benchmarks",
                check=True,
                capture_output=True,
            )
            return json.loads((out / "op_count.json").read_text())["rows"]
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=True
            )


def comparison(base: list[dict], eager: list[dict], compiled: list[dict]) -> list[dict]:
    """Per table x arch x scale: operations and kernels before, eager now, compiled now, and
    the ratios before / now."""

    def key(row: dict) -> tuple:
        return row["table"], row["arch"], row["scale"]

    now, comp = {key(r): r for r in eager}, {key(r): r for r in compiled}
    rows = []
    for old in base:
        new, fused = now[key(old)], comp.get(key(old))
        row = {
            "table": old["table"],
            "arch": old["arch"],
            "scale": old["scale"],
            "ops before": old["ops"],
            "ops eager": new["ops"],
            "kernels before": old["kernels"],
            "kernels eager": new["kernels"],
            "kernels eager / before": round(old["kernels"] / new["kernels"], 2),
        }
        if fused is not None:
            row["kernels compiled"] = fused["kernels"]
            row["ops before / compiled"] = round(old["ops"] / fused["kernels"], 2)
            row["kernels before / compiled"] = round(old["kernels"] / fused["kernels"], 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="a git revision, or '' for none")
    parser.add_argument("--no-compiled", action="store_true", help="count the eager step only")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    eager = [row for overlays in STUDIES.values() for row in counts(overlays, False)]
    compiled = []
    if not args.no_compiled:
        compiled = [row for overlays in STUDIES.values() for row in counts(overlays, True)]
    lines = [versions_line("torch"), *run_lines()]
    rows = eager + compiled
    table = markdown_table(rows)
    if args.baseline:
        compared = comparison(baseline_rows(args.baseline), eager, compiled)
        table = (
            f"Against {args.baseline} (ops: every aten operation dispatched, views included; "
            "kernels: the operations that launch one, views aside; a compiled step's "
            "operations are all kernels)\n\n"
            f"{markdown_table(compared)}\n\nPer phase\n\n{table}"
        )
    write_report(args.out / "op_count", "Operations per training step", lines, table, rows)
    (args.out / "op_count.json").write_text(json.dumps({"head": lines, "rows": rows}, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

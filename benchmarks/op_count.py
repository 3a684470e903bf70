"""Operations per training step, per arch x scale x phase: the count `fmscale plan` bounds a
GPU step with (fmscale.opcount), for the CPU table (config.yaml) and the GPU table
(workflow/configs/gpu_study.yaml).

    python benchmarks/op_count.py [--out DIR]

Counts one eager trainer step on the CPU (autocast as on CUDA where train.bf16) at D = 1024;
a few minutes on the 2-core CPU. Writes DIR/op_count.json, .csv and .md (default
benchmarks/results), so a change that cuts operations can be compared before / after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, markdown_table, run_lines, versions_line, write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
STUDIES = {"cpu": [], "default": ["workflow/configs/gpu_study.yaml"]}
"""Scaling table -> the configs merged over config.yaml that train at it."""


def counts(overlays: list[str]) -> list[dict[str, Any]]:
    """One row per arch x scale of the study's table: operations per phase and totals."""
    from fmscale.config import merge_configs, read_yaml
    from fmscale.opcount import PHASES
    from fmscale.plan import arch_counts
    from fmscale.study import data_shape, load_study

    raw = read_yaml(REPO / "config.yaml")
    for overlay in overlays:
        raw = merge_configs(raw, read_yaml(REPO / overlay))
    study = load_study(raw)
    rows = []
    for (arch, scale), info in arch_counts(study, data_shape(study.data)[1]).items():
        rows.append(
            {
                "table": study.scaling_table,
                "arch": arch,
                "scale": scale,
                "params": info["n_params"],
                **{phase: info["ops"][phase] for phase in PHASES},
                "ops": info["total_ops"],
                "views": sum(info["views"].values()),
                "kernels": info["kernel_ops"],
                "sample_kernels": info["sample_kernel_ops"],
                "autocast": study.train.bf16,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    rows = [row for overlays in STUDIES.values() for row in counts(overlays)]
    lines = [versions_line("torch"), *run_lines()]
    table = markdown_table(rows)
    write_report(args.out / "op_count", "Operations per training step", lines, table, rows)
    (args.out / "op_count.json").write_text(json.dumps({"head": lines, "rows": rows}, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

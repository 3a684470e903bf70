# Grid, paths and helpers shared by every rule. Logic lives in src/fmscale/study.py.
import os
import shlex

from fmscale.study import (
    ANALYSIS_FIGURES,
    CELL_LOG_NAME,
    CELL_PATTERN,
    PLOTS,
    cells,
    load_study,
    settings,
)

STUDY = load_study(config)

RESULTS = STUDY.results
GRID = STUDY.section("grid")
DATASET = f"{RESULTS}/data/{STUDY.data.name}/pool.safetensors"
CELL = f"{RESULTS}/{CELL_PATTERN}"
TABLE_FLAG = (
    f"--table {shlex.quote(STUDY.scaling_table)}" if STUDY.scaling_table else ""
)
RES = STUDY.resources


wildcard_constraints:
    arch="|".join(GRID["archs"]),
    scale="|".join(GRID["scales"]),
    n_train=r"[0-9]+",
    seed=r"[0-9]+",
    dataset=r"[A-Za-z0-9_.-]+",


def cell_files(name):
    """One path per grid cell for the file ``name`` of its run folder."""
    return [f"{RESULTS}/{CELL_PATTERN.format(**c)}/{name}" for c in cells(GRID)]


def runtime_min(wildcards, attempt):
    """Minutes for a train job: grows with the scale and with each retry."""
    return RES.runtime_min.get(wildcards.scale, 60) * attempt

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
    put_first_on_pythonpath,
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
# Every job runs the workflow's own fmscale source (`python -m fmscale`), whatever environment
# runs it: a conda env of --software-deployment-method conda holds the dependencies, not fmscale.
put_first_on_pythonpath(os.path.join(workflow.basedir, "src"))
# Train and evaluate run in the GPU environment when the study asks for GPUs; the rest on CPU.
CPU_ENV = "../../envs/fmscale.yaml"
JOB_ENV = "../../envs/fmscale-gpu.yaml" if RES.gpu else CPU_ENV


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

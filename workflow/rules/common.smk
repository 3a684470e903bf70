# Grid, paths and helpers shared by every rule. Logic lives in fmscale.study and fmscale.layout.
import json
import os
import shlex

from fmscale.catalogue import plot_names
from fmscale.record import ANALYSIS_FIGURES, ANALYSIS_TABLES, FIGURE_FORMATS
from fmscale.layout import (
    CELL_LOG_NAME,
    CELL_PATTERN,
    PARAMS_DIR,
    REFERENCE_PATTERN,
    cells,
    check_layout,
)
from fmscale.study import (
    data_shape,
    fits_table,
    load_study,
    put_first_on_pythonpath,
    settings,
    study_grid,
    study_table,
)

# Checked while the DAG is built, so `snakemake -n` stops on them before any job runs: the
# config, the data file's header (rows, D, column), the results layout and the gate.
STUDY = load_study(config)
check_layout(STUDY.results)

RESULTS = STUDY.results
DATA = STUDY.data.name
SYNTHETIC = STUDY.data.source == "synthetic"
GRID = study_grid(STUDY)
DATA_DIM = data_shape(STUDY.data)[1]
# The table the cells train at D: a packaged table fitted to its capacity targets there
# (a passed gate is kept in .snakemake/fmscale/, so the next DAG build needs no torch).
TABLE = study_table(STUDY, DATA_DIM, cache=os.path.join(".snakemake", "fmscale"))
FIT_TABLE = fits_table(STUDY)
TABLE_FLAG = (
    f"--table {shlex.quote(STUDY.scaling_table)}" if STUDY.scaling_table else ""
)
POOL = f"{RESULTS}/data/{{dataset}}/pool.safetensors"
CELL = f"{RESULTS}/{CELL_PATTERN}"
PARAMS = f"{RESULTS}/{PARAMS_DIR}"
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


def table_row(wildcards):
    """The cell's row of the gated table, as JSON: a changed row retrains the cell."""
    return json.dumps(TABLE.row(wildcards.arch, wildcards.scale), sort_keys=True)


def runtime_min(wildcards, attempt):
    """Minutes for a train job: grows with the scale and with each retry."""
    return RES.runtime_min.get(wildcards.scale, 60) * attempt

"""The study: its resolved config, its grid, its data's shape and the table its cells train (the
results folder's layout is ``fmscale.layout``).

Torch-free: the Snakefile imports this while it builds the DAG.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from .config import DataConfig, from_section
from .datafile import DataError, peek_shape
from .errors import ConfigError
from .files import atomic_write
from .models.scaling import ScalingTable, load_table, parse_table
from .study_config import StudyConfig


def study_grid(study: StudyConfig) -> dict[str, list]:
    """The study's grid with its one dataset as the first axis."""
    return {"datasets": [study.data.name], **_section(study, "grid")}


def put_first_on_pythonpath(folder: str) -> None:
    """Put ``folder`` first on PYTHONPATH, for the jobs this process starts (the workflow's
    own source for its rules' ``python -m fmscale``); a no-op when it is first already."""
    current = os.environ.get("PYTHONPATH", "")
    if current.split(os.pathsep)[0] != folder:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, current]))


def load_study(config: dict[str, Any]) -> StudyConfig:
    """The study config with every default filled in, after the checks that span sections."""
    study = from_section(StudyConfig, config)
    grid, data = study.grid, study.data
    table = load_table(study.scaling_table)
    for axis, names, known in (
        ("archs", grid.archs, table.archs),
        ("scales", grid.scales, table.scales),
    ):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(
                f"grid.{axis}: {unknown} not in the scaling table {table.path}; "
                f"it has {list(known)}"
            )
    evaluate = study.evaluate
    if min(evaluate.n_samples, data.n_test) <= evaluate.knn_k:
        raise ConfigError(
            f"evaluate.knn_k={evaluate.knn_k} needs more than k samples and test rows; "
            f"got n_samples={evaluate.n_samples}, data.n_test={data.n_test}"
        )
    n_rows, dim = data_shape(data)
    where = f"data.path ({data.path})" if data.file else "data.synthetic.dim"
    if evaluate.pca_dims > dim:
        raise ConfigError(
            f"evaluate.pca_dims={evaluate.pca_dims} exceeds the data's dimension D = {dim} "
            f"({where}); set evaluate.pca_dims to at most {dim}"
        )
    need = max(grid.n_train) + data.n_val + data.n_test
    if need > n_rows:
        rows_from = f"data.path ({data.path}) holds" if data.file else "data.synthetic.n_rows ="
        allowed = n_rows - data.n_val - data.n_test
        fix = (
            f"lower grid.n_train to at most {allowed}, or data.n_val / data.n_test"
            if allowed >= 1
            else "lower data.n_val and data.n_test"
        )
        raise ConfigError(
            f"grid.n_train: the largest n_train ({max(grid.n_train)}) + data.n_val "
            f"({data.n_val}) + data.n_test ({data.n_test}) = {need} rows, but {rows_from} "
            f"{n_rows}; {fix}"
        )
    return study


def data_shape(data: DataConfig) -> tuple[int, int]:
    """(rows, D) of the study's data, from the file's header (no full read) or the synthetic
    settings; ConfigError naming ``data.path`` when the file cannot be read."""
    if not data.file:
        return data.synthetic.n_rows, data.synthetic.dim
    try:
        return peek_shape(data.file, data.column)
    except DataError as exc:
        raise ConfigError(f"data.path: {exc}") from None


def study_table(study: StudyConfig, data_dim: int, cache: str | Path | None = None) -> ScalingTable:
    """The scaling table the study's cells train at the data's D, gated now (ParamGateError,
    naming every off row and the fix): a packaged table fitted to its capacity targets at D,
    a user's table as written.

    Counting imports torch and builds every row on the meta device (~3 s on 2 CPU cores);
    ``cache``: a folder keeping each passed gate's table, keyed by the table file, D, the
    settings and fmscale's own source, so the next DAG build reads it without torch.
    """
    table = load_table(study.scaling_table)
    hit = None if cache is None else Path(cache) / f"gate-{_gate_key(study, table, data_dim)}.yaml"
    if hit is not None and hit.exists():
        return parse_table(yaml.safe_load(hit.read_text()), table.path)
    from .params import gate_table, table_yaml

    fitted, _ = gate_table(
        study.scaling_table,
        data_dim,
        study.train.parameterisation,
        list(study.grid.archs),
        study.params.allow_off_ratio,
        fit=fits_table(study),
    )
    if hit is not None:
        hit.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(hit, table_yaml(fitted, f"gate passed: {table.path} at D = {data_dim}"))
    return fitted


def _gate_key(study: StudyConfig, table: ScalingTable, data_dim: int) -> str:
    """What a gate's verdict depends on: the table file, D, the gate's settings and the code."""
    h = hashlib.sha256(Path(table.path).read_bytes())
    settings = [data_dim, study.train.parameterisation, sorted(study.grid.archs)]
    settings += [study.params.allow_off_ratio, fits_table(study)]
    h.update(json.dumps(settings).encode())
    for source in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()[:24]


def fits_table(study: StudyConfig) -> bool:
    """Whether the study's table is fitted at the data's D: a packaged one, unless
    ``params.fit`` is off."""
    from .models.scaling import is_packaged

    return study.params.fit and is_packaged(study.scaling_table)


def settings(study: StudyConfig, *sections: str) -> str:
    """The named sections, resolved, as one JSON string for the CLI's ``--settings``.

    Each rule gets only the sections it reads, so Snakemake reruns a job when (and only when)
    settings it depends on change: a new seed or evaluation NFE retrains nothing.
    """
    return json.dumps({name: _section(study, name) for name in sections}, sort_keys=True)


def _section(study: StudyConfig, name: str) -> dict[str, Any]:
    """One resolved section; the grid's axes only: the cells ``grid.refine`` adds reach the
    jobs that read them as files (``REFINE_PATTERN``), so a study without refinement
    gives its rules the settings it gave them before refinement existed."""
    section = study.section(name)
    if name == "grid":
        section.pop("refine")
    return section

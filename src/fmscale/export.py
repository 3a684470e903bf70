"""Post-hoc tracker export: each trained cell of a results folder as one TensorBoard or MLflow run.

A run folder is exported once its training has finished (``cell.json`` present), evaluated or
not; one without ``cell.json`` (still training, failed, or never run) is skipped and named, so
a partial study exports what it has. Each cell's run, named ``CELL_LOG_NAME``, holds:

- params: the cell's dataset and every leaf of ``cell.json`` (the cell, the resolved train
  settings, the table row, the config given, its cost and provenance) under dotted keys
  (``train.lr``, ``row.hidden_dim``); lists and nulls as JSON text;
- curves, one point per logged step: ``train/<column>`` of ``train_log.csv`` (loss, lr,
  grad_norm, steps_per_s) and ``trajectory/<column>`` of ``trajectory.csv`` (train_loss,
  val_loss, gap_ratio, memorisation) where the cell has one;
- final scalars at the cell's last step: ``final/<key>`` for each number of ``metrics.json``
  (``final/val_loss``, ``final/metrics/mmd2_pca``, ``final/by_nfe/8/mmd2_pca``), its other
  values as ``metrics.<key>`` params; left out (with a note) when the cell is not evaluated
  or its metrics scored another training run (stale).

Re-exporting never duplicates a run: a cell whose files are unchanged since the last export is
left as it is, a changed one is replaced (a TensorBoard log folder written beside the old one
and swapped in; an MLflow run, found by its ``fmscale.cell`` tag, deleted and written anew).
Torch-free; each tracker's package is imported when it is used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .configfiles import flatten
from .errors import ExportError
from .layout import CELL_LOG_NAME, CELL_PATTERN, cell_digest, cell_folders, check_layout

TRACKERS = ("tensorboard", "mlflow")
SOURCES = ("cell.json", "train_log.csv", "trajectory.csv", "metrics.json")
"""The run folder's files a cell's export reads (its digest covers them)."""
CURVES = {"train_log.csv": "train", "trajectory.csv": "trajectory"}
"""Per-step CSV of a run folder -> the prefix of its curves."""
CELL_TAG = "fmscale.cell"
DIGEST_TAG = "fmscale.digest"
"""MLflow tags: the cell's name (how a re-export finds its run) and the digest of its files."""
DIGEST_FILE = ".fmscale-export"
"""In a cell's TensorBoard log folder: the digest of the files it was written from."""

ParamValue = bool | int | float | str


@dataclass(frozen=True)
class CellRun:
    """One trained cell as a tracker logs it."""

    name: str
    cell: dict[str, Any]
    params: dict[str, ParamValue]
    curves: dict[str, list[tuple[int, float]]]
    final: dict[str, float]
    step: int
    digest: str


def read_runs(results: str | Path) -> tuple[list[CellRun], list[str]]:
    """The trained cells under ``results`` and a note for each cell skipped or exported in part.

    ExportError naming the folder when it has no trained cell.
    """
    results = Path(results)
    if not results.is_dir():
        raise ExportError(f"{results}: no such results folder; give the results folder of a study")
    check_layout(results)
    folders = cell_folders(results)
    if not folders:
        raise ExportError(
            f"{results}: no run folders ({CELL_PATTERN}); give the results folder of a study "
            "with trained cells"
        )
    runs, notes = [], []
    for cell, folder in folders:
        if not (folder / "cell.json").exists():
            notes.append(f"{folder}: skipped, not trained (no cell.json)")
            continue
        try:
            run, note = _read_run(cell, folder)
        except (OSError, ValueError) as exc:
            notes.append(f"{folder}: skipped, {exc}")
            continue
        runs.append(run)
        if note:
            notes.append(f"{folder}: {note}")
    if not runs:
        raise ExportError(
            f"{results}: none of its {len(folders)} run folder(s) holds a trained cell "
            "(cell.json); nothing to export yet:\n" + "\n".join(notes)
        )
    return runs, notes


def _read_run(cell: dict[str, Any], folder: Path) -> tuple[CellRun, str | None]:
    """One trained cell's run, and a note when its final scalars are left out."""
    files = {name: (folder / name).read_bytes() for name in SOURCES if (folder / name).exists()}
    info = _json_object("cell.json", files["cell.json"])
    if "steps" not in info:
        raise ValueError("cell.json unreadable (no 'steps')")
    params = {"dataset": cell["dataset"], **_params(flatten(info))}
    curves: dict[str, list[tuple[int, float]]] = {}
    for name, prefix in CURVES.items():
        if name in files:
            curves |= {f"{prefix}/{k}": v for k, v in _read_curves(name, files[name]).items()}
    final, note = _final(files.get("metrics.json"), cell_digest(files["cell.json"]), params)
    digest = hashlib.sha256(__version__.encode())
    for name, raw in files.items():
        digest.update(name.encode() + raw)
    name = CELL_LOG_NAME.format(**cell)
    run = CellRun(name, cell, params, curves, final, int(info["steps"]), digest.hexdigest())
    return run, note


def _final(
    raw: bytes | None, trained: str, params: dict[str, ParamValue]
) -> tuple[dict[str, float], str | None]:
    """The numbers of ``metrics.json`` as final scalars (its other values go to ``params``),
    or none and why: not evaluated, or scored another run than ``trained`` (the cell's digest).
    """
    if raw is None:
        return {}, "not evaluated (no metrics.json): params and curves only"
    metrics = _json_object("metrics.json", raw)
    if metrics.get("cell_digest", trained) != trained:  # no digest: evaluated before it existed
        return {}, "metrics.json scored another training run (stale): final scalars left out"
    metrics.pop("cell", None)  # the cell's keys, params already
    final = {}
    for key, value in flatten(metrics, sep="/").items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            final[f"final/{key}"] = float(value)
        else:
            params[f"metrics.{key.replace('/', '.')}"] = _param(value)
    return final, None


def _json_object(name: str, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{name} unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{name} unreadable (not a JSON object)")
    return data


def _params(flat: dict[str, Any]) -> dict[str, ParamValue]:
    return {key: _param(value) for key, value in flat.items()}


def _param(value: Any) -> ParamValue:
    """A tracker's param value: a bool, number or string as it is, anything else as JSON."""
    return value if isinstance(value, bool | int | float | str) else json.dumps(value)


def _read_curves(name: str, raw: bytes) -> dict[str, list[tuple[int, float]]]:
    """Column -> (step, value) of a per-step CSV's bytes; empty values are left out."""
    curves: dict[str, list[tuple[int, float]]] = {}
    rows = csv.DictReader(io.StringIO(raw.decode(), newline=""))
    for line, row in enumerate(rows, start=2):
        try:
            step = int(row.pop("step"))
            for key, value in row.items():
                if value:
                    curves.setdefault(key, []).append((step, float(value)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{name} unreadable (line {line}: {exc!r})") from None
    return curves


def _missing(tracker: str) -> ExportError:
    return ExportError(
        f"fmscale export --to {tracker} needs the {tracker} package: "
        f"pip install 'fmscale[{tracker}]'"
    )


def to_tensorboard(runs: list[CellRun], out: Path) -> list[str]:
    """One log folder per cell, ``<out>/<CELL_LOG_NAME>``: its curves and final scalars as
    scalar events, its params as the hparams plugin's session (the HParams dashboard)."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise _missing("tensorboard") from exc
    lines = []
    for run in runs:
        folder = out / run.name
        if _read_text(folder / DIGEST_FILE) == run.digest:
            lines.append(f"{run.name}: unchanged ({folder})")
            continue
        fresh = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(fresh, ignore_errors=True)
        writer = EventFileWriter(str(fresh))
        now = time.time()
        start = Event(wall_time=now, summary=hparams_pb(run.params, trial_id=run.name))
        writer.add_event(start)
        points = [(k, s, v) for k, curve in run.curves.items() for s, v in curve]
        points += [(k, run.step, v) for k, v in run.final.items()]
        for tag, step, value in points:
            scalar = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(Event(wall_time=now, step=step, summary=scalar))
        writer.close()
        (fresh / DIGEST_FILE).write_text(run.digest)
        lines.append(f"{run.name}: {_swap(fresh, folder)} ({folder})")
    return lines


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _swap(fresh: Path, folder: Path) -> str:
    """Put ``fresh`` in ``folder``'s place; "replaced" or "written"."""
    if not folder.exists():
        fresh.rename(folder)
        return "written"
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old)
    return "replaced"


def to_mlflow(runs: list[CellRun], tracking_uri: str, experiment: str) -> list[str]:
    """One run per cell in ``experiment`` of the tracking store at ``tracking_uri``: its params,
    its cell keys and name as tags, its curves and final scalars as metrics with their steps."""
    # MLflow reports usage to its developers unless told not to; a user's own setting wins.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.entities import Metric, Param, RunStatus, RunTag
        from mlflow.tracking import MlflowClient

        if tracking_uri.startswith("sqlite:"):  # the SQL store's own imports
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise _missing("mlflow") from exc
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = client.create_experiment(experiment)
    else:
        experiment_id = found.experiment_id
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    lines = []
    for run in runs:
        name = run.name.replace("'", "\\'")
        old = client.search_runs([experiment_id], f"tags.`{CELL_TAG}` = '{name}'")
        if [r.data.tags.get(DIGEST_TAG) for r in old] == [run.digest]:
            lines.append(f"{run.name}: unchanged (run {old[0].info.run_id})")
            continue
        for r in old:
            client.delete_run(r.info.run_id)
        tags = {CELL_TAG: run.name, **{k: str(v) for k, v in run.cell.items()}}
        new = client.create_run(experiment_id, run_name=run.name, tags=tags)
        run_id = new.info.run_id
        stamp = int(new.info.start_time)
        params = [Param(k, str(v)) for k, v in run.params.items()]
        metrics = [Metric(k, v, stamp, s) for k, curve in run.curves.items() for s, v in curve]
        metrics += [Metric(k, v, stamp, run.step) for k, v in run.final.items()]
        for i in range(0, len(params), 100):  # MLflow's limits per log_batch call
            client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        # The digest last: a run cut short has none, so the next export replaces it.
        client.log_batch(run_id, tags=[RunTag(DIGEST_TAG, run.digest)])
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        lines.append(f"{run.name}: {'replaced' if old else 'written'} (run {run_id})")
    return lines


def export(
    results: str | Path,
    to: str,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
) -> list[str]:
    """Export the trained cells of ``results`` to a tracker; a line per cell and per note.

    ``to``: ``tensorboard`` (``out``: the log folder, default ``<results>/tensorboard``) or
    ``mlflow`` (``tracking_uri``: default ``sqlite:///<results>/mlflow.db``; ``experiment``:
    default the results folder's name).
    """
    if to not in TRACKERS:
        raise ExportError(f"--to {to}: use one of {', '.join(TRACKERS)}")
    other = {"--out": out} if to == "mlflow" else {"--tracking-uri": tracking_uri}
    other |= {"--experiment": experiment} if to == "tensorboard" else {}
    unused = [flag for flag, value in other.items() if value is not None]
    if unused:
        raise ExportError(f"{', '.join(unused)}: not used by --to {to}; leave it out")
    results = Path(results)
    runs, notes = read_runs(results)
    if to == "tensorboard":
        lines = to_tensorboard(runs, Path(out) if out else results / "tensorboard")
    else:
        uri = tracking_uri or f"sqlite:///{(results / 'mlflow.db').resolve()}"
        lines = to_mlflow(runs, uri, experiment or results.resolve().name)
    return notes + lines

"""fmscale export: a tiny study's cells read back with TensorBoard's and MLflow's own readers."""

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fmscale.cli import main
from fmscale.config import EvalConfig, TrainConfig, from_section
from fmscale.configfiles import flatten, read_yaml
from fmscale.data import DataConfig, build_dataset
from fmscale.evaluate import evaluate_cell
from fmscale.export import CELL_TAG, ExportError, export
from fmscale.layout import CELL_LOG_NAME, CELL_PATTERN
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec

SETTINGS = read_yaml(Path(__file__).with_name("tiny_config.yaml"))
EVALUATED = {"dataset": "synthetic", "arch": "mlp", "scale": "tiny", "n_train": 200, "seed": 0}
TRAINED = {**EVALUATED, "seed": 1}
UNTRAINED = {**EVALUATED, "scale": "small"}


def folder(results: Path, cell: dict) -> Path:
    return results / CELL_PATTERN.format(**cell)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A partial study: one cell evaluated, one trained only, one whose training never ended."""
    results = tmp_path_factory.mktemp("results")
    data = build_dataset(DataConfig.from_dict(SETTINGS["data"]), 200)
    fast = {"steps": 40, "batch_size": 16, "log_every": 10}
    fast |= {"trajectory_points": 2, "trajectory_samples": 50}
    cfg = from_section(TrainConfig, {**SETTINGS["train"], **fast}, "train")
    eval_cfg = from_section(EvalConfig, {**SETTINGS["evaluate"], "nfe": [2]}, "evaluate")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy 2-core machine: 10x slower with 2 threads
    try:
        for cell in (EVALUATED, TRAINED):
            spec = CellSpec(cell["arch"], cell["scale"], cell["n_train"], cell["seed"])
            run = folder(results, cell)
            train_cell(spec, data, cfg, run, extra_config=SETTINGS, progress=False)
        evaluate_cell(folder(results, EVALUATED), data, eval_cfg, device="cpu")
    finally:
        torch.set_num_threads(threads)
    (folder(results, UNTRAINED) / "ckpt").mkdir(parents=True)
    return results


@pytest.fixture
def results(study, tmp_path) -> Path:
    """A copy of the study to export into (each test writes its own tracker files)."""
    return Path(shutil.copytree(study, tmp_path / "results"))


def expected_params(results: Path, cell: dict) -> dict[str, str]:
    info = json.loads((folder(results, cell) / "cell.json").read_text())
    plain = (bool, int, float, str)
    flat = {k: v if isinstance(v, plain) else json.dumps(v) for k, v in flatten(info).items()}
    return {"dataset": cell["dataset"], **flat}


def test_tensorboard_events_hold_the_run_files(results, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.metadata import parse_session_start_info_plugin_data

    assert main(["export", str(results), "--to", "tensorboard"]) == 0
    printed = capsys.readouterr().out
    assert f"{folder(results, UNTRAINED)}: skipped, not trained" in printed
    assert f"{folder(results, TRAINED)}: not evaluated" in printed
    assert sorted(p.name for p in (results / "tensorboard" / "synthetic").iterdir()) == [
        "mlp_tiny_n200_seed0",
        "mlp_tiny_n200_seed1",
    ]
    for cell in (EVALUATED, TRAINED):
        run = folder(results, cell)
        acc = EventAccumulator(
            str(results / "tensorboard" / CELL_LOG_NAME.format(**cell)),
            size_guidance={"scalars": 0, "tensors": 0},
        ).Reload()
        log, trajectory = read_csv(run / "train_log.csv"), read_csv(run / "trajectory.csv")
        assert len(log) == 4 and len(trajectory) == 2
        for prefix, rows in (("train", log), ("trajectory", trajectory)):
            for column in rows[0].keys() - {"step"}:
                events = acc.Scalars(f"{prefix}/{column}")
                assert [e.step for e in events] == [int(r["step"]) for r in rows]
                assert [e.value for e in events] == [float(np.float32(r[column])) for r in rows]
        finals = {tag for tag in acc.Tags()["scalars"] if tag.startswith("final/")}
        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = parse_session_start_info_plugin_data(content).hparams
        params = expected_params(results, cell)
        assert {k for k in hparams if not k.startswith("metrics.")} == set(params)
        assert hparams["train.lr"].number_value == pytest.approx(0.002)
        assert hparams["seed"].number_value == cell["seed"]
        assert hparams["dataset"].string_value == "synthetic"
        assert hparams["train.ot_pairing"].bool_value is False
        assert hparams["trajectory_steps"].string_value == params["trajectory_steps"]
        if cell is TRAINED:
            assert not finals and set(hparams) == set(params)
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        assert len(finals) > 30
        for tag, value in [
            ("final/val_loss", metrics["val_loss"]),
            ("final/metrics/mmd2_pca", metrics["metrics"]["mmd2_pca"]),
            ("final/by_nfe/2/precision_pca", metrics["by_nfe"]["2"]["precision_pca"]),
        ]:
            [event] = acc.Scalars(tag)
            assert (event.step, event.value) == (40, float(np.float32(value)))
        assert hparams["metrics.solver"].string_value == metrics["solver"]


def test_mlflow_runs_hold_the_run_files(results):
    from mlflow.tracking import MlflowClient

    assert main(["export", str(results), "--to", "mlflow", "--experiment", "tiny"]) == 0
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(
        CELL_LOG_NAME.format(**c) for c in (EVALUATED, TRAINED)
    )
    for cell in (EVALUATED, TRAINED):
        [found] = [r for r in runs if r.data.tags["seed"] == str(cell["seed"])]
        assert found.data.tags[CELL_TAG] == CELL_LOG_NAME.format(**cell)
        assert found.data.tags["n_train"] == "200" and found.info.status == "FINISHED"
        params = expected_params(results, cell)
        metrics_params = {k: v for k, v in found.data.params.items() if k.startswith("metrics.")}
        assert {k: v for k, v in found.data.params.items() if k not in metrics_params} == {
            k: str(v) for k, v in params.items()
        }
        log = read_csv(folder(results, cell) / "train_log.csv")
        for column in ("loss", "lr", "grad_norm"):
            history = client.get_metric_history(found.info.run_id, f"train/{column}")
            assert [(m.step, m.value) for m in history] == [
                (int(r["step"]), float(r[column])) for r in log
            ]
        finals = {k: v for k, v in found.data.metrics.items() if k.startswith("final/")}
        if cell is TRAINED:
            assert not finals and not metrics_params
            continue
        metrics = json.loads((folder(results, cell) / "metrics.json").read_text())
        assert finals["final/val_loss_ratio"] == metrics["val_loss_ratio"]
        assert finals["final/metrics/mode_kl"] == metrics["metrics"]["mode_kl"]
        assert metrics_params["metrics.solver"] == metrics["solver"]
        [final] = client.get_metric_history(found.info.run_id, "final/val_loss")
        assert (final.step, final.value) == (40, metrics["val_loss"])


def test_reexport_keeps_unchanged_cells_and_replaces_changed_ones(results):
    from mlflow.tracking import MlflowClient

    evaluated, trained = (CELL_LOG_NAME.format(**c) for c in (EVALUATED, TRAINED))
    for to in ("tensorboard", "mlflow"):
        first = export(results, to)
        assert f"{evaluated}: written" in "\n".join(first)
        again = export(results, to)
        assert [line.split(" (")[0] for line in again[-2:]] == [
            f"{evaluated}: unchanged",
            f"{trained}: unchanged",
        ]
    metrics = folder(results, EVALUATED) / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "val_loss": 9.5}))
    for to in ("tensorboard", "mlflow"):
        lines = [line.split(" (")[0] for line in export(results, to)[-2:]]
        assert lines == [f"{evaluated}: replaced", f"{trained}: unchanged"]
    board = results / "tensorboard" / "synthetic"
    assert sorted(p.name for p in board.iterdir()) == [
        "mlp_tiny_n200_seed0",
        "mlp_tiny_n200_seed1",
    ]
    assert len(list((board / "mlp_tiny_n200_seed0").glob("events.out.tfevents.*"))) == 1
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(results.name)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [evaluated, trained]
    [mlp] = [r for r in runs if r.info.run_name == evaluated]
    assert mlp.data.metrics["final/val_loss"] == 9.5


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow"])
def test_a_missing_tracker_package_names_the_extra(results, monkeypatch, capsys, tracker):
    for name in [n for n in sys.modules if n == tracker or n.startswith(f"{tracker}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, tracker, None)
    assert main(["export", str(results), "--to", tracker]) == 2
    assert capsys.readouterr().err == (
        f"error: fmscale export --to {tracker} needs the {tracker} package: "
        f"pip install 'fmscale[{tracker}]'\n"
    )


def test_a_folder_without_trained_cells_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--to", "tensorboard"]) == 2
    assert f"error: {tmp_path}: no run folders (runs/" in capsys.readouterr().err
    missing = tmp_path / "missing"
    with pytest.raises(ExportError, match=f"{missing}: no such results folder"):
        export(missing, "mlflow")
    (folder(tmp_path, UNTRAINED) / "ckpt").mkdir(parents=True)
    with pytest.raises(ExportError, match="none of its 1 run folder"):
        export(tmp_path, "tensorboard")
    assert not (tmp_path / "tensorboard").exists()


def test_a_flag_of_the_other_tracker_is_refused(results):
    with pytest.raises(ExportError, match="--out: not used by --to mlflow"):
        export(results, "mlflow", out=results / "board")
    with pytest.raises(ExportError, match="--tracking-uri, --experiment: not used"):
        export(results, "tensorboard", tracking_uri="sqlite:///x.db", experiment="x")


def test_stale_metrics_and_a_corrupt_cell_are_noted_not_fatal(results):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (folder(results, TRAINED) / "cell.json").write_text("{not json")
    cell_json = folder(results, EVALUATED) / "cell.json"
    cell_json.write_text(cell_json.read_text() + "\n")  # another training run: metrics are stale
    lines = export(results, "tensorboard")
    assert f"{folder(results, TRAINED)}: skipped, cell.json unreadable (" in "\n".join(lines)
    assert f"{folder(results, EVALUATED)}: metrics.json scored another training run" in lines[1]
    assert lines[-1].startswith(f"{CELL_LOG_NAME.format(**EVALUATED)}: written")
    acc = EventAccumulator(str(results / "tensorboard" / CELL_LOG_NAME.format(**EVALUATED)))
    tags = acc.Reload().Tags()["scalars"]
    assert "train/loss" in tags and not [t for t in tags if t.startswith("final/")]

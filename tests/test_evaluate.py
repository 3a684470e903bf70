"""Evaluating a cell: metrics.json, reference rows, determinism, mode metrics, bad inputs."""

import json
from pathlib import Path

import pytest

from fmscale.config import EvalConfig, TrainConfig, from_section
from fmscale.configfiles import read_yaml
from fmscale.data import DataConfig, build_dataset
from fmscale.evaluate import CellError, evaluate_cell, load_cell, reference_rows, synthetic_metrics
from fmscale.scoring import generalisation_gap, pair_losses, training_loss, validation_loss
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec

SETTINGS = read_yaml(Path(__file__).with_name("tiny_config.yaml"))


@pytest.fixture(scope="module")
def data():
    return build_dataset(DataConfig.from_dict(SETTINGS["data"]), 1000)


@pytest.fixture(scope="module")
def eval_cfg():
    return from_section(EvalConfig, SETTINGS["evaluate"], "evaluate")


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("run")
    cfg = from_section(TrainConfig, {**SETTINGS["train"], "steps": 300}, "train")
    train_cell(CellSpec("mlp", "tiny", 1000, 0), data, cfg, out, progress=False)
    return out


def test_metrics_json_has_every_metric_per_nfe_and_beats_v0(run, data, eval_cfg):
    result = evaluate_cell(run, data, eval_cfg, device="cpu")
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["val_loss"] == result["val_loss"]
    assert result["val_loss"] < 0.8 * result["val_loss_zero_velocity"]
    assert abs(result["val_loss_zero_velocity"] - 2.0) < 0.2
    assert result["gap"] == pytest.approx(result["val_loss"] - result["train_loss"])
    assert result["gap_ratio"] == pytest.approx(result["val_loss"] / result["train_loss"])
    assert set(result["by_nfe"]) == {"2", "8"} and result["headline_nfe"] == 8
    for key in (
        "fd",
        "fd_pca",
        "mmd2",
        "mmd2_pca",
        "precision_pca",
        "recall",
        "density",
        "coverage",
        "one_nn_acc",
        "sw2",
        "memorised_fraction",
        "nn_train_test_ratio",
        "variance_ratio",
        "modes_covered",
        "mode_kl",
        "logpdf_per_dim",
        "on_mode_fraction",
    ):
        assert key in result["metrics"], key


def test_train_loss_is_val_loss_when_the_rows_are_the_validation_rows(run, data):
    model, _ = load_cell(run)
    assert training_loss(model, data.val, len(data.val)) == validation_loss(model, data.val)


def test_gap_standard_error_is_that_of_the_paired_draws(run, data):
    """gap_se = sd(val_i - train_i) / sqrt(n) over the shared (noise, time) draws: a model
    scored on its validation rows as 'training rows' has gap 0 and gap_se 0; on other rows the
    SE matches the per-draw losses."""
    model, _ = load_cell(run)
    same = generalisation_gap(model, data.val, data.val)
    assert same["gap"] == 0 and same["gap_se"] == 0
    train = data.train(40)
    result = generalisation_gap(model, data.val, train)
    val_i, _ = pair_losses(model, data.val, len(data.val))
    train_i, _ = pair_losses(model, train, len(data.val))
    diff = (val_i - train_i).numpy()
    assert result["gap"] == pytest.approx(diff.mean())
    assert result["gap_se"] == pytest.approx(diff.std(ddof=1) / len(diff) ** 0.5)
    assert 0 < result["gap_se"] < abs(diff).mean()


def test_evaluation_is_deterministic(run, data, eval_cfg, tmp_path):
    a = evaluate_cell(run, data, eval_cfg, device="cpu", out=tmp_path / "a.json")
    b = evaluate_cell(run, data, eval_cfg, device="cpu", out=tmp_path / "b.json")
    assert a["metrics"] == b["metrics"] and a["val_loss"] == b["val_loss"]


def test_reference_rows_order_as_expected(data, eval_cfg):
    refs = reference_rows(data, 500, eval_cfg)
    holdout, gauss, memo = refs["real_holdout"], refs["gaussian_fit"], refs["memoriser"]
    assert memo["memorised_fraction"] == 1.0 and memo["nn_train_test_ratio"] < 1e-3
    assert holdout["memorised_fraction"] < 0.05
    assert holdout["modes_covered"] == holdout["modes_total"]
    assert gauss["precision_pca"] < holdout["precision_pca"]
    assert gauss["mode_kl"] > holdout["mode_kl"]
    exact, flow = refs["exact_field"], refs["empirical_flow"]
    assert exact["val_loss_ratio"] < 0.5 < 1 < flow["val_loss_ratio"]
    assert exact["memorised_fraction"] < 0.05
    # At NFE 8 the memoriser's flow ends some samples between close rows, not on one.
    assert flow["memorised_fraction"] > holdout["memorised_fraction"] + 0.3
    assert exact["modes_covered"] == exact["modes_total"]


def test_empirical_flow_is_scored_as_memorised(data, eval_cfg):
    """The memorisation criterion sees a perfect memoriser. At NFE 8 the flow's last
    evaluation (t = 7/8) cannot yet tell the tiny data's close rows apart (0.62 at n = 500);
    from NFE 16 on it lands on them."""
    from dataclasses import replace

    flow = reference_rows(data, 500, replace(eval_cfg, nfe=(16,)))["empirical_flow"]
    assert flow["memorised_fraction"] >= 0.95 and flow["nn_train_test_ratio"] < 0.01


def test_empirical_flow_above_its_cap_is_skipped_with_the_reason(data, eval_cfg):
    from dataclasses import replace

    refs = reference_rows(data, 500, replace(eval_cfg, empirical_flow_max_n=499))
    assert refs["empirical_flow"] == {
        "skipped": "n_train=500 is above evaluate.empirical_flow_max_n=499 (each velocity "
        "evaluation costs n_train x D per sample)"
    }


def test_file_data_has_no_exact_field(data, eval_cfg):
    from dataclasses import replace

    refs = reference_rows(replace(data, mixture=None), 500, eval_cfg)
    assert "exact_field" not in refs and "val_loss_ratio" in refs["empirical_flow"]


def test_synthetic_metrics_on_real_and_collapsed_samples(data):
    real = synthetic_metrics(data.test, data)
    assert real["modes_covered"] == 4 and real["on_mode_fraction"] > 0.98 and real["mode_kl"] < 0.05
    comp = data.mixture.assign(data.unstandardise(data.test))
    collapsed = data.test[comp == comp.mode().values][:100]
    one = synthetic_metrics(collapsed, data)
    assert one["modes_covered"] == 1 and one["mode_kl"] > 0.5


def test_missing_or_mismatched_cell_is_reported(tmp_path, run, data, eval_cfg):
    with pytest.raises(CellError, match="cell.json: missing"):
        evaluate_cell(tmp_path, data, eval_cfg)
    other = build_dataset(DataConfig.from_dict({**SETTINGS["data"], "seed": 5}), 1000)
    with pytest.raises(CellError, match="trained on data"):
        evaluate_cell(run, other, eval_cfg)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cell.json").write_text((run / "cell.json").read_text())
    (bad / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(CellError, match="unreadable"):
        evaluate_cell(bad, data, eval_cfg)


def test_bad_eval_settings_name_the_key():
    with pytest.raises(ValueError, match="evaluate.nfe"):
        from_section(EvalConfig, {"nfe": [3], "solver": "heun"}, "evaluate")
    with pytest.raises(ValueError, match="evaluate.solver"):
        from_section(EvalConfig, {"solver": "rk45"}, "evaluate")

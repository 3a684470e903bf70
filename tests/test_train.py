"""Training one cell: learning, outputs, checkpoints, exact resume after SIGKILL, signals, NaN."""

import csv
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fmscale.config import TrainConfig, from_section
from fmscale.configfiles import read_yaml
from fmscale.data import DataConfig, build_dataset
from fmscale.errors import NonFiniteLoss, RequiresFused
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec, Trainer

CONFIG = Path(__file__).with_name("tiny_config.yaml")
SETTINGS = read_yaml(CONFIG)


@pytest.fixture(scope="module")
def data():
    return build_dataset(DataConfig.from_dict(SETTINGS["data"]), 1000)


def cfg(**kw):
    return from_section(TrainConfig, {**SETTINGS["train"], **kw}, "train")


def test_training_learns_and_writes_its_outputs(tmp_path, data):
    cell = train_cell(
        CellSpec("mlp", "tiny", 500, 0), data, cfg(steps=150), tmp_path, progress=False
    )
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    assert log[0] == "step,loss,lr,grad_norm,steps_per_s" and len(log) == 1 + 150 // 25
    first, last = float(log[1].split(",")[1]), float(log[-1].split(",")[1])
    assert last < first and last < 1.6  # v = 0 scores 2.0
    assert set(load_file(tmp_path / "model.safetensors")) == _state_keys()
    for key in (
        "row",
        "n_params",
        "data_fingerprint",
        "versions",
        "device",
        "git_revision",
        "wall_time_s",
        "steps_per_s",
    ):
        assert cell[key] is not None or key == "git_revision", key
    assert json.loads((tmp_path / "cell.json").read_text())["steps"] == 150
    assert cell["mamba_kernel"] is None  # no Mamba block in this cell
    assert {"torch", "torch_cuda", "mamba-ssm", "causal-conv1d"} <= set(cell["versions"])
    assert cell["samples_seen"] == 150 * 64 and cell["epochs"] == pytest.approx(150 * 64 / 500)
    # An MLP step costs ~6 FLOPs per parameter per row (2 forward, 4 backward), sampling ~2.
    per_step = 6 * cell["n_params"] * 64
    assert 0.8 < cell["train_flops"] / (150 * per_step) < 1.1
    assert 0.8 < cell["sampling_flops_per_sample_per_nfe"] / (2 * cell["n_params"]) < 1.1
    assert cell["flops_estimated_part"] is None
    with (tmp_path / "trajectory.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 5, 9, 19, 38, 75, 150]  # 150 / 2^k
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert cell["trajectory_steps"] == [2, 5, 9, 19, 38, 75, 150]


def test_snapshots_are_thinned_to_their_share_of_the_training_flops():
    from fmscale.trajectory import affordable_points

    cheap = TrainConfig(steps=1000, trajectory_points=7, trajectory_max_share=0.2)
    assert affordable_points(cheap, snapshot_flops=10, step_flops=1) == 7
    assert affordable_points(cheap, snapshot_flops=50, step_flops=1) == 4  # 0.2 x 1000 / 50
    assert affordable_points(cheap, snapshot_flops=10**6, step_flops=1) == 1  # the last step
    off = TrainConfig(steps=1000, trajectory_points=0)
    assert affordable_points(off, snapshot_flops=1, step_flops=1) == 0


def test_a_mamba_cell_records_the_kernel_it_ran(tmp_path, data):
    cell = train_cell(CellSpec("mamba", "tiny", 100, 0), data, cfg(steps=2), tmp_path, None, False)
    assert cell["mamba_kernel"] == "scan"  # CPU: the pure-PyTorch scan
    assert cell["mamba_kernel_reason"] == "cpu inputs run the scan"


def test_require_fused_fails_a_mamba_cell_on_the_scan_before_training(tmp_path, data):
    with pytest.raises(RequiresFused, match="require_fused is true, but Mamba would run its"):
        train_cell(
            CellSpec("mamba", "tiny", 100, 0), data, cfg(steps=2, require_fused=True), tmp_path
        )
    assert not (tmp_path / "ckpt").exists()  # nothing trained, nothing to resume
    # An arch without Mamba blocks has no kernel to require.
    cell = train_cell(
        CellSpec("mlp", "tiny", 100, 0), data, cfg(steps=2, require_fused=True), tmp_path / "m"
    )
    assert cell["mamba_kernel"] is None


def test_a_lap_is_read_after_the_device_sync():
    from fmscale.train.bookkeeping import Stopwatch

    watch = Stopwatch(sync=lambda: time.sleep(0.05))  # a device still running queued steps
    assert watch.lap() >= 0.05


def test_an_epoch_budget_trains_each_cell_its_own_passes(tmp_path, data):
    cell = train_cell(
        CellSpec("mlp", "tiny", 100, 0),
        data,
        cfg(steps=None, epochs=3, ckpt_every=5),
        tmp_path,
        progress=False,
    )
    assert cell["steps"] == 5 and cell["train"]["steps"] == 5  # ceil(3 x 100 / 64)
    assert cell["train"]["epochs"] == 3 and cell["epochs"] == pytest.approx(5 * 64 / 100)


def _state_keys():
    """The keys of the default field around mlp/tiny at D = 64 (the network under ``net.``)."""
    from fmscale.flow import VelocityField
    from fmscale.models import create_model

    net = create_model("mlp", "tiny", data_dim=64)
    return set(VelocityField(net, TrainConfig().parameterisation, 64).state_dict())


def _cli(out, *extra):
    return [
        sys.executable,
        "-m",
        "fmscale.cli",
        "train",
        "--arch",
        "mlp",
        "--scale",
        "tiny",
        "--n-train",
        "500",
        "--seed",
        "3",
        "--config",
        str(CONFIG),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _weights(run):
    return load_file(Path(run) / "model.safetensors")


def test_sigkill_then_rerun_is_bit_identical_on_cpu(tmp_path):
    """Kill a real training process after its first checkpoint; the rerun resumes from it and
    ends with exactly the weights (and metrics) of an uninterrupted run. CPU only: on CUDA,
    atomicAdd in kernels such as fused Mamba's backward makes the last bits vary
    (docs/cluster.md)."""
    args = ["--steps", "400", "--ckpt-every", "50"]
    subprocess.run(_cli(tmp_path / "full", *args), check=True, capture_output=True)
    proc = subprocess.Popen(
        _cli(tmp_path / "killed", *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not list((tmp_path / "killed" / "ckpt").glob("*.sha256")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_done = max(
        int(p.stem.split("_")[1]) for p in (tmp_path / "killed" / "ckpt").glob("*.sha256")
    )
    assert 0 < steps_done < 400, "the kill must land mid-run"
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    subprocess.run(_cli(tmp_path / "killed", *args), check=True, capture_output=True)
    cell = json.loads((tmp_path / "killed" / "cell.json").read_text())
    assert cell["resumed_from_step"] >= steps_done
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "killed")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    for run in ("full", "killed"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fmscale.cli",
                "evaluate",
                str(tmp_path / run),
                "--config",
                str(CONFIG),
                "--device",
                "cpu",
            ],
            check=True,
            capture_output=True,
        )
    m_full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    m_resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    for key in ("val_loss", "metrics", "by_nfe"):
        assert m_full[key] == m_resumed[key]


def test_sigterm_writes_checkpoint_and_exits_nonzero(tmp_path):
    proc = subprocess.Popen(
        _cli(tmp_path, "--steps", "100000", "--ckpt-every", "100000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    live_log = tmp_path / "ckpt" / "train_log.csv"  # published to <out>/ at the end
    while not live_log.exists() or len(live_log.read_text().splitlines()) < 2:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "preempted" in err
    assert list((tmp_path / "ckpt").glob("step_*.pt"))


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path, data, caplog):
    spec = CellSpec("mlp", "tiny", 500, 0)
    train_cell(spec, data, cfg(steps=100, keep_ckpts=2), tmp_path, progress=False)
    newest = tmp_path / "ckpt" / "step_00000100.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    with caplog.at_level(logging.WARNING):
        assert Trainer(spec, data, cfg(steps=100), tmp_path).resume() == 50
    assert "sha256 mismatch" in caplog.text
    (tmp_path / "ckpt" / "step_00000050.pt").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert Trainer(spec, data, cfg(steps=100), tmp_path).resume() == 0
    assert "starting over" in caplog.text


def test_checkpoint_of_another_cell_is_refused(tmp_path, data):
    train_cell(CellSpec("mlp", "tiny", 500, 0), data, cfg(steps=50), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another cell or settings"):
        Trainer(CellSpec("mlp", "tiny", 500, 1), data, cfg(steps=50), tmp_path).resume()


def test_checkpoint_of_another_device_type_is_refused_naming_both(tmp_path, data):
    """A GPU checkpoint resumed on CPU (here: a CPU checkpoint relabelled as written on CUDA)."""
    train_cell(CellSpec("mlp", "tiny", 500, 0), data, cfg(steps=50), tmp_path, progress=False)
    trainer = Trainer(CellSpec("mlp", "tiny", 500, 0), data, cfg(steps=50), tmp_path)
    state = trainer.store.load_latest()
    trainer.store.save({**state, "device_type": "cuda"}, state["step"])
    with pytest.raises(ValueError, match="written on cuda and this run is on cpu"):
        trainer.resume()
    assert trainer.store.load_latest()["step"] == 50  # nothing lost


def test_nan_loss_stops_with_the_step_and_keeps_last_checkpoint(tmp_path, data, monkeypatch):
    import fmscale.train.loop as train_mod

    real = train_mod.cfm_loss
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] == 63 else loss

    monkeypatch.setattr(train_mod, "cfm_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match="at step 63"):
        train_cell(CellSpec("mlp", "tiny", 500, 0), data, cfg(steps=100), tmp_path, progress=False)
    assert [p.name for p in (tmp_path / "ckpt").glob("*.pt")] == ["step_00000050.pt"]


def test_warmup_cosine_and_ema_warmup():
    from fmscale.train.schedules import ema_decay_at, lr_factor

    c = cfg(steps=1000, warmup_frac=0.1, min_lr_frac=0.1, ema_decay=0.999)
    assert lr_factor(0, c) == pytest.approx(0.01) and lr_factor(99, c) == pytest.approx(1.0)
    assert lr_factor(999, c) == pytest.approx(0.1, abs=1e-3)
    assert ema_decay_at(0, c) == pytest.approx(0.1) and ema_decay_at(10**6, c) == 0.999
    # After 200 steps the initial weights' share in the EMA is negligible (not ~91% as with
    # a fixed 0.9999 decay): prod of decays over steps.
    share = 1.0
    for s in range(200):
        share *= ema_decay_at(s, c)
    assert share < 0.05


def test_bad_train_settings_name_the_key():
    with pytest.raises(ValueError, match="train: unknown key"):
        cfg(step=3)
    with pytest.raises(ValueError, match="train.steps"):
        cfg(steps=0)
    with pytest.raises(ValueError, match="train.lr"):
        cfg(lr="fast")

"""Faults around one cell's training: edited settings, interrupted logs, two runs on one folder,
incomplete checkpoints, failing writes and memory that does not suffice."""

import csv
import errno
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import _cli  # the same tiny `fmscale train` command line

import fmscale.train.loop as train_mod
from fmscale import runlock
from fmscale.checkpoint import CheckpointStore
from fmscale.config import TrainConfig, from_section
from fmscale.configfiles import read_yaml
from fmscale.data import DataConfig, build_dataset
from fmscale.errors import OutOfMemory, Preempted
from fmscale.files import CannotWrite
from fmscale.flow import VelocityField
from fmscale.models import create_model
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec, Trainer

CONFIG = Path(__file__).with_name("tiny_config.yaml")
SETTINGS = read_yaml(CONFIG)
SPEC = CellSpec("mlp", "tiny", 500, 0)
ALLOCATOR = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.fixture(scope="module")
def data():
    return build_dataset(DataConfig.from_dict(SETTINGS["data"]), 1000)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data):
    """An uninterrupted 100-step run: log rows every 25 steps, checkpoints every 50."""
    out = tmp_path_factory.mktemp("full")
    train(out, data, steps=100)
    return out


def cfg(**kw):
    return from_section(TrainConfig, {**SETTINGS["train"], **kw}, "train")


def train(out, data, spec=SPEC, **kw):
    return train_cell(spec, data, cfg(**kw), out, progress=False)


def log_rows(run):
    """train_log.csv without its timing column."""
    with (Path(run) / "train_log.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "steps_per_s"} for row in csv.DictReader(f)]


def trajectory_rows(run):
    with (Path(run) / "trajectory.csv").open() as f:
        return list(csv.DictReader(f))


def assert_same_weights(a, b):
    wa, wb = load_file(Path(a) / "model.safetensors"), load_file(Path(b) / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def after_step(monkeypatch, step, action):
    """Run ``action`` right after training step ``step``."""
    real = Trainer.step

    def step_then_act(self):
        result = real(self)
        if self.steps_done == step:
            action()
        return result

    monkeypatch.setattr(Trainer, "step", step_then_act)


# 1. A changed setting retrains the cell; another cell is still refused.


def test_changed_setting_sets_checkpoints_aside_and_retrains(tmp_path, data, caplog):
    fresh = train(tmp_path / "fresh", data, steps=60)
    assert fresh["restarted_from_stale"] is False
    out = tmp_path / "edited"
    train(out, data, steps=50)
    with caplog.at_level(logging.WARNING):
        cell = train(out, data, steps=60)
    assert "train.steps: 50 -> 60" in caplog.text
    assert cell["restarted_from_stale"] is True and cell["resumed_from_step"] == 0
    assert (out / "ckpt.stale" / "step_00000050.pt").exists()
    assert_same_weights(out, tmp_path / "fresh")
    assert log_rows(out) == log_rows(tmp_path / "fresh")
    (out / "ckpt.stale" / "older").touch()
    train(out, data, steps=70)
    assert not (out / "ckpt.stale" / "older").exists(), "an older ckpt.stale is replaced"
    assert (out / "ckpt.stale" / "step_00000060.pt").exists()


def test_changed_data_retrains_and_another_cell_is_still_refused(tmp_path, data, caplog):
    other = build_dataset(DataConfig.from_dict({**SETTINGS["data"], "seed": 1}), 1000)
    train(tmp_path, data, steps=50)
    with caplog.at_level(logging.WARNING):
        assert train(tmp_path, other, steps=50)["restarted_from_stale"] is True
    assert f"data: '{data.fingerprint}' -> '{other.fingerprint}'" in caplog.text
    with pytest.raises(ValueError, match="another cell"):
        Trainer(CellSpec("mlp", "tiny", 500, 1), other, cfg(steps=50), tmp_path).resume()
    assert (tmp_path / "ckpt" / "step_00000050.pt").exists(), "a refused checkpoint stays"


# 2. The loss history survives interruptions and the deletion of the declared output.


def test_sigterm_off_a_log_boundary_then_resume_gives_the_uninterrupted_log(
    tmp_path, data, full_run, monkeypatch
):
    with monkeypatch.context() as m:
        after_step(m, 37, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(Preempted, match="at step 37"):
            train(tmp_path, data, steps=100)
    (tmp_path / "train_log.csv").unlink(missing_ok=True)  # as --rerun-incomplete does
    assert train(tmp_path, data, steps=100)["resumed_from_step"] == 37
    assert log_rows(tmp_path) == log_rows(full_run)
    assert trajectory_rows(tmp_path) == trajectory_rows(full_run)
    assert_same_weights(tmp_path, full_run)


class _Crash(Exception):
    pass


def test_crash_after_rows_past_the_checkpoint_then_resume_gives_the_uninterrupted_log(
    tmp_path, data, full_run, monkeypatch
):
    def crash():
        raise _Crash

    with monkeypatch.context() as m:
        after_step(m, 80, crash)  # rows 25, 50, 75 written; last checkpoint at 50
        with pytest.raises(_Crash):
            train(tmp_path, data, steps=100)
    (tmp_path / "train_log.csv").unlink(missing_ok=True)
    assert train(tmp_path, data, steps=100)["resumed_from_step"] == 50
    assert log_rows(tmp_path) == log_rows(full_run)


def test_a_snapshot_past_the_checkpoint_is_scored_again_on_resume(tmp_path, data, monkeypatch):
    """Snapshots at 2, 4, 8, 15, 30, 60, 120; checkpoints at 50, 100; a crash at 80."""
    uninterrupted = train(tmp_path / "full", data, steps=120)
    with monkeypatch.context() as m:
        after_step(m, 80, lambda: (_ for _ in ()).throw(_Crash()))
        with pytest.raises(_Crash):
            train(tmp_path / "run", data, steps=120)
    live = trajectory_rows(tmp_path / "run" / "ckpt")
    assert [row["step"] for row in live] == ["2", "4", "8", "15", "30", "60"]
    assert train(tmp_path / "run", data, steps=120)["resumed_from_step"] == 50
    assert trajectory_rows(tmp_path / "run") == trajectory_rows(tmp_path / "full")
    assert uninterrupted["steps"] == 120


# 3. Two processes on one --out.


def _wait_for_rows(live_log, proc):
    deadline = time.time() + 120
    while not live_log.exists() or len(live_log.read_text().splitlines()) < 2:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)


def test_second_train_on_the_same_out_is_refused_at_once(tmp_path):
    long = ["--steps", "100000", "--ckpt-every", "100000"]
    first = subprocess.Popen(
        _cli(tmp_path, *long), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_rows(tmp_path / "ckpt" / "train_log.csv", first)
        second = subprocess.run(_cli(tmp_path, *long), capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert f"{tmp_path} is already being trained by pid {first.pid}" in second.stderr
        assert first.poll() is None, "the first run goes on"
    finally:
        first.kill()
        first.wait()
    # A killed holder leaves no stale lock behind.
    third = subprocess.run(_cli(tmp_path, "--steps", "30"), capture_output=True, text=True)
    assert third.returncode == 0, third.stderr


def test_a_filesystem_without_flock_trains_unlocked_with_a_warning(
    tmp_path, data, monkeypatch, caplog
):
    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(runlock.fcntl, "flock", no_flock)
    with caplog.at_level(logging.WARNING):
        assert train(tmp_path, data, steps=25)["steps"] == 25
    assert f"cannot lock {tmp_path / '.train.lock'} (Function not implemented)" in caplog.text


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, b"pid 4242 on node17 since Thu Dec  3 01:00:00 2026", 0)
print("held", flush=True)
time.sleep(600)
"""
"""Holds the lock as a node that failed does on NFS: the flock stays, nothing touches it."""


@pytest.fixture
def held_lock(tmp_path):
    """A lock on ``tmp_path/.train.lock`` held by a process that never lets go."""
    path = tmp_path / runlock.LOCK_NAME
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    yield path
    holder.kill()
    holder.wait()


def test_a_lock_silent_past_its_limit_is_broken_with_a_log_line(held_lock, caplog):
    an_hour_ago = time.time() - 3600
    os.utime(held_lock, (an_hour_ago, an_hour_ago))
    with caplog.at_level(logging.WARNING), runlock.cell_lock(held_lock.parent):
        mine = held_lock.read_text()
        with pytest.raises(runlock.CellBusy, match=r"touched 0 s ago"):
            with runlock.cell_lock(held_lock.parent):  # the broken lock is this run's now
                pass
    assert mine.startswith(f"pid {os.getpid()} on ")
    assert f"breaking the stale lock {held_lock}: held by pid 4242 on node17" in caplog.text
    assert "untouched for 3600 s" in caplog.text


def test_a_lock_touched_recently_is_respected(held_lock):
    ten_minutes_ago = time.time() - 600
    os.utime(held_lock, (ten_minutes_ago, ten_minutes_ago))
    with pytest.raises(runlock.CellBusy, match=r"by pid 4242 on node17 .*touched 600 s ago"):
        with runlock.cell_lock(held_lock.parent):
            pass
    assert "node17" in held_lock.read_text()  # neither broken nor overwritten


def test_a_held_lock_is_touched_while_its_run_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT_S", 0.05)
    path = tmp_path / runlock.LOCK_NAME
    with runlock.cell_lock(tmp_path):
        os.utime(path, (0, 0))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 5


# 4. A checkpoint with a valid digest but missing keys.


def test_checkpoint_missing_keys_is_skipped_naming_file_and_keys(tmp_path, data, caplog):
    train(tmp_path, data, steps=100)
    newest = tmp_path / "ckpt" / "step_00000100.pt"
    state = torch.load(newest, weights_only=True)
    del state["opt"], state["sched"]
    CheckpointStore(tmp_path / "ckpt").save(state, 100)  # a valid digest
    with caplog.at_level(logging.WARNING):
        assert Trainer(SPEC, data, cfg(steps=100), tmp_path).resume() == 50
    assert f"skipping checkpoint {newest}: missing keys opt, sched" in caplog.text


# 5. A full disk and a read-only results folder.


def _failing_write(monkeypatch, name, error):
    """Path.write_bytes of ``name`` writes half its content, then raises ``error``."""
    real = Path.write_bytes

    def write_bytes(self, content):
        if self.name == name:
            real(self, content[: len(content) // 2])
            raise OSError(error, os.strerror(error), str(self))
        return real(self, content)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_full_disk_names_the_checkpoint_and_leaves_no_partial_file(tmp_path, data, monkeypatch):
    with monkeypatch.context() as m:
        _failing_write(m, "step_00000100.pt.tmp", errno.ENOSPC)
        with pytest.raises(CannotWrite) as exc:
            train(tmp_path, data, steps=100)
    path = tmp_path / "ckpt" / "step_00000100.pt"
    assert str(exc.value) == f"cannot write {path}: No space left on device"
    assert exc.value.errno == errno.ENOSPC and isinstance(exc.value, OSError)
    assert not list(tmp_path.rglob("*.tmp"))
    assert Trainer(SPEC, data, cfg(steps=100), tmp_path).resume() == 50


def test_unwritable_output_names_it(tmp_path, data, monkeypatch):
    _failing_write(monkeypatch, "model.safetensors.tmp", errno.EACCES)
    with pytest.raises(CannotWrite) as exc:
        train(tmp_path, data, steps=25)
    assert str(exc.value) == f"cannot write {tmp_path / 'model.safetensors'}: Permission denied"
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_names_the_path(tmp_path, data):
    out = tmp_path / "results"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(CannotWrite, match=rf"cannot write {re.escape(str(out))}/\S+: Perm"):
            train(out, data, steps=25)
    finally:
        out.chmod(0o755)


# 6. A model or batch that does not fit in memory.


def _assert_names_the_size(message):
    net = create_model("mlp", "tiny", data_dim=64)
    field = VelocityField(net, TrainConfig().parameterisation, 64)
    n_params = sum(p.numel() for p in field.parameters())
    assert f"{n_params:,} parameters" in message
    assert re.search(r"~\d+(\.\d+)? [kMGT]?B", message)
    assert "batch_size=64" in message and "64-dim" in message
    assert "lower train.batch_size" in message


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(ALLOCATOR),
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes."),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_model_that_does_not_fit_names_its_size(tmp_path, data, monkeypatch, error):
    def no_memory(*args, **kw):
        raise error

    monkeypatch.setattr(torch.nn.Module, "to", no_memory)
    with pytest.raises(OutOfMemory) as exc:
        Trainer(SPEC, data, cfg(), tmp_path)
    _assert_names_the_size(str(exc.value))


def test_first_step_that_does_not_fit_names_its_size(tmp_path, data, monkeypatch):
    def no_memory(*args):
        raise RuntimeError(ALLOCATOR)

    monkeypatch.setattr(train_mod, "cfm_loss", no_memory)
    with pytest.raises(OutOfMemory) as exc:
        train(tmp_path, data, steps=50)
    _assert_names_the_size(str(exc.value))


def test_other_runtime_errors_are_not_taken_for_memory(tmp_path, data, monkeypatch):
    def broken(*args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(train_mod, "cfm_loss", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as exc:
        train(tmp_path, data, steps=50)
    assert not isinstance(exc.value, OutOfMemory)

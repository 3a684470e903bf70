"""Devices: a job on a machine with several GPUs takes one of its own."""

import fcntl
import os
import threading
import time

import pytest
import torch

from fmscale import devices
from fmscale.devices import claim_gpu, pick_device, release_gpus


@pytest.fixture(autouse=True)
def _release():
    yield
    release_gpus()


def test_each_claim_takes_a_free_gpu(tmp_path):
    names = ["gpu-a", "gpu-b", "gpu-c"]
    assert [claim_gpu(names, tmp_path) for _ in names] == [0, 1, 2]


def test_a_claim_waits_for_a_gpu_to_be_released(tmp_path, caplog):
    names = ["gpu-a", "gpu-b"]
    claim_gpu(names, tmp_path), claim_gpu(names, tmp_path)
    first = devices._held[0]

    def finish_the_first_job():
        time.sleep(0.3)
        devices._held.remove(first)
        devices.os.close(first)

    threading.Thread(target=finish_the_first_job).start()
    with caplog.at_level("WARNING", logger="fmscale.devices"):
        assert claim_gpu(names, tmp_path, poll_s=0.1) == 0
    assert "every GPU is held" in caplog.text


def test_cuda_on_a_machine_with_several_gpus_names_the_one_claimed(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.GPU_LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(devices, "_gpu_name", lambda index: f"gpu{index}")
    assert [pick_device("cuda"), pick_device("auto")] == [
        torch.device("cuda:0"),
        torch.device("cuda:1"),
    ]
    assert pick_device("cuda:1") == torch.device("cuda:1")  # an explicit index is taken as is


def test_one_gpu_on_a_workstation_is_locked_so_concurrent_jobs_take_turns(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.GPU_LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(devices.SLURM_JOB_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(devices, "_gpu_name", lambda index: f"gpu{index}")
    assert pick_device("cuda") == torch.device("cuda:0")
    assert [p.name for p in tmp_path.iterdir()] == ["gpu0.lock"]
    fd = os.open(tmp_path / "gpu0.lock", os.O_RDONLY)  # what a second job's claim tries
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_the_gpu_of_a_slurm_job_is_its_own_and_not_locked(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.GPU_LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(devices.SLURM_JOB_ENV, "1234")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda") == torch.device("cuda") and not list(tmp_path.iterdir())


def test_cuda_without_a_gpu_fails_at_once():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="CUDA is not available; use --device cpu"):
        pick_device("cuda")

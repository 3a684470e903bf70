"""fmscale plan: what a study costs, counted as the jobs count it, and scheduled."""

import json
import re

import numpy as np
import pytest
import torch
from test_workflow import ROOT, TINY, job_counts, snakemake

from fmscale import cpucost
from fmscale.cli import main
from fmscale.config import TrainConfig
from fmscale.configfiles import merge_configs, read_yaml
from fmscale.cpucost import ArchCost, CpuCosts
from fmscale.flops import count_flops
from fmscale.flow import build_field
from fmscale.models import resolve_row
from fmscale.opcount import PHASES, arch_ops
from fmscale.plan import SNAKEMAKE_START_S, cpu_plan, gpu_cell_seconds, jobs_per_rule, plan
from fmscale.schedule import Job, simulate, wall_times
from fmscale.study import load_study

RAW = merge_configs(read_yaml(ROOT / "config.yaml"), read_yaml(TINY))


def test_jobs_per_rule_are_what_snakemake_plans(tmp_path):
    raw = merge_configs(RAW, {"results": str(tmp_path / "results")})
    config = tmp_path / "c.yaml"
    config.write_text(__import__("yaml").safe_dump(raw))
    planned = job_counts(snakemake("-n", "--configfile", str(config)).stdout)
    jobs = jobs_per_rule(load_study(raw))
    assert {**jobs, "total": sum(jobs.values())} == planned


def test_train_flops_are_one_counted_step_times_the_steps_of_each_cell():
    study = load_study(merge_configs(RAW, {"train": {"epochs": 4, "steps": None}}))
    result = plan(study, (800, 64), "tiny")
    assert len(result["cells"]) == 2 * 2 * 2  # archs x scales x n_train; seeds cost the same
    for cost in result["cells"]:
        row = resolve_row(cost["arch"], cost["scale"], study.scaling_table)
        field = build_field(cost["arch"], row, 64, study.train.parameterisation)
        per_step = count_flops(field, 64, study.train.batch_size)["train_flops_per_step"]
        assert cost["steps"] == study.train.for_rows(cost["n_train"]).steps  # iso-epoch
        assert cost["train_flops"] == per_step * cost["steps"]
    assert result["cpu"] is None


def test_a_deeper_model_dispatches_more_operations_and_the_phases_sum_to_the_total():
    train = TrainConfig(device="cpu")
    shallow, deep = (arch_ops("mlp", scale, None, 64, train) for scale in ("tiny", "base"))
    for ops in (shallow, deep):
        assert sum(ops["ops"].values()) == ops["total_ops"]
        assert ops["kernel_ops"] == ops["total_ops"] - sum(ops["views"].values())
        assert all(ops["ops"][phase] > 0 for phase in PHASES), ops["ops"]
        assert 0 < ops["sample_kernel_ops"] < ops["ops"]["forward"]
    assert deep["ops"]["forward"] > shallow["ops"]["forward"]
    assert deep["ops"]["backward"] > shallow["ops"]["backward"]
    assert deep["ops"]["optimizer"] == shallow["ops"]["optimizer"]  # fused: one op for all


def test_a_compiled_step_is_counted_in_inductor_kernels_and_launches_fewer():
    """``train.compile``: the forward and backward are inductor kernels plus the GEMMs it
    leaves to aten; the eager phases (batch, clip, optimiser, EMA) are still there."""
    torch._dynamo.reset()
    eager = arch_ops("mlp", "tiny", None, 64, TrainConfig(device="cpu"))
    compiled = arch_ops("mlp", "tiny", None, 64, TrainConfig(device="cpu", compile=True))
    assert sum(compiled["ops"].values()) == compiled["total_ops"] == compiled["kernel_ops"]
    assert all(compiled["ops"][phase] > 0 for phase in PHASES), compiled["ops"]
    assert compiled["top_ops"]["inductor kernel"] > 0
    assert compiled["kernel_ops"] < eager["kernel_ops"]
    for phase in ("forward", "backward"):
        assert compiled["ops"][phase] < eager["ops"][phase] - eager["views"][phase]
    assert compiled["ops"]["optimizer"] == eager["ops"]["optimizer"]  # not compiled


def test_the_launch_floor_binds_a_small_step_and_flops_a_large_one():
    info = {"train_flops_per_step": 1e9, "kernel_ops": 100, "sample_kernel_ops": 10}
    assume = {"utilisation": 0.5, "op_latency_us": 5.0, "gpu_job_start_s": 7.0}
    s = gpu_cell_seconds(info, steps=10, calls=3, eval_flops=0, peak=1e12, assume=assume)
    assert s["step_compute_s"] == pytest.approx(2e-3) and s["step_launch_s"] == 5e-4
    assert s["with_launch_floor_s"] == pytest.approx(10 * 2e-3 + 3 * 10 * 5e-6)
    assert s["flops_only_s"] == pytest.approx(10 * 2e-3)
    assert s["startup_s"] == 14.0  # train + evaluate
    small = {**info, "train_flops_per_step": 1e6}
    s = gpu_cell_seconds(small, steps=10, calls=0, eval_flops=0, peak=1e12, assume=assume)
    assert s["with_launch_floor_s"] == pytest.approx(10 * 5e-4)


def test_the_schedule_of_a_hand_example():
    # a (4 s), then b (3 s) and c (2 s) on 2 cores; d (2 s) waits for c, e for b and d.
    jobs = [
        Job("a", "prepare_data", 4),
        Job("b", "reference", 3, after=("a",)),
        Job("c", "train", 2, after=("a",)),
        Job("d", "evaluate", 2, after=("c",)),
        Job("e", "summarize", 1, after=("b", "d")),
    ]
    done = simulate(jobs, cores=2)
    assert done.start == {"a": 0, "b": 4, "c": 4, "d": 6, "e": 8}
    assert done.wall_s == 9
    assert simulate(jobs, cores=1).wall_s == 12  # one at a time: the sum
    assert wall_times(jobs, cores=3, orders=5) == [9] * 5  # no choice to make
    # the order among ready jobs matters: 3 + 1 + 1 + 3 on 2 cores takes 5 or 4 s
    jobs = [Job(n, "train", s) for n, s in (("w", 3), ("x", 1), ("y", 1), ("z", 3))]
    assert simulate(jobs, cores=2).wall_s == 5
    assert set(wall_times(jobs, cores=2, orders=20)) == {4, 5}
    # a 2-thread job takes both cores
    jobs = [Job("t", "train", 1, threads=2), Job("e", "evaluate", 1, threads=2)]
    assert simulate(jobs, cores=2).start == {"t": 0, "e": 1}
    with pytest.raises(ValueError, match="wait on each other"):
        simulate([Job("x", "train", 1, after=("y",)), Job("y", "train", 1, after=("x",))], 2)


def test_the_cpu_wall_time_schedules_every_job_of_the_workflow():
    study = load_study(RAW)
    arch = ArchCost(0.01, 1.0, 0.5, 0.1, 2.0, {200: 3, 400: 3})
    cpu = CpuCosts(
        threads=1,
        startup_s={"train": 3.0, "other": 2.0},
        data_load_s=0.0,
        prepare_s=1.0,
        params_s=1.0,
        reference_s={200: 4.0, 400: 5.0},
        archs={(a, s): arch for a in ("mlp", "unet") for s in ("tiny", "small")},
        tail_s={"summarize": 6.0, "analyze": 8.0},
    )
    train_s = 3.0 + 1.0 + 40 * 0.01 + 3 * 0.5 + 2 * 0.1  # 40 steps, 2 checkpoints
    result = cpu_plan(study, cpu, cores=2)
    assert result["job_seconds_by_rule"]["train"] == pytest.approx(8 * train_s)
    total = 3 + 3 + 6 + 7 + 8 * (train_s + 4) + 6 + 8  # prepare, gate, references, cells, tail
    assert result["one_job_at_a_time_s"] == pytest.approx(SNAKEMAKE_START_S + total)
    assert result["wall_s"] < result["one_job_at_a_time_s"]
    assert result["wall_s"] >= SNAKEMAKE_START_S + total / 2
    low, high = result["wall_s_range"]
    assert low <= result["wall_s"] <= high


def test_plan_json_has_the_documented_fields(tmp_path, capsys):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("grid: {archs: [mlp], scales: [tiny], n_train: [100], seeds: [0, 1]}\n")
    out = tmp_path / "plan.json"
    argv = ["plan", "--base", str(ROOT / "config.yaml"), "--configfile", str(TINY)]
    argv += ["--configfile", str(overlay), "--cpu-steps", "0", "--json", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out.read_text())
    documented = re.findall(r"^- `(\w+)`", (ROOT / "docs" / "plan.md").read_text(), re.M)
    assert set(result) == set(documented)
    (ops,) = result["ops"]
    assert ops["total_ops"] == sum(ops["ops"].values())
    hours = result["gpu_hours"]["H100 SXM"]
    assert 0 < hours["flops_only"] < hours["with_launch_floor"]
    assert hours["with_launch_floor"] < hours["with_launch_floor_and_startup"]
    assert result["jobs"]["train"] == 2


def test_plan_prints_operations_gpu_hours_disk_and_cpu_wall_time(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cpucost, "startup_seconds", lambda: {"train": 3.0, "other": 2.0})
    overlay = tmp_path / "o.yaml"
    overlay.write_text("grid: {archs: [mlp], scales: [tiny], n_train: [100], seeds: [0, 1]}\n")
    out = tmp_path / "plan.md"
    argv = ["plan", "--base", str(ROOT / "config.yaml"), "--configfile", str(TINY)]
    argv += ["--configfile", str(overlay), "--cpu-steps", "1", "--cores", "2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text == out.read_text()
    for needle in (
        "| train | 2 |",
        "| mlp | tiny | 100 |",
        "H100 SXM",
        "with launch floor",
        "GB of checkpoints",
        "wall time of `snakemake --cores 2`",
        "## Assumptions",
    ):
        assert needle in text


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--utilisation", "0"], "--utilisation: 0.0 must lie in (0, 1]"),
        (["--cpu-steps", "-1"], "--cpu-steps: -1 must be >= 0"),
        (["--op-latency-us", "-1"], "--op-latency-us: -1.0 must be >= 0"),
    ],
)
def test_bad_plan_flags_are_refused_by_name(capsys, argv, needle):
    with pytest.raises(SystemExit):
        main(["plan", *argv])
    assert needle in capsys.readouterr().err


def test_a_study_on_a_file_is_planned_at_the_file_dimension(tmp_path, capsys):
    np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(3000, 32)))
    overlay = tmp_path / "o.yaml"
    overlay.write_text(
        f"data: {{source: file, path: {tmp_path / 'e.npy'}}}\n"
        "grid: {archs: [mlp], scales: [tiny], n_train: [100], seeds: [0]}\n"
        "evaluate: {pca_dims: 8}\n"
    )
    argv = ["plan", "--base", str(ROOT / "config.yaml"), "--configfile", str(overlay)]
    assert main([*argv, "--cpu-steps", "0"]) == 0
    assert "D = 32" in capsys.readouterr().out

"""fmscale plan: what a study costs, counted as the jobs count it."""

import numpy as np
import pytest
from test_workflow import ROOT, TINY, job_counts, snakemake

from fmscale.cli import main
from fmscale.config import merge_configs, read_yaml
from fmscale.flops import count_flops
from fmscale.flow import build_field
from fmscale.models import resolve_row
from fmscale.plan import cell_costs, jobs_per_rule
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
    costs = cell_costs(study, 64, cpu_steps=0)
    assert len(costs) == 2 * 2 * 2  # archs x scales x n_train; seeds cost the same
    for cost in costs:
        row = resolve_row(cost.arch, cost.scale, study.scaling_table)
        field = build_field(cost.arch, row, 64, study.train.parameterisation)
        per_step = count_flops(field, 64, study.train.batch_size)["train_flops_per_step"]
        assert cost.steps == study.train.for_rows(cost.n_train).steps  # iso-epoch: n sets it
        assert cost.train_flops == per_step * cost.steps
        assert cost.cpu_s_per_step is None


def test_plan_prints_jobs_flops_gpu_hours_disk_and_cpu_time(tmp_path, capsys):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("grid: {archs: [mlp], scales: [tiny], n_train: [100], seeds: [0, 1]}\n")
    out = tmp_path / "plan.md"
    argv = ["plan", "--base", str(ROOT / "config.yaml"), "--configfile", str(TINY)]
    assert main([*argv, "--configfile", str(overlay), "--cpu-steps", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text == out.read_text()
    for needle in ("| train | 2 |", "| mlp | tiny | 100 |", "H100 SXM", "GB of checkpoints"):
        assert needle in text
    assert "Training every cell on this CPU" in text


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--utilisation", "0"], "--utilisation: 0.0 must lie in (0, 1]"),
        (["--cpu-steps", "-1"], "--cpu-steps: -1 must be >= 0"),
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

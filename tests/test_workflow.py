"""The Snakemake workflow: config validation, grid size, end to end, regeneration, resume."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fmscale.catalogue import REFERENCES
from fmscale.record import ANALYSIS_FIGURES

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).with_name("workflow_tiny.yaml")
SNAKEMAKE = [
    sys.executable,
    "-m",
    "snakemake",
    "--directory",
    str(ROOT),
    "--snakefile",
    str(ROOT / "Snakefile"),
]


def snakemake(*args, timeout=600, check=True):
    out = subprocess.run(
        [*SNAKEMAKE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    if check and out.returncode:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def config_file(tmp_path, results, **overlay):
    base = yaml.safe_load(TINY.read_text())
    for key, value in overlay.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    base["results"] = str(results)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.mark.parametrize(
    "grid",
    [
        {"archs": ["mlp"], "scales": ["tiny"], "n_train": [100], "seeds": [0]},
        {
            "archs": ["mlp", "dit", "unet", "mamba"],
            "scales": ["tiny", "small", "base"],
            "n_train": [100, 200, 300],
            "seeds": [0],
        },
        {
            "archs": ["dit", "mamba"],
            "scales": ["base"],
            "n_train": [50, 100, 200, 400],
            "seeds": [0, 1, 2],
        },
    ],
)
def test_dry_run_job_counts_equal_the_grid(tmp_path, grid):
    cfg = config_file(tmp_path, tmp_path / "r", grid=grid)
    counts = job_counts(snakemake("-n", "--configfile", str(cfg)).stdout)
    n_cells = len(grid["archs"]) * len(grid["scales"]) * len(grid["n_train"]) * len(grid["seeds"])
    assert counts["train"] == n_cells and counts["evaluate"] == n_cells
    assert counts["reference"] == len(grid["n_train"])
    assert counts["verify_params"] == counts["prepare_data"] == counts["summarize"] == 1
    assert counts["analyze"] == 1


@pytest.mark.parametrize(
    "overlay,needle",
    [
        ({"grid": {"archs": ["rnn"]}}, "archs"),
        ({"grid": {"scales": ["huge"]}}, "grid.scales"),
        ({"grid": {"n_train": [0]}}, "n_train"),
        ({"grid": {"n_train": [-5]}}, "n_train"),
        ({"grid": {"n_train": [100000]}}, "grid.n_train"),
        ({"grid": {"archs": []}}, "archs"),
        ({"grid": {"seeds": []}}, "seeds"),
        ({"train": {"stepz": 10}}, "stepz"),
        ({"evaluate": {"solver": "rk4"}}, "solver"),
        ({"data": {"source": "file", "path": "/nonexistent/emb.npy"}}, "data.path"),
        ({"gird": {}}, "gird"),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, overlay, needle):
    cfg = config_file(tmp_path, tmp_path / "r", **overlay)
    out = snakemake("-n", "--configfile", str(cfg), check=False)
    assert out.returncode != 0
    message = out.stdout + out.stderr
    assert needle in message, message[-2000:]
    assert not (tmp_path / "r").exists()


def test_end_to_end_then_regenerate_without_training(tmp_path):
    results = tmp_path / "results"
    cfg = config_file(tmp_path, results)
    progress = snakemake("--cores", "2", "--configfile", str(cfg)).stderr
    # The console a person follows: one line per job naming its cell, and the count done.
    assert re.search(r"^Job \d+: train synthetic: mlp/tiny n_train=\d+ seed=0$", progress, re.M)
    assert re.search(r"^\d+ of \d+ steps \(100%\) done$", progress, re.M)
    assert "Shell command:" not in progress and "Reason:" not in progress
    summary = pd.read_csv(results / "summary.csv")
    models = summary[summary.kind == "model"]
    assert len(models) == 8 and (models.status == "ok").all()
    assert set(summary[summary.kind == "reference"].arch) == set(REFERENCES)
    assert (models.val_loss_ratio < 1).all()
    assert (models.epochs > 0).all() and (models.train_flops > 0).all()
    # Every row says how many samples its sample metrics (memorised_fraction) stand on.
    assert (summary[summary.status == "ok"].n_samples == 100).all()
    trajectories = pd.read_csv(results / "trajectories.csv")
    assert len(trajectories.groupby(["arch", "scale", "n_train", "seed"])) == 8
    assert "### mmd2_pca" in (results / "summary.md").read_text()
    assert (results / "params/synthetic/table.yaml").exists()
    assert len(list((results / "plots").glob("*.png"))) == 6
    workflow_analysis = (results / "analysis.json").read_bytes()
    analysis = json.loads(workflow_analysis)
    assert analysis["fits"]["mlp"]["val_loss"]["verdict"].startswith("under-identified: 2 scales")
    assert "## Result checks" in (results / "analysis.md").read_text()
    for fmt in ("png", "pdf", "svg"):
        assert len(list((results / "analysis").glob(f"*.{fmt}"))) == len(ANALYSIS_FIGURES)
    # By hand, with no flags: the workflow's analysis, byte for byte (the same defaults).
    subprocess.run([sys.executable, "-m", "fmscale", "analyze", str(results)], check=True)
    assert (results / "analysis.json").read_bytes() == workflow_analysis
    (results / "summary.md").unlink()
    (results / "summary.csv").unlink()
    dry = job_counts(snakemake("-n", "--configfile", str(cfg)).stdout)
    assert "train" not in dry and "evaluate" not in dry and dry["summarize"] == dry["analyze"] == 1
    snakemake("--cores", "2", "--configfile", str(cfg))
    assert len(pd.read_csv(results / "summary.csv")) == len(summary)
    # The same tables from the CLI, outside Snakemake.
    (results / "summary.md").unlink()
    subprocess.run(
        [sys.executable, "-m", "fmscale.cli", "summarize", str(results), "--config", str(cfg)],
        check=True,
    )
    assert (results / "summary.md").exists()
    check_report(tmp_path, cfg, results)


def check_report(tmp_path, cfg, results):
    """`snakemake --report` from the package's own dependencies holds the summary, the
    analysis and every plot (the report embeds each file's bytes, base64-encoded)."""
    report = tmp_path / "report.html"
    snakemake("--report", str(report), "--configfile", str(cfg))
    html = report.read_text()
    for name in ("summary.md", "summary.csv", "analysis.md", "params.md"):
        assert name in html, f"{name} is not in the report"
    embedded = [results / "analysis.md", *(results / "plots").glob("*.png")]
    for path in [*embedded, *(results / "analysis").glob("*.png")]:
        encoded = base64.b64encode(path.read_bytes()).decode()
        assert encoded[:2000] in html, f"{path.name}'s content is not in the report"


def test_failed_cells_are_listed_under_keep_going(tmp_path):
    results = tmp_path / "results"
    cfg = config_file(
        tmp_path,
        results,
        grid={"archs": ["mlp"], "scales": ["tiny"], "n_train": [200, 400], "seeds": [0]},
        train={"lr": 1e30},
    )
    out = snakemake(
        "--cores", "2", "--keep-going", "--configfile", str(cfg), "--retries", "0", check=False
    )
    assert out.returncode != 0
    summary = pd.read_csv(results / "summary.csv")
    failed = summary[(summary.kind == "model") & (summary.status == "failed")]
    assert len(failed) == 2
    assert failed.error.str.contains("step").all()
    assert "## Failed cells" in (results / "summary.md").read_text()


def test_killed_run_resumes_with_rerun_incomplete(tmp_path):
    results = tmp_path / "results"
    grid = {"archs": ["mlp"], "scales": ["small"], "n_train": [400], "seeds": [0]}
    cfg = config_file(
        tmp_path,
        results,
        grid=grid,
        train={"steps": 1000, "ckpt_every": 50, "log_every": 50},
        resources={"retries": 0},  # no automatic retry: the rerun below must do the resuming
    )
    proc = subprocess.Popen(
        [*SNAKEMAKE, "--cores", "1", "--configfile", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpt = results / "runs/synthetic/mlp/small/n400/seed0/ckpt"
    deadline = time.time() + 240
    while not list(ckpt.glob("*.sha256")):
        assert time.time() < deadline and proc.poll() is None, "no checkpoint appeared"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # a hard kill: Snakemake and the train job die at once
    proc.wait(timeout=60)
    done = max(int(p.stem.split("_")[1]) for p in ckpt.glob("*.sha256"))
    assert done < 1000
    snakemake("--unlock", "--configfile", str(cfg))
    rerun = snakemake("--cores", "1", "--rerun-incomplete", "--configfile", str(cfg))
    cell_file = results / "runs/synthetic/mlp/small/n400/seed0/cell.json"
    assert cell_file.exists(), rerun.stdout[-3000:] + rerun.stderr[-3000:]
    cell = json.loads(cell_file.read_text())
    assert cell["resumed_from_step"] >= done > 0 and cell["steps"] == 1000


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"],
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
    ],
    ids=["snakefmt", "ruff-check", "ruff-format"],
)
def test_lint_and_format_are_clean(command):
    """snakefmt and ruff (both in the test extra, configured in pyproject.toml) find nothing."""
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_snakemake_lint_is_clean():
    out = snakemake("--lint")
    assert "Congratulations" in out.stdout + out.stderr


CONDA_FORGE = frozenset(
    {
        "python",
        "pytorch",
        "pytorch-gpu",
        "mamba-ssm",
        "causal-conv1d",
        "numpy",
        "pyyaml",
        "scipy",
        "threadpoolctl",
        "safetensors",
        "pandas",
        "pyarrow",
        "tqdm",
        "matplotlib-base",
    }
)
"""Package names the envs may list: each checked (2026-08) to be built by a conda-forge
feedstock, github.com/conda-forge/<name>-feedstock, except pytorch and pytorch-gpu (outputs of
pytorch-cpu-feedstock) and matplotlib-base (an output of matplotlib-feedstock). mamba-ssm and
causal-conv1d are not on bioconda or defaults: a name added here must be checked the same way."""


@pytest.mark.parametrize("env", ["fmscale.yaml", "fmscale-gpu.yaml"])
def test_conda_envs_list_every_required_package_from_their_channels(env):
    """Each env lists every dependency a job imports, under its conda-forge name, and only
    packages conda-forge builds (its channels: conda-forge, nodefaults)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = yaml.safe_load((ROOT / "envs" / env).read_text())
    deps = spec["dependencies"]
    assert spec["channels"] == ["conda-forge", "nodefaults"], env
    assert all(isinstance(d, str) for d in deps), f"{env}: no pip section (see its header)"
    listed = {re.split(r"[<>=!~ ]", d)[0].lower() for d in deps}
    assert listed <= CONDA_FORGE, f"{env}: not known on conda-forge: {listed - CONDA_FORGE}"
    # Snakemake runs the workflow, not its jobs: the envs do not carry it.
    required = {re.split(r"[\[<>=!~ ]", r)[0].lower() for r in project["dependencies"]}
    conda_names = {"torch": "pytorch", "matplotlib": "matplotlib-base"}
    missing = {conda_names.get(n, n) for n in required - {"snakemake"}} - {
        n.removesuffix("-gpu") for n in listed
    }
    assert not missing, f"{env} lacks {missing}"
    if env == "fmscale.yaml":
        assert "pytorch>=2.4=cpu*" in deps  # the CPU env is not a CUDA env
    else:  # the mamba extra's tested range, from conda-forge
        assert "pytorch-gpu>=2.4" in deps
        assert set(project["optional-dependencies"]["mamba"]) <= set(deps)


def test_every_rule_names_a_conda_env():
    rules = "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    assert len(re.findall(r"^(?:rule|checkpoint) ", rules, re.M)) == rules.count("conda:")


FAKE_CONDA = """#!/bin/sh
case "$*" in
  "info --json") echo '{"conda_version": "24.11.0", "envs_dirs": [], "root_prefix": "/x",
    "conda_prefix": "/x", "platform": "linux-64", "channels": []}' ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  "--version") echo "conda 24.11.0" ;;
  *) echo '{}' ;;
esac
"""


@pytest.mark.parametrize(
    "configfile,envs",
    [
        (None, ["envs/fmscale.yaml"]),
        ("workflow/configs/gpu_study.yaml", sorted(["envs/fmscale-gpu.yaml", "envs/fmscale.yaml"])),
    ],
    ids=["cpu study", "gpu study"],
)
def test_a_gpu_study_runs_its_jobs_in_the_gpu_env(tmp_path, configfile, envs):
    """What --software-deployment-method conda would build (conda itself stubbed: not here)."""
    (tmp_path / "conda").write_text(FAKE_CONDA)
    (tmp_path / "conda").chmod(0o755)
    args = ["--list-conda-envs", *(["--configfile", configfile] if configfile else [])]
    out = subprocess.run(
        [*SNAKEMAKE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(re.findall(r"^(envs/\S+)", out.stdout, re.M)) == envs

"""The tiny grid through the SLURM profile on a real single-node cluster (scripts/slurm_up.sh).

Skipped unless a SLURM controller answers and the executor plugin is installed. Every call is
bounded with `timeout -k`: the plugin can wait forever on a broken accounting setup, and
Snakemake ignores a plain SIGTERM while jobs run.
"""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).with_name("workflow_tiny.yaml")
OVERLAY = yaml.safe_load(Path(__file__).with_name("slurm_ci_overlay.yaml").read_text())


def _cluster_up() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on this machine"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    out = subprocess.run(
        ["timeout", "10", "sinfo", "-h", "-o", "%T"], capture_output=True, text=True
    )
    if out.returncode or not out.stdout.strip():
        return "no SLURM controller answers (run scripts/slurm_up.sh as root)"
    return None


pytestmark = pytest.mark.skipif(_cluster_up() is not None, reason=_cluster_up() or "")


def _profile(tmp_path: Path, grouped: bool) -> Path:
    """The repository's SLURM profile with the CI overlay's partitions and resources; without
    its job grouping unless ``grouped``."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    profile.update(OVERLAY)
    if not grouped:
        del profile["groups"], profile["group-components"]
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def _config(tmp_path: Path, **overlay) -> Path:
    base = yaml.safe_load(TINY.read_text())
    base.update(overlay)
    base["results"] = str(tmp_path / "results")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _snakemake(
    tmp_path: Path, config: Path, limit: int, *extra: str, grouped: bool = False
) -> subprocess.CompletedProcess:
    cmd = [
        "timeout",
        "-k",
        "20",
        str(limit),
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(ROOT),
        "--workflow-profile",
        str(_profile(tmp_path, grouped)),
        "--configfile",
        str(config),
        "--slurm-logdir",
        str(tmp_path / "slurm_logs"),
        "--slurm-keep-successful-logs",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def _slurm_jobs(tmp_path: Path) -> dict[str, set[str]]:
    """The SLURM job ids the plugin submitted, by its log folder (``rule_<rule>`` for one rule's
    job, ``group_<rules>`` for a group job): one ``<job id>.log`` per job."""
    jobs = {}
    for log in (tmp_path / "slurm_logs").glob("*/**/*.log"):
        folder = log.relative_to(tmp_path / "slurm_logs").parts[0]
        jobs.setdefault(folder, set()).add(log.stem)
    return jobs


def _sbatch_calls(out: subprocess.CompletedProcess) -> list[str]:
    """The plugin's sbatch command lines (logged with --verbose)."""
    return re.findall(r"sbatch call: (sbatch .*)", out.stdout + out.stderr)


def _rule_jobs(out: subprocess.CompletedProcess) -> dict[str, int]:
    """Snakemake's "Job stats" table: jobs per rule."""
    table = (out.stdout + out.stderr).split("Job stats:")[1].split("\n\n")[0]
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    del jobs["total"]
    return jobs


def _assert_complete(results: Path) -> None:
    summary = pd.read_csv(results / "summary.csv")
    models = summary[summary.kind == "model"]
    assert len(models) == 8 and (models.status == "ok").all()


def test_sigterm_through_slurm_resumes_from_checkpoint(tmp_path):
    grid = {"archs": ["mlp"], "scales": ["small"], "n_train": [400], "seeds": [0]}
    config = _config(
        tmp_path,
        grid=grid,
        train={"steps": 1500, "batch_size": 32, "ckpt_every": 50, "log_every": 50},
    )
    cmd_result = {}

    def run():
        cmd_result["out"] = _snakemake(tmp_path, config, 900, "--retries", "2")

    import threading

    thread = threading.Thread(target=run)
    thread.start()
    ckpt = tmp_path / "results/runs/synthetic/mlp/small/n400/seed0/ckpt"
    deadline = time.time() + 600
    while not list(ckpt.glob("*.sha256")):
        assert time.time() < deadline and thread.is_alive(), "no checkpoint appeared"
        time.sleep(0.5)
    jobs = subprocess.run(
        ["squeue", "-h", "-o", "%i %j", "--states=RUNNING"], capture_output=True, text=True
    ).stdout
    train_jobs = [line.split()[0] for line in jobs.splitlines() if line.strip()]
    assert train_jobs, jobs
    subprocess.run(["scancel", "--signal=TERM", "--full", *train_jobs], check=True)
    thread.join(timeout=900)
    out = cmd_result["out"]
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    cell_file = tmp_path / "results/runs/synthetic/mlp/small/n400/seed0/cell.json"
    cell = json.loads(cell_file.read_text())
    assert cell["steps"] == 1500 and 0 < cell["resumed_from_step"] < 1500


def test_tiny_grid_runs_in_grouped_slurm_jobs_on_their_partitions(tmp_path):
    """The profile as shipped: each cell's train and evaluate in one job, 4 cells per job, on
    the GPU partition; every other rule its own job on the CPU one; no GPU asked for anywhere
    (a CPU study)."""
    start = time.time()
    out = _snakemake(tmp_path, _config(tmp_path), 900, "--verbose", grouped=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    results = tmp_path / "results"
    _assert_complete(results)
    rules = _rule_jobs(out)
    jobs = _slurm_jobs(tmp_path)
    groups = {folder: ids for folder, ids in jobs.items() if folder.startswith("group_")}
    # 8 cells of train + evaluate in 2 jobs; the other rules one job each (`all` runs locally).
    assert sum(map(len, groups.values())) == 2, jobs
    submitted = sum(map(len, jobs.values()))
    assert submitted == sum(rules.values()) - 1 - (rules["train"] + rules["evaluate"]) + 2
    calls = _sbatch_calls(out)
    assert len(calls) == submitted, calls
    for call in calls:
        name = re.search(r"--comment '?rule_([a-z_]+?)(?:_wildcards_|'| )", call)[1]
        grouped = name.startswith("cell_")  # a group job: its rules, train and evaluate
        assert f" -p {'gpu' if grouped else 'debug'} " in call, call
        assert "--gpus" not in call and "--gres" not in call, call
    job_ids = {
        json.loads(cell.read_text())["slurm_job_id"]
        for cell in (results / "runs").glob("*/*/*/n*/seed*/cell.json")
    }
    assert len(job_ids) == 2 and all(i and i.isdigit() for i in job_ids), job_ids
    print(
        f"tiny grid through SLURM, grouped: {time.time() - start:.1f} s, {submitted} SLURM jobs "
        f"for {sum(rules.values())} rule jobs {rules}"
    )

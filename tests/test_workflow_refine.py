"""grid.refine in the workflow: with rounds 0 the DAG is the one without refinement; with a
round, one snakemake run trains, scores and summarises the cells the round adds."""

import json
import re
import time

import pandas as pd
from tests.test_workflow import config_file, job_counts, snakemake

from fmscale.layout import CELL_PATTERN
from fmscale.refine import INSIDE, REFINE_PATTERN


def jobs(output: str) -> list[str]:
    """A dry run's job stats, then each job's message and shell command (ids dropped), sorted."""
    stats = output.split("Job stats:")[1].split("\n\n")[0].strip()
    found = re.findall(r"^Job \d+: (.*)\n(?:Shell command: (.*))?", output, re.M)
    return [stats, *sorted(f"{message} || {shell}" for message, shell in found)]


def overlay(tmp_path, name, results, **sections):
    """A config file of its own (config_file writes <folder>/config.yaml)."""
    (tmp_path / name).mkdir()
    return str(config_file(tmp_path / name, results, **sections))


def test_rounds_0_is_the_dag_without_refinement_and_rounds_wait_on_a_checkpoint(tmp_path):
    results = tmp_path / "results"
    plain = overlay(tmp_path, "plain", results)
    off = overlay(tmp_path, "off", results, grid={"refine": {"rounds": 0, "points": 3}})
    dry = [snakemake("-n", "-p", "--configfile", cfg).stdout for cfg in (plain, off)]
    assert jobs(dry[0]) == jobs(dry[1])
    assert "refine" not in dry[1]
    on = overlay(tmp_path, "on", results, grid={"refine": {"rounds": 2, "points": 1}})
    counts = job_counts(snakemake("-n", "--configfile", on).stdout)
    assert counts["refine"] == 1 and counts["train"] == 8  # round 1; round 2 waits on it


def test_one_run_trains_scores_and_summarises_a_refined_cell(tmp_path):
    """mlp/tiny at n_train 4 (its samples land on the 4 training rows: memorised_fraction
    ~0.3) and 64 (0): the round brackets the crossing of 0.1 and adds n = 16 between them."""
    results = tmp_path / "results"
    grid = {"archs": ["mlp"], "scales": ["tiny"], "n_train": [4, 64], "seeds": [0]}
    cfg = config_file(
        tmp_path,
        results,
        grid={**grid, "refine": {"rounds": 1, "points": 1}},
        train={"steps": 150, "trajectory_points": 0},
        evaluate={"nfe": [8]},
        analysis={"resamples": 10},
    )
    start = time.monotonic()
    snakemake("--cores", "2", "--configfile", str(cfg))
    print(f"snakemake with one refinement round: {time.monotonic() - start:.1f} s")
    document = json.loads(
        (results / REFINE_PATTERN.format(dataset="synthetic", round=1)).read_text()
    )
    (proposal,) = document["proposals"]
    assert proposal["reason"].startswith(INSIDE), f"no crossing in the tiny study: {proposal}"
    lo, hi, (added,) = proposal["lo"], proposal["hi"], proposal["n_train"]
    assert (lo, hi) == (4, 64) and lo < added < hi
    cell = {"dataset": "synthetic", "arch": "mlp", "scale": "tiny", "n_train": added, "seed": 0}
    assert document["cells"] == [cell]
    assert (results / CELL_PATTERN.format(**cell) / "metrics.json").exists()
    summary = pd.read_csv(results / "summary.csv")
    models = summary[summary.kind == "model"]
    assert sorted(models.n_train) == sorted([4, 64, added]) and (models.status == "ok").all()
    refs = summary[(summary.kind == "reference") & (summary.n_train == added)]
    assert refs[refs.arch == "empirical_flow"].status.tolist() == ["ok"]
    assert "Failed cells" not in (results / "summary.md").read_text()
    assert (results / "analysis.json").exists()

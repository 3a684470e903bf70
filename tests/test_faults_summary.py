"""The summary under faults: stale metrics, partial grids, bad files, failure reasons, seeds.

Results folders are written by hand (the keys the summary reads), so nothing is trained.
"""

import csv
import hashlib
import json
from pathlib import Path

import pytest

from fmscale import summary as summarize_module
from fmscale.catalogue import HEADLINE_METRICS, REFERENCES, SYNTHETIC_ONLY, plot_names
from fmscale.cli import main
from fmscale.layout import CELL_LOG_NAME, CELL_PATTERN, REFERENCE_PATTERN
from fmscale.record import COLUMNS
from fmscale.summary import ResultsError, collect, summarize

CELL = {"dataset": "synthetic", "arch": "mlp", "scale": "tiny", "n_train": 100, "seed": 0}
GRID = {
    "datasets": ["synthetic"],
    "archs": ["mlp"],
    "scales": ["tiny"],
    "n_train": [100],
    "seeds": [0],
}
MODEL_MMD = 0.123456


def folder(results: Path, cell: dict = CELL) -> Path:
    return results / CELL_PATTERN.format(**cell)


def write_cell(results: Path, cell: dict = CELL, steps: int = 10, **extra) -> Path:
    """A cell.json with the keys the summary reads; ``steps`` tells two training runs apart."""
    info = {**cell, "n_params": 500_000, "steps": steps, "wall_time_s": 1.5, "steps_per_s": 6.7}
    path = folder(results, cell) / "cell.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, "device": "cpu", **extra}))
    return path


def write_metrics(results: Path, cell: dict = CELL, digest: bool = True) -> Path:
    """A metrics.json scoring the cell.json present (``cell_digest`` unless ``digest`` is off)."""
    metrics = {
        "val_loss": 1.0,
        "val_loss_zero_velocity": 2.0,
        "val_loss_ratio": 0.5,
        "headline_nfe": 8,
        "metrics": {"mmd2_pca": MODEL_MMD, "precision_pca": 0.9},
    }
    if digest:
        cell_bytes = (folder(results, cell) / "cell.json").read_bytes()
        metrics["cell_digest"] = hashlib.sha256(cell_bytes).hexdigest()
    path = folder(results, cell) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return path


def write_finished(results: Path, cell: dict = CELL) -> None:
    write_cell(results, cell)
    write_metrics(results, cell)


def write_references(results: Path, n_train: int = 100, dataset: str = "synthetic") -> Path:
    refs = {name: {"mmd2_pca": 0.001, "precision_pca": 0.95} for name in REFERENCES}
    path = results / REFERENCE_PATTERN.format(dataset=dataset, n_train=n_train)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"n_train": n_train, "references": refs}))
    return path


def write_log(results: Path, rule: str, cell: dict, text: str) -> None:
    path = results / "logs" / rule / f"{CELL_LOG_NAME.format(**cell)}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def model_row(frame, cell: dict = CELL):
    models = frame[frame.kind == "model"]
    match = models[(models.n_train == cell["n_train"]) & (models.seed == cell["seed"])]
    assert len(match) == 1
    return match.iloc[0]


@pytest.fixture
def no_plots(monkeypatch):
    """summarize without its plots (slow to draw; tested on their own below)."""
    monkeypatch.setattr(summarize_module, "write_plots", lambda *args: [])


# 1. Stale results are never shown as current.


def test_metrics_of_a_deleted_training_run_are_stale(tmp_path, no_plots):
    write_finished(tmp_path)
    write_references(tmp_path)
    (folder(tmp_path) / "cell.json").unlink()  # Snakemake deletes train outputs, retrain fails
    write_log(tmp_path, "train", CELL, "start\nerror: step 12: non-finite loss\n")
    frame = summarize(tmp_path, GRID)
    row = model_row(frame)
    assert row.status == "stale"
    assert "cell.json missing" in row.error and "step 12" in row.error
    assert frame[frame.kind == "model"].mmd2_pca.isna().all()
    md = (tmp_path / "summary.md").read_text()
    assert "## Stale cells" in md and "| STALE |" in md
    assert f"{MODEL_MMD:.4g}" not in md


def test_metrics_of_a_replaced_training_run_are_stale(tmp_path):
    write_finished(tmp_path)
    write_cell(tmp_path, steps=20)  # retrained; the new run was never evaluated
    row = model_row(collect(tmp_path, GRID))
    assert row.status == "stale" and "another run" in row.error
    assert row.steps == 20 and row.isna().mmd2_pca


def test_metrics_without_a_digest_are_current_only_beside_cell_json(tmp_path):
    legacy, orphan = CELL, {**CELL, "seed": 1}
    for cell in (legacy, orphan):
        write_cell(tmp_path, cell)
        write_metrics(tmp_path, cell, digest=False)
    (folder(tmp_path, orphan) / "cell.json").unlink()
    frame = collect(tmp_path, {**GRID, "seeds": [0, 1]})
    assert model_row(frame, legacy).status == "ok"
    assert model_row(frame, legacy).mmd2_pca == MODEL_MMD
    assert model_row(frame, orphan).status == "stale"


def test_evaluate_cell_records_the_cell_json_it_scored(tmp_path):
    import numpy as np
    from safetensors.torch import save_file

    from fmscale.config import EvalConfig, from_section
    from fmscale.data import DataConfig, build_dataset
    from fmscale.evaluate import evaluate_cell
    from fmscale.models import build_model

    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(300, 16)))
    source = {"source": "file", "path": str(tmp_path / "emb.npy"), "n_val": 50, "n_test": 50}
    data = build_dataset(DataConfig.from_dict(source), 100)
    row = {"hidden_dim": 16, "num_layers": 1, "mlp_ratio": 2}  # untrained: any weights will do
    cell_file = write_cell(tmp_path, row=row, data_dim=data.dim, data_fingerprint=data.fingerprint)
    state = build_model("mlp", row, data.dim).state_dict()
    save_file(
        {k: v.contiguous() for k, v in state.items()}, cell_file.with_name("model.safetensors")
    )
    cfg = from_section(EvalConfig, {"nfe": [2], "n_samples": 50, "pca_dims": 4}, "evaluate")
    result = evaluate_cell(cell_file.parent, data, cfg, device="cpu")
    assert result["cell_digest"] == hashlib.sha256(cell_file.read_bytes()).hexdigest()
    assert model_row(collect(tmp_path, GRID)).status == "ok"
    write_cell(tmp_path, steps=20, row=row)  # retrained since: another cell.json
    assert model_row(collect(tmp_path, GRID)).status == "stale"


# 2. A partial, all-failed or empty grid still writes every output.


@pytest.mark.parametrize("grid_state", ["partial", "all_failed", "empty"])
def test_partial_failed_or_empty_grid_writes_every_output(tmp_path, grid_state):
    grid = {**GRID, "seeds": [0, 1, 2]}
    if grid_state == "partial":  # no cell.json anywhere: one cell's was deleted, one never ran
        write_finished(tmp_path)
        (folder(tmp_path) / "cell.json").unlink()
        write_references(tmp_path)
    synthetic = grid_state != "empty"
    if grid_state == "empty":
        grid = None  # the grid is discovered: no run folders, no cells
    summarize(tmp_path, grid, synthetic=synthetic or None)
    with (tmp_path / "summary.csv").open() as f:
        header = next(csv.reader(f))
    expected = set(HEADLINE_METRICS) - (set() if synthetic else set(SYNTHETIC_ONLY))
    assert set(COLUMNS) | expected <= set(header)
    assert (tmp_path / "summary.md").read_text().startswith("# fmscale summary")
    plots = tmp_path / "plots"
    assert all((plots / f"{name}.png").stat().st_size > 0 for name in plot_names(synthetic))


# 3. Corrupt or missing files fail their own cell or reference row, never the summary.


@pytest.mark.parametrize(
    "name,content",
    [
        ("cell.json", b'{"n_params": 5'),
        ("cell.json", b"[1, 2]"),
        ("cell.json", b"{}"),
        ("metrics.json", b'{"val_loss": '),
        ("metrics.json", b"\xff\xfe\x00garbage"),
        ("metrics.json", b'{"val_loss": 1.0}'),
        (
            "metrics.json",
            b'{"val_loss": 1, "val_loss_zero_velocity": 2, "val_loss_ratio": 0.5, '
            b'"headline_nfe": 8, "metrics": [1]}',
        ),
    ],
)
def test_corrupt_cell_file_fails_only_its_cell_naming_the_file(tmp_path, no_plots, name, content):
    bad, good = CELL, {**CELL, "seed": 1}
    for cell in (bad, good):
        write_finished(tmp_path, cell)
    write_references(tmp_path)
    path = folder(tmp_path, bad) / name
    path.write_bytes(content)
    frame = summarize(tmp_path, {**GRID, "seeds": [0, 1]})
    row = model_row(frame, bad)
    assert row.status == "failed" and str(path) in row.error
    assert model_row(frame, good).status == "ok"
    md = (tmp_path / "summary.md").read_text()
    assert "## Failed cells" in md and str(path) in md


@pytest.mark.parametrize("content", [None, b'{"references": ', b'{"references": [1]}'])
def test_missing_or_corrupt_reference_file_is_listed_as_missing(tmp_path, no_plots, content):
    grid = {**GRID, "n_train": [100, 200]}
    write_finished(tmp_path)
    write_finished(tmp_path, {**CELL, "n_train": 200})
    write_references(tmp_path, 100)
    path = tmp_path / REFERENCE_PATTERN.format(dataset="synthetic", n_train=200)
    if content is not None:
        path.write_bytes(content)
    frame = summarize(tmp_path, grid)
    refs = frame[frame.kind == "reference"]
    assert set(refs[refs.n_train == 100].status) == {"ok"}
    bad = refs[refs.n_train == 200]
    assert set(bad.arch) == set(REFERENCES)
    assert set(bad.status) == {"missing"} and bad.error.str.contains(str(path)).all()
    md = (tmp_path / "summary.md").read_text()
    assert "## Missing reference rows" in md and str(path) in md
    assert "| ref: real_holdout | 0.001 | missing |" in md


def test_missing_results_folder_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_such_results"
    with pytest.raises(ResultsError, match="no_such_results"):
        summarize(missing)
    assert issubclass(ResultsError, ValueError)
    assert main(["summarize", str(missing)]) == 2
    assert f"error: {missing}" in capsys.readouterr().err


# 4. The failure reason comes from the log of the step that failed.


def test_failure_reason_comes_from_the_log_of_the_step_that_failed(tmp_path):
    evaluate_failed, train_failed, not_evaluated, not_run = (
        {**CELL, "seed": seed} for seed in range(4)
    )
    for cell in (evaluate_failed, not_evaluated):
        write_cell(tmp_path, cell)
        write_log(tmp_path, "train", cell, "runs/x: 10 steps, 6.7 steps/s, 500,000 params\n")
    write_log(tmp_path, "evaluate", evaluate_failed, "Traceback\nerror: model.safetensors: bad\n")
    write_log(tmp_path, "train", train_failed, "error: step 5: non-finite loss\nexit 3\n")
    write_log(tmp_path, "evaluate", train_failed, "error: cell.json: missing\n")
    frame = collect(tmp_path, {**GRID, "seeds": [0, 1, 2, 3]})
    assert model_row(frame, evaluate_failed).error == "error: model.safetensors: bad"
    assert model_row(frame, train_failed).error == "error: step 5: non-finite loss"
    assert model_row(frame, not_evaluated).error == "not run"
    assert model_row(frame, not_run).error == "not run"


# 5. Seeds print as integers, though reference rows have none.


def test_seeds_and_counts_print_as_integers(tmp_path, no_plots):
    write_finished(tmp_path)
    write_references(tmp_path)
    summarize(tmp_path, {**GRID, "seeds": [0, 1]})
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows if r["kind"] == "model"] == ["0", "1"]
    finished = rows[0]  # the cell of write_finished; the seed-1 cell was not run
    assert (finished["n_params"], finished["steps"]) == ("500000", "10")
    assert {r["seed"] for r in rows if r["kind"] == "reference"} == {""}
    assert "| mlp | tiny | 100 | 1 | not run |" in (tmp_path / "summary.md").read_text()


def test_a_reference_row_skipped_by_its_cap_says_why(tmp_path):
    from fmscale.summary import summary_markdown

    refs = {"real_holdout": {"mmd2_pca": 0.001}, "empirical_flow": {"skipped": "n_train=9 cap"}}
    path = tmp_path / REFERENCE_PATTERN.format(dataset="synthetic", n_train=9)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"references": refs}))
    grid = {**GRID, "n_train": [9]}
    frame = collect(tmp_path, grid)
    row = frame[frame.arch == "empirical_flow"].iloc[0]
    assert row.status == "skipped" and row.error == "n_train=9 cap"
    text = summary_markdown(frame, {"synthetic": grid})
    assert "## Skipped reference rows" in text and "Missing reference rows" not in text

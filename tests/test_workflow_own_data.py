"""The own-data route end to end: the template config on a 384-d parquet of vectors beside text,
the packaged table fitted at D = 384 with no allow_off_ratio, a second dataset in the same
results folder, and the dry-run stops that name the field and the fix."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tests.test_workflow import ROOT, TINY, snakemake

DIM, ROWS = 384, 700


def embeddings_parquet(path):
    """Encoder-dump layout: id, text and a list column of unit-norm 384-d vectors (a
    low-rank cloud with noise, so the study has structure to learn)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 8)) @ rng.normal(size=(8, DIM)) + 0.1 * rng.normal(size=(ROWS, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    vectors = pa.ListArray.from_arrays(
        pa.array(np.arange(0, ROWS * DIM + 1, DIM, dtype=np.int32)), pa.array(x.reshape(-1))
    )
    texts = [f"review number {i} of a film" for i in range(ROWS)]
    pq.write_table(pa.table({"id": np.arange(ROWS), "text": texts, "embedding": vectors}), path)
    return path


def own_config(tmp_path, results, **data):
    """The template, as a user fills it in, made small."""
    cfg = yaml.safe_load((ROOT / "workflow/configs/own_data.yaml").read_text())
    cfg["data"].update(path=str(embeddings_parquet(tmp_path / "reviews.parquet")))
    cfg["data"].update(column="embedding", n_val=100, n_test=100, **data)
    cfg["results"] = str(results)
    cfg["grid"] = {"archs": ["mlp"], "scales": ["tiny", "small", "base"]}
    cfg["grid"] |= {"n_train": [64, 400], "seeds": [0]}
    cfg["train"] = {"steps": 10, "batch_size": 32, "ckpt_every": 10, "log_every": 5}
    cfg["train"] |= {"trajectory_points": 2}
    cfg["evaluate"] = {"nfe": [2], "n_samples": 60, "pca_dims": 8}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_own_parquet_then_a_second_dataset_beside_it(tmp_path):
    results = tmp_path / "results"
    snakemake("--cores", "2", "--configfile", str(own_config(tmp_path, results)))
    params = pd.read_csv(results / "params/reviews/params.csv")
    assert len(params) == 3 and (params.verdict == "ok").all()  # fitted at 384, no allow
    assert (params.vs_target.abs() <= 0.15).all()
    assert "D = 384" in (results / "params/reviews/params.md").read_text()
    summary = pd.read_csv(results / "summary.csv")
    models = summary[summary.kind == "model"]
    assert len(models) == 6 and (models.status == "ok").all()
    assert set(summary.dataset) == {"reviews"}
    assert not {"mode_kl", "modes_covered"} & set(summary.columns)  # real data: left out
    assert "exact_field" not in set(summary.arch)
    assert not (results / "plots/mode_kl_vs_params.png").exists()
    assert len(list((results / "plots").glob("*.png"))) == 5
    assert "of dataset `reviews`" in (results / "analysis.md").read_text()
    first = {p: p.stat().st_mtime_ns for p in (results / "runs/reviews").rglob("*") if p.is_file()}
    # A second study, the synthetic tiny one, into the same results folder.
    synthetic = yaml.safe_load(TINY.read_text()) | {"results": str(results)}
    synthetic["grid"] |= {"archs": ["mlp"], "scales": ["tiny"], "n_train": [200]}
    (tmp_path / "synthetic.yaml").write_text(yaml.safe_dump(synthetic))
    snakemake("--cores", "2", "--configfile", str(tmp_path / "synthetic.yaml"))
    after = {p: p.stat().st_mtime_ns for p in (results / "runs/reviews").rglob("*") if p.is_file()}
    assert after == first  # nothing of the first dataset retrained or rewritten
    summary = pd.read_csv(results / "summary.csv")
    models = summary[summary.kind == "model"]
    assert models.groupby("dataset").size().to_dict() == {"reviews": 6, "synthetic": 1}
    assert (models.status == "ok").all() and summary.mode_kl.notna().any()
    # The first study again: nothing to train, only its tables and analysis.
    dry = snakemake("-n", "--configfile", str(tmp_path / "mine.yaml")).stdout
    assert "train " not in dry and "evaluate " not in dry


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"grid": {"n_train": [600]}}, "lower grid.n_train to at most 500"),
        ({"data": {"column": "vector"}}, "no column 'vector' (data.column)"),
        ({"data": {"column": None}}, "set data.column to the one holding the embeddings"),
        ({"scaling_table": "OWN"}, "fmscale table --data-dim 384 --from"),
        ({"scaling_table": "cpu", "grid": {"archs": ["dit"]}, "data": {"n_val": 101}}, "ok"),
    ],
    ids=["too few rows", "missing column", "no column", "off own table", "control"],
)
def test_dry_run_stops_naming_the_field_and_the_fix(tmp_path, change, needle):
    results = tmp_path / "results"
    path = own_config(tmp_path, results)
    cfg = yaml.safe_load(path.read_text())
    if change.get("scaling_table") == "OWN":  # a user's table written for D = 1024
        own = tmp_path / "my_table.yaml"
        own.write_text((ROOT / "src/fmscale/models/scaling_cpu.yaml").read_text())
        change = {"scaling_table": str(own)}
    for key, value in change.items():
        cfg[key] = cfg.get(key, {}) | value if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake("-n", "--configfile", str(path), check=False)
    if needle == "ok":
        assert out.returncode == 0, out.stderr[-2000:]
        return
    assert out.returncode != 0
    assert needle in out.stdout + out.stderr, (out.stdout + out.stderr)[-2000:]
    assert not results.exists()

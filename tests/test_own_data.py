"""A researcher's own embeddings: file layouts, header-only shapes, the checks a study makes
before any job runs, datasets side by side in one results folder, and the old layout's move."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from tests.test_faults_summary import write_cell, write_finished, write_metrics, write_references

from fmscale.cli import main
from fmscale.config import DataConfig
from fmscale.configfiles import merge_configs, read_yaml
from fmscale.data import build_dataset, load_embeddings
from fmscale.datafile import DataError, peek_shape
from fmscale.errors import ConfigError
from fmscale.layout import CELL_PATTERN, REFERENCE_PATTERN, check_layout
from fmscale.migrate import migrate_results
from fmscale.study import load_study
from fmscale.summary import summarize

ROWS, DIM = 60, 12
RNG = np.random.default_rng(0)
VECTORS = RNG.normal(size=(ROWS, DIM)).astype(np.float32)


def embedding_parquet(path, fixed_size=False, column="embedding"):
    """A dump as encoders write them: id, text and a column of vectors."""
    values = pa.array(VECTORS.reshape(-1))
    vectors = (
        pa.FixedSizeListArray.from_arrays(values, DIM)
        if fixed_size
        else pa.ListArray.from_arrays(pa.array(np.arange(0, ROWS * DIM + 1, DIM, np.int32)), values)
    )
    table = pa.table(
        {"id": np.arange(ROWS), "text": [f"sentence {i}" for i in range(ROWS)], column: vectors}
    )
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("fixed_size", [False, True])
def test_parquet_with_text_and_an_embedding_column(tmp_path, fixed_size):
    path = embedding_parquet(tmp_path / "dump.parquet", fixed_size)
    assert peek_shape(path, "embedding") == (ROWS, DIM)
    np.testing.assert_array_equal(load_embeddings(path, column="embedding").numpy(), VECTORS)
    with pytest.raises(DataError, match=r"set data.column .* \(list columns: \['embedding'\]\)"):
        peek_shape(path)
    with pytest.raises(DataError, match=r"no column 'emb' \(data.column\)"):
        load_embeddings(path, column="emb")
    with pytest.raises(DataError, match=r"column 'text' \(data.column\) holds string"):
        peek_shape(path, "text")


def test_ragged_vectors_name_the_row(tmp_path):
    path = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"embedding": [[1.0, 2.0], [1.0, 2.0], [3.0]]}), path)
    with pytest.raises(DataError, match="different lengths .*row 2"):
        load_embeddings(path, column="embedding")


@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".pt", ".parquet"])
def test_header_shape_of_every_format(tmp_path, suffix):
    path = tmp_path / f"e{suffix}"
    if suffix == ".npy":
        np.save(path, VECTORS)
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"vectors": VECTORS, "ids": np.arange(ROWS)}, str(path))
    elif suffix == ".pt":
        torch.save({"vectors": torch.from_numpy(VECTORS)}, path)
    else:
        pd.DataFrame(VECTORS, columns=[f"d{i}" for i in range(DIM)]).to_parquet(path)
    column = "vectors" if suffix in (".safetensors", ".pt") else None
    assert peek_shape(path, column) == (ROWS, DIM)
    assert tuple(load_embeddings(path, column=column).shape) == (ROWS, DIM)
    if suffix == ".safetensors":  # two tensors, none named 'embeddings': the key must be given
        with pytest.raises(DataError, match="set data.column"):
            peek_shape(path)


def study_config(tmp_path, **data):
    base = read_yaml("config.yaml")
    overlay = {"results": str(tmp_path / "results"), "data": {"n_val": 10, "n_test": 10, **data}}
    overlay["grid"] = {"n_train": [8, 40]}
    overlay["evaluate"] = {"n_samples": 10, "pca_dims": 4, "knn_k": 3}
    return merge_configs(base, overlay)


def test_study_reads_rows_and_dimension_from_the_header(tmp_path):
    path = embedding_parquet(tmp_path / "dump.parquet")
    study = load_study(study_config(tmp_path, source="file", path=str(path), column="embedding"))
    assert study.data.name == "dump" and study.data.column == "embedding"


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"n_val": 20}, "lower grid.n_train to at most 30"),
        ({"column": None}, "data.path: .*set data.column"),
        ({"column": "vec"}, "data.path: .*no column 'vec'"),
    ],
)
def test_study_stops_before_any_job_naming_the_fix(tmp_path, data, needle):
    path = embedding_parquet(tmp_path / "dump.parquet")
    raw = study_config(tmp_path, source="file", path=str(path), column="embedding")
    with pytest.raises(ConfigError, match=needle):
        load_study(merge_configs(raw, {"data": data}))
    assert not (tmp_path / "results").exists()


def test_prepared_dataset_of_a_parquet_column(tmp_path):
    path = embedding_parquet(tmp_path / "dump.parquet")
    cfg = DataConfig.from_dict({"path": str(path), "column": "embedding", "n_val": 5, "n_test": 5})
    data = build_dataset(cfg, 50)
    assert data.dim == DIM and len(data.train_pool) == ROWS - 10


def test_two_datasets_in_one_results_folder_are_both_listed(tmp_path):
    real = {"dataset": "minilm", "arch": "mlp", "scale": "tiny", "n_train": 100, "seed": 0}
    synthetic = {**real, "dataset": "synthetic"}
    for cell in (real, synthetic):
        write_finished(tmp_path, cell)
        write_references(tmp_path, 100, cell["dataset"])
    grid = {"datasets": ["minilm"], "archs": ["mlp"], "scales": ["tiny"], "n_train": [100]}
    frame = summarize(tmp_path, {**grid, "seeds": [0, 1]}, synthetic=False)
    models = frame[frame.kind == "model"]
    assert sorted(models.dataset.unique()) == ["minilm", "synthetic"]
    assert len(models[models.dataset == "minilm"]) == 2  # the study's grid: seed 1 not run
    assert len(models[models.dataset == "synthetic"]) == 1  # the other study's finished cell
    assert set(frame[frame.kind == "reference"].dataset) == {"minilm", "synthetic"}
    md = (tmp_path / "summary.md").read_text()
    assert "## Dataset `minilm`" in md and "## Dataset `synthetic`" in md
    assert not (tmp_path / "plots" / "mode_kl_vs_params.png").exists()
    assert (tmp_path / "plots" / "val_loss_ratio_vs_params.png").exists()
    with pytest.raises(ValueError, match="cells of 2 datasets"):
        summarize(tmp_path)


def test_real_data_summary_has_no_synthetic_only_columns(tmp_path):
    cell = {"dataset": "minilm", "arch": "mlp", "scale": "tiny", "n_train": 100, "seed": 0}
    write_finished(tmp_path, cell)
    write_references(tmp_path, 100, "minilm")
    grid = {"datasets": ["minilm"], "archs": ["mlp"], "scales": ["tiny"], "n_train": [100]}
    frame = summarize(tmp_path, {**grid, "seeds": [0]}, synthetic=False)
    assert "mode_kl" not in frame.columns and "modes_covered" not in frame.columns
    md = (tmp_path / "summary.md").read_text()
    assert "mode_kl, modes_covered: not scored on `minilm`" in md and "### mode_kl" not in md


def test_old_layout_is_refused_then_migrated_without_retraining(tmp_path, capsys):
    cell = {"dataset": "synthetic", "arch": "mlp", "scale": "tiny", "n_train": 100, "seed": 0}
    write_cell(tmp_path, cell, config={"data": {"name": "synthetic"}})  # what train records
    write_metrics(tmp_path, cell)
    write_references(tmp_path, 100)
    new = tmp_path / CELL_PATTERN.format(**cell)
    old = tmp_path / "runs" / "mlp"
    (tmp_path / "runs" / "synthetic" / "mlp").rename(old)
    refs = tmp_path / REFERENCE_PATTERN.format(dataset="synthetic", n_train=100)
    refs.rename(tmp_path / "references" / "n100.json")
    mtime = (old / "tiny/n100/seed0/cell.json").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="fmscale migrate"):
        check_layout(tmp_path)
    assert main(["summarize", str(tmp_path)]) == 2
    assert "fmscale migrate" in capsys.readouterr().err
    assert main(["migrate", str(tmp_path)]) == 0
    assert (new / "cell.json").stat().st_mtime_ns == mtime and refs.exists()
    assert not old.exists()
    check_layout(tmp_path)
    frame = summarize(tmp_path)
    assert list(frame[frame.kind == "model"].status) == ["ok"]
    with pytest.raises(ValueError, match="no run folders in the old layout"):
        migrate_results(tmp_path)

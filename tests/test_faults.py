"""Bad input and faults, as a matrix: each is refused by name or handled, never lost or stale.

Each case reproduces a report of a new user's session (issue 11); the test failed before its
fix. Workflow-level cases run tiny studies on 64-dim synthetic data.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from fmscale.cli import main
from fmscale.configfiles import read_yaml
from fmscale.data import DataConfig, Dataset, build_dataset
from fmscale.errors import ConfigError
from fmscale.metrics import pca_basis, variance_ratio
from fmscale.models.scaling import DEFAULT_TABLE
from fmscale.params import ParamGateError, verify_params
from fmscale.study import load_study

ROOT = Path(__file__).resolve().parents[1]
TINY = read_yaml(Path(__file__).with_name("tiny_config.yaml"))
GRID = {"archs": ["mlp"], "scales": ["tiny"], "n_train": [100], "seeds": [0]}


def _yaml(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def _study(**sections):
    return load_study({"grid": GRID, "data": TINY["data"], **sections})


# --- settings that passed validation and failed in every job later --------------------------


@pytest.mark.parametrize(
    "sections,needle",
    [
        ({"results": ""}, "results=''"),
        ({"results": "/"}, "not an empty path or the filesystem root"),
        ({"train": {"lr": float("nan")}}, "train.lr must be a finite number"),
        ({"evaluate": {"n_samples": 5, "knn_k": 5}}, "evaluate.n_samples=5 must exceed"),
        ({"evaluate": {"pca_dims": 65}}, "evaluate.pca_dims=65 exceeds"),
        ({"data": {**TINY["data"], "n_test": 3}}, "evaluate.knn_k=5 needs more"),
    ],
)
def test_study_settings_that_cannot_run_are_refused_by_name(sections, needle):
    with pytest.raises(ConfigError, match=needle):
        _study(**sections)


def test_pca_dims_above_d_is_an_error_not_a_silent_clamp():
    with pytest.raises(ValueError, match=r"evaluate.pca_dims=65 must be in \[1, D=64\]"):
        pca_basis(torch.randn(100, 64), 65)


# --- the CLI: a config file as strict as the workflow, flags refused by name -----------------


def _train_args(tmp_path, *extra):
    cell = ["--arch", "mlp", "--scale", "tiny", "--n-train", "50"]
    return ["train", *cell, "--out", str(tmp_path / "run"), "--no-progress", *extra]


@pytest.mark.parametrize(
    "config,needle",
    [
        ({"trian": {"steps": 5}}, "unknown section(s) ['trian']"),
        ({"train": {"stepz": 5}}, "train: unknown key(s) ['stepz']"),
        ({"train": {"lr": float("nan")}}, "train.lr must be a finite number"),
        ({"data": {"n_val": 0}}, "data.n_val=0 must be >= 1"),
        ({"data": {"n_test": -5}}, "data.n_test=-5 must be >= 1"),
        ({"evaluate": {"solver": "rk4"}}, "evaluate.solver='rk4'"),
        ([1, 2], "expected a mapping of config sections"),
        ("", "the file is empty"),
        ("train: [unclosed", "invalid YAML"),
    ],
)
def test_train_config_file_is_checked_like_the_workflow(tmp_path, capsys, config, needle):
    path = _yaml(tmp_path / "c.yaml", config)
    assert main(_train_args(tmp_path, "--config", str(path))) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["evaluate", "run", "--nfe", "abc"], "--nfe: 'abc' is not an integer"),
        (["evaluate", "run", "--nfe", "4,0"], "0 must be >= 1"),
        (["evaluate", "run", "--threads", "0"], "--threads: 0 must be >= 1"),
        (["reference", "--n-train", "5", "--out", "x", "--threads", "-2"], "-2 must be >= 1"),
        (["params", "--data-dim", "0"], "--data-dim: 0 must be >= 1"),
        (["train", "--arch", "mlp", "--n-train", "0", "--out", "x"], "--n-train: 0 must be"),
    ],
)
def test_bad_flags_are_refused_by_name(capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and needle in capsys.readouterr().err


def test_raw_embeddings_given_as_a_prepared_dataset_are_named(tmp_path, capsys):
    np.save(tmp_path / "emb.npy", np.zeros((10, 4), dtype=np.float32))
    save_file({"embeddings": torch.zeros(10, 4)}, str(tmp_path / "emb.safetensors"))
    for name in ("emb.npy", "emb.safetensors"):
        argv = ["prepare-data", "--max-n-train", "5", "--out", str(tmp_path / "o.safetensors")]
        assert main([*argv, "--dataset", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert name in err and "raw embeddings go to --data" in err


def test_evaluate_into_an_unwritable_place_fails_before_sampling(tmp_path, capsys, monkeypatch):
    import fmscale.evaluate

    monkeypatch.setattr(fmscale.evaluate, "evaluate_cell", pytest.fail)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["evaluate", str(tmp_path), "--out", str(blocker / "sub" / "m.json")]) == 74
    assert str(blocker) in capsys.readouterr().err


# --- the parameter gate checks the models the cells will train -------------------------------


@pytest.mark.parametrize(
    "dim,needle",
    [
        (64, "mlp/tiny"),  # the packaged table's capacity targets are for D = 1024
        (100, "cannot be built for data of dimension 100"),  # 16 tokens do not divide 100
    ],
)
def test_gate_counts_at_the_data_dimension(tmp_path, dim, needle):
    with pytest.raises(ParamGateError, match=needle):
        verify_params(data_dim=dim, out_md=tmp_path / "params.md")
    assert f"D = {dim}" in (tmp_path / "params.md").read_text()


def test_gate_refuses_a_row_that_cannot_cut_d_into_its_tokens_even_when_allowed(tmp_path):
    table = yaml.safe_load(DEFAULT_TABLE.read_text())
    table["archs"]["dit"]["small"]["num_tokens"] = 7
    path = _yaml(tmp_path / "t.yaml", table)
    with pytest.raises(ParamGateError, match="dit/small") as info:
        verify_params(path, allow_off_ratio=True)
    assert "num_tokens=7" in str(info.value)
    assert verify_params(path, archs=["mlp", "unet"])  # a study without dit is not blocked


def test_gate_takes_d_from_the_prepared_dataset(tmp_path, capsys):
    data = build_dataset(DataConfig.from_dict(TINY["data"]), 100)
    data.save(tmp_path / "pool.safetensors")
    assert Dataset.peek_dim(tmp_path / "pool.safetensors") == 64
    assert main(["params", "--dataset", str(tmp_path / "pool.safetensors")]) == 1
    assert "D = 64" in capsys.readouterr().err


# --- real embeddings with (near-)constant dimensions ----------------------------------------


def test_constant_dimensions_are_counted_and_never_divide_a_metric(tmp_path, capsys):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(600, 32)).astype(np.float32)
    emb[:, 3] = 0.25  # constant
    emb[:, 7] = rng.normal(size=600).astype(np.float32) * 5e-7  # near-constant
    np.save(tmp_path / "emb.npy", emb)
    out = tmp_path / "pool.safetensors"
    config = _yaml(tmp_path / "c.yaml", {"data": {"n_val": 100, "n_test": 100}})
    argv = ["prepare-data", "--data", str(tmp_path / "emb.npy"), "--config", str(config)]
    argv += ["--max-n-train", "300"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "2 (near-)constant dimension(s)" in capsys.readouterr().out
    data = Dataset.load(out)
    assert data.constant_dims == 2 and torch.isfinite(data.train_pool).all()
    samples = torch.randn(300, 32)  # a model's samples spread a little on every dimension
    ratio = variance_ratio(samples, data.test)
    assert 0.5 < ratio < 2.0  # was ~1e62: var(samples) / var(constant test column)


# --- the workflow: config edits, paths with spaces, grid growth without metadata -------------


def _snakemake(config: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(cwd), "--configfile", str(config), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)


def _ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.mark.parametrize("content,needle", [("", "is empty"), ("- 1\n", "expected a mapping")])
def test_bad_workflow_config_file_is_named(tmp_path, content, needle):
    _yaml(tmp_path / "config.yaml", content)
    _yaml(tmp_path / "overlay.yaml", {"grid": GRID})
    out = _snakemake(tmp_path / "overlay.yaml", "-n", cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and f"config.yaml: {needle}" in text.replace("the file ", "")


def test_edit_rerun_space_in_path_and_grid_growth(tmp_path):
    """A changed setting retrains (nothing stale, no crash); a path with a space works; a seed
    added without Snakemake's metadata is trained."""
    base = yaml.safe_load((Path(__file__).with_name("workflow_tiny.yaml")).read_text())
    base.update(grid=GRID, results=str(tmp_path / "my results"))
    base["train"]["steps"] = 20
    config = _yaml(tmp_path / "c.yaml", base)
    workdir = tmp_path / "wd"  # Snakemake's metadata (.snakemake/) lives here
    workdir.mkdir()
    _ok(_snakemake(config, cwd=workdir))
    cell = tmp_path / "my results/runs/synthetic/mlp/tiny/n100/seed0"
    assert json.loads((cell / "cell.json").read_text())["steps"] == 20

    base["train"]["steps"] = 30  # edit a setting and rerun: the cell retrains from scratch
    _ok(_snakemake(_yaml(config, base), cwd=workdir))
    assert json.loads((cell / "cell.json").read_text())["steps"] == 30
    assert json.loads((cell / "metrics.json").read_text())["cell"]["steps"] == 30
    summary = (tmp_path / "my results/summary.csv").read_text()
    assert "stale" not in summary and ",ok," in summary

    base["grid"] = {**GRID, "seeds": [0, 1]}  # grow the grid with Snakemake's metadata gone
    shutil.rmtree(workdir / ".snakemake" / "metadata")
    _ok(_snakemake(_yaml(config, base), cwd=workdir))
    assert (tmp_path / "my results/runs/synthetic/mlp/tiny/n100/seed1/metrics.json").exists()

"""Synthetic mixture, file loading and validation, splits and standardisation."""

import math

import numpy as np
import pytest
import torch

from fmscale.data import (
    DataConfig,
    DataError,
    SyntheticConfig,
    build_dataset,
    load_embeddings,
    make_mixture,
    sample_mixture,
)

SMALL = dict(
    n_val=50, n_test=60, synthetic={"dim": 32, "n_rows": 600, "n_modes": 3, "latent_dim": 4}
)


def test_synthetic_dataset_is_deterministic_and_split_disjointly():
    a = build_dataset(DataConfig.from_dict(SMALL), 100)
    b = build_dataset(DataConfig.from_dict(SMALL), 400)
    assert a.fingerprint == b.fingerprint
    torch.testing.assert_close(a.train_pool, b.train_pool)
    assert a.train_pool.shape == (490, 32) and a.val.shape == (50, 32) and a.test.shape == (60, 32)
    rows = torch.cat([a.train_pool, a.val, a.test])
    assert len(torch.unique(rows, dim=0)) == len(rows)


def test_subsets_are_nested_and_pool_standardised():
    data = build_dataset(DataConfig.from_dict(SMALL), 100)
    torch.testing.assert_close(data.train(100), data.train(300)[:100])
    torch.testing.assert_close(data.train_pool.mean(0), torch.zeros(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(data.train_pool.std(0), torch.ones(32), atol=1e-5, rtol=0)
    with pytest.raises(DataError, match="n_train=491"):
        data.train(491)


def test_other_seed_gives_other_data():
    a = build_dataset(DataConfig.from_dict(SMALL), 10)
    b = build_dataset(DataConfig.from_dict({**SMALL, "seed": 1}), 10)
    assert a.fingerprint != b.fingerprint


def test_mixture_log_prob_matches_full_dimensional_density():
    """Known answer: each component is N(offset + Q mu, Q S Q^T + s^2 I) in R^D."""
    mix = make_mixture(SyntheticConfig(dim=6, n_modes=3, latent_dim=2, noise_std=0.3), seed=3)
    x, _ = sample_mixture(mix, 50, seed=4)
    Q, off = mix.basis.double(), mix.offset.double()
    comps = []
    for w, mu, cov in zip(mix.weights.double(), mix.means.double(), mix.covs.double(), strict=True):
        full = torch.distributions.MultivariateNormal(
            off + Q @ mu, Q @ cov @ Q.T + 0.09 * torch.eye(6, dtype=torch.float64)
        )
        comps.append(full.log_prob(x.double()) + math.log(w))
    expected = torch.logsumexp(torch.stack(comps, -1), -1)
    torch.testing.assert_close(mix.log_prob(x), expected, atol=1e-6, rtol=1e-6)


def test_mixture_has_unequal_separated_modes():
    mix = make_mixture(SyntheticConfig(), seed=0)
    assert mix.weights.max() / mix.weights.min() > 5
    x, comp = sample_mixture(mix, 2000, seed=1)
    assert (mix.assign(x) == comp).float().mean() > 0.99


def _write(path, arr):
    suffix = path.suffix
    if suffix == ".npy":
        np.save(path, arr)
    elif suffix == ".pt":
        torch.save(torch.as_tensor(arr), path)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({"embeddings": torch.as_tensor(arr).contiguous()}, str(path))
    elif suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(arr, columns=[f"d{i}" for i in range(arr.shape[1])]).to_parquet(path)


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors", ".parquet"])
def test_every_file_format_loads(tmp_path, suffix):
    arr = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    path = tmp_path / f"emb{suffix}"
    _write(path, arr)
    np.testing.assert_allclose(load_embeddings(path).numpy(), arr)


def test_file_dataset_takes_d_from_the_data(tmp_path):
    arr = np.random.default_rng(0).normal(size=(300, 24)).astype(np.float32)
    np.save(tmp_path / "e.npy", arr)
    data = build_dataset(
        DataConfig.from_dict({"path": str(tmp_path / "e.npy"), "n_val": 20, "n_test": 30}), 100
    )
    assert data.dim == 24 and len(data.train_pool) == 250 and data.mixture is None


@pytest.mark.parametrize(
    "name,arr,needle",
    [
        ("rank1.npy", np.zeros(10, dtype=np.float32), "2-D array"),
        ("rank3.npy", np.zeros((2, 3, 4), dtype=np.float32), "2-D array"),
        ("strings.npy", np.array([["a", "b"], ["c", "d"]]), "not numeric"),
        ("nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32), "NaN/Inf"),
        ("inf.pt", np.array([[0.0, 1.0], [np.inf, 2.0]], dtype=np.float32), "NaN/Inf"),
        ("few.npy", np.zeros((5, 3), dtype=np.float32), "needs 100"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, name, arr, needle):
    path = tmp_path / name
    _write(path, arr) if path.suffix != ".npy" else np.save(path, arr)
    with pytest.raises(DataError) as info:
        load_embeddings(path, min_rows=100)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_missing_unreadable_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_embeddings(tmp_path / "nope.npy")
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"\x00not an npy file")
    with pytest.raises(DataError, match="cannot read"):
        load_embeddings(garbage)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_embeddings(tmp_path / "x.csv")
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]}).to_parquet(tmp_path / "mixed.parquet")
    with pytest.raises(DataError, match="non-numeric column"):
        load_embeddings(tmp_path / "mixed.parquet")


def test_bad_data_config_names_the_key():
    with pytest.raises(ValueError, match="data: unknown key"):
        DataConfig.from_dict({"n_vall": 3})
    with pytest.raises(ValueError, match="data.path is not set"):
        DataConfig.from_dict({"source": "file"})
    with pytest.raises(DataError, match="n_rows=600 is below"):
        build_dataset(DataConfig.from_dict(SMALL), 1000)


def test_a_saved_dataset_is_readable_by_the_group_and_others(tmp_path):
    """safetensors' save_file creates 0600; outputs get the mode a new file gets (umask 022)."""
    import os

    old = os.umask(0o022)
    try:
        build_dataset(DataConfig.from_dict(SMALL), 100).save(tmp_path / "pool.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "pool.safetensors").stat().st_mode & 0o777 == 0o644

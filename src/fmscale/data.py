"""Data: the embedded synthetic mixture, user files, fixed splits and standardisation.

A dataset is a pool of N x D rows cut once, by a seeded permutation, into a validation set, a
test set and a train pool. A cell with ``n_train`` uses the first ``n_train`` rows of the train
pool, so larger cells contain smaller ones and the held-out sets never touch any of them. Rows
are standardised per dimension with the train pool's mean and std.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig, SyntheticConfig
from .datafile import FILE_SUFFIXES, DataError, read_array
from .files import atomic_path
from .metrics import leading_axes, principal_axes

log = logging.getLogger(__name__)


@dataclass
class Mixture:
    """Known generating distribution of the synthetic data (raw, unstandardised space)."""

    weights: torch.Tensor  # [K]
    means: torch.Tensor  # [K, k]
    covs: torch.Tensor  # [K, k, k]
    basis: torch.Tensor  # [D, k], orthonormal columns
    offset: torch.Tensor  # [D]
    noise_std: float

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D] raw rows -> [N, K] log(w_j) + log N(x; component j), float64."""
        x = x.double() - self.offset.double()
        basis = self.basis.double()
        z = x @ basis
        resid = x - z @ basis.T
        k, d = basis.shape[1], basis.shape[0]
        var = self.noise_std**2
        covs = self.covs.double() + var * torch.eye(k, dtype=torch.float64)
        comp = torch.distributions.MultivariateNormal(self.means.double(), covariance_matrix=covs)
        in_plane = comp.log_prob(z[:, None, :])  # [N, K]
        off_plane = -(resid**2).sum(-1) / (2 * var) - (d - k) / 2 * math.log(2 * math.pi * var)
        return in_plane + off_plane[:, None] + self.weights.double().log()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """True log-density (nats) of raw rows."""
        return torch.logsumexp(self.component_log_probs(x), dim=-1)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Most likely component of each raw row."""
        return self.component_log_probs(x).argmax(-1)

    def state(self) -> dict[str, torch.Tensor]:
        return {
            "weights": self.weights,
            "means": self.means,
            "covs": self.covs,
            "basis": self.basis,
            "offset": self.offset,
            "noise_std": torch.tensor(self.noise_std),
        }

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Mixture:
        kwargs = {k: v for k, v in state.items() if k != "noise_std"}
        return cls(noise_std=float(state["noise_std"]), **kwargs)


def make_mixture(cfg: SyntheticConfig, seed: int) -> Mixture:
    """Seeded mixture: unequal weights (geometric), separated means, anisotropic covariances."""
    g = torch.Generator().manual_seed(seed)
    k = cfg.latent_dim
    weights = cfg.weight_decay ** torch.arange(cfg.n_modes, dtype=torch.float64)
    weights = weights / weights.sum()
    means = torch.randn(cfg.n_modes, k, generator=g, dtype=torch.float64) * cfg.mode_spread
    rot, _ = torch.linalg.qr(torch.randn(cfg.n_modes, k, k, generator=g, dtype=torch.float64))
    scales = torch.exp(
        torch.empty(cfg.n_modes, k, dtype=torch.float64).uniform_(math.log(0.05), 0.0, generator=g)
    )
    covs = rot @ torch.diag_embed(scales) @ rot.transpose(1, 2)
    basis, _ = torch.linalg.qr(torch.randn(cfg.dim, k, generator=g, dtype=torch.float64))
    offset = torch.randn(cfg.dim, generator=g, dtype=torch.float64) * 0.5
    return Mixture(
        weights.float(), means.float(), covs.float(), basis.float(), offset.float(), cfg.noise_std
    )


def sample_mixture(mix: Mixture, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n raw rows and their true components."""
    g = torch.Generator().manual_seed(seed)
    comp = torch.multinomial(mix.weights.double(), n, replacement=True, generator=g)
    chol = torch.linalg.cholesky(mix.covs.double())
    eps = torch.randn(n, mix.means.shape[1], generator=g, dtype=torch.float64)
    z = mix.means.double()[comp] + (chol[comp] @ eps.unsqueeze(-1)).squeeze(-1)
    noise = torch.randn(n, mix.basis.shape[0], generator=g, dtype=torch.float64) * mix.noise_std
    x = z @ mix.basis.double().T + noise + mix.offset.double()
    return x.float(), comp


def load_embeddings(path: str | Path, min_rows: int = 1, column: str | None = None) -> torch.Tensor:
    """Read an N x D float file (.npy, .pt, .safetensors, .parquet) and check it thoroughly.

    ``column``: the parquet column (or the tensor of a .pt / .safetensors dict) holding them.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        arr = read_array(path, column)
    except DataError:
        raise
    except Exception as exc:  # corrupt or unreadable files raise many library-specific errors
        raise DataError(
            f"{path}: cannot read as {path.suffix} ({type(exc).__name__}: {exc})"
        ) from None
    if isinstance(arr, np.ndarray):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise DataError(f"{path}: dtype {arr.dtype} is not numeric; expected N x D floats")
        arr = torch.from_numpy(np.array(arr, order="C", copy=None if arr.flags.writeable else True))
    if arr.dtype == torch.bool or arr.is_complex():
        raise DataError(f"{path}: dtype {arr.dtype} is not real-valued; expected N x D floats")
    if arr.dim() != 2:
        raise DataError(
            f"{path}: expected a 2-D array of N rows x D dims, got shape {tuple(arr.shape)}"
        )
    x = arr.float()
    bad = ~torch.isfinite(x)
    if bad.any():
        rows = torch.nonzero(bad.any(1)).flatten()
        raise DataError(
            f"{path}: {int(bad.sum())} NaN/Inf value(s), first in row(s) {rows[:5].tolist()}"
        )
    if x.shape[0] < min_rows:
        raise DataError(
            f"{path}: {x.shape[0]} rows, but the largest n_train plus validation and test sets "
            f"needs {min_rows}; lower n_train, data.n_val or data.n_test, or add rows"
        )
    return x


@dataclass
class Dataset:
    """Standardised splits of one dataset plus what is needed to undo the standardisation."""

    train_pool: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    fingerprint: str
    source: str
    mixture: Mixture | None = None
    constant_dims: int = 0
    """Dimensions (near-)constant in the train pool: centred, left unscaled."""
    axes: tuple[torch.Tensor, torch.Tensor] | None = None
    """The train pool's ``principal_axes``: computed once (by ``prepare-data``), then read."""

    @property
    def dim(self) -> int:
        return self.train_pool.shape[1]

    def train(self, n_train: int) -> torch.Tensor:
        """The first ``n_train`` rows of the train pool (nested across n_train)."""
        if not 0 < n_train <= len(self.train_pool):
            raise DataError(
                f"n_train={n_train} must be in [1, {len(self.train_pool)}] (train pool size)"
            )
        return self.train_pool[:n_train]

    def unstandardise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def principal_axes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, every principal direction) of the train pool, computed on first use."""
        if self.axes is None:
            self.axes = principal_axes(self.train_pool)
        return self.axes

    def pca(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The train pool's top-k ``pca_basis``, from the stored axes (no covariance per job)."""
        return leading_axes(self.principal_axes(), k)

    def save(self, path: str | Path) -> None:
        """One safetensors file with splits, statistics and (synthetic) the mixture."""
        from safetensors.torch import save_file

        tensors = {
            "train_pool": self.train_pool,
            "val": self.val,
            "test": self.test,
            "mean": self.mean,
            "std": self.std,
        }
        if self.mixture is not None:
            tensors.update({f"mixture.{k}": v.float() for k, v in self.mixture.state().items()})
        tensors["pca.mean"], tensors["pca.components"] = self.principal_axes()
        meta = {
            "fingerprint": self.fingerprint,
            "source": self.source,
            "constant_dims": str(self.constant_dims),
        }
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """A dataset written by ``save`` (``fmscale prepare-data``)."""
        meta, tensors = _read_prepared(path, with_tensors=True)
        mix = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("mixture.")}
        return cls(
            train_pool=tensors["train_pool"],
            val=tensors["val"],
            test=tensors["test"],
            mean=tensors["mean"],
            std=tensors["std"],
            fingerprint=meta["fingerprint"],
            source=meta["source"],
            mixture=Mixture.from_state(mix) if mix else None,
            constant_dims=int(meta.get("constant_dims", 0)),
            axes=(tensors["pca.mean"], tensors["pca.components"])
            if "pca.mean" in tensors
            else None,
        )

    @classmethod
    def random(cls, n_train: int, dim: int, seed: int, name: str) -> Dataset:
        """Standard normal rows, already standardised: ``n_train`` to train, half as many each
        to validate and test. For counting and checking a step, whose work does not depend on
        what the rows mean (``opcount``, the step-reference test)."""
        rows = torch.randn(2 * n_train, dim, generator=torch.Generator().manual_seed(seed))
        cut = n_train + n_train // 2
        return cls(
            train_pool=rows[:n_train],
            val=rows[n_train:cut],
            test=rows[cut:],
            mean=torch.zeros(dim),
            std=torch.ones(dim),
            fingerprint=name,
            source="random",
        )

    @staticmethod
    def peek_dim(path: str | Path) -> int:
        """The data dimension D of a prepared dataset, read from its header only."""
        return _read_prepared(path, with_tensors=False)[1]["train_pool"][1]


_PREPARED_KEYS = ("train_pool", "val", "test", "mean", "std")


def _read_prepared(path: str | Path, with_tensors: bool) -> tuple[dict[str, str], dict]:
    """(metadata, tensors or their shapes) of a prepared dataset; DataError naming the file."""
    from safetensors import safe_open

    hint = "rerun prepare_data"
    if Path(path).suffix.lower() in FILE_SUFFIXES:
        hint = "raw embeddings go to --data (or data.path), prepared datasets to --dataset"
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            missing = [k for k in _PREPARED_KEYS if k not in keys]
            missing += [k for k in ("fingerprint", "source") if k not in meta]
            if missing:
                raise DataError(f"{path}: not a prepared dataset (missing {missing}); {hint}")
            if with_tensors:
                return meta, {k: f.get_tensor(k) for k in keys}
            return meta, {k: f.get_slice(k).get_shape() for k in keys}
    except DataError:
        raise
    except Exception as exc:  # unreadable or not safetensors: many library-specific errors
        raise DataError(f"{path}: not a readable prepared dataset ({exc}); {hint}") from None


def fingerprint(x: torch.Tensor, cfg: DataConfig) -> str:
    """sha256 of the raw rows and the split settings (first 16 hex digits)."""
    h = hashlib.sha256(x.contiguous().numpy().tobytes())
    h.update(json.dumps({"n_val": cfg.n_val, "n_test": cfg.n_test, "seed": cfg.seed}).encode())
    return h.hexdigest()[:16]


def build_dataset(cfg: DataConfig, max_n_train: int = 1) -> Dataset:
    """Load or generate the rows, split them and standardise with train-pool statistics."""
    need = max_n_train + cfg.n_val + cfg.n_test
    mixture = None
    if cfg.file:
        raw = load_embeddings(cfg.file, min_rows=need, column=cfg.column)
        source = cfg.file
    else:
        if cfg.synthetic.n_rows < need:
            raise DataError(
                f"data.synthetic.n_rows={cfg.synthetic.n_rows} is below the largest n_train "
                f"({max_n_train}) + n_val ({cfg.n_val}) + n_test ({cfg.n_test}) = {need}"
            )
        mixture = make_mixture(cfg.synthetic, cfg.seed)
        raw, _ = sample_mixture(mixture, cfg.synthetic.n_rows, cfg.seed + 1)
        source = "synthetic"
    perm = torch.randperm(len(raw), generator=torch.Generator().manual_seed(cfg.seed))
    val, test = raw[perm[: cfg.n_val]], raw[perm[cfg.n_val : cfg.n_val + cfg.n_test]]
    pool = raw[perm[cfg.n_val + cfg.n_test :]]
    mean, std = pool.mean(0), pool.std(0)
    flat = constant_dimensions(std)
    if flat.any():
        log.warning(
            "%d (near-)constant dimension(s) in the train pool (std <= %g x the median std); "
            "centred and left unscaled",
            int(flat.sum()),
            RELATIVE_FLAT_STD,
        )
        std = torch.where(flat, torch.ones_like(std), std)
    return Dataset(
        train_pool=(pool - mean) / std,
        val=(val - mean) / std,
        test=(test - mean) / std,
        mean=mean,
        std=std,
        fingerprint=fingerprint(raw, cfg),
        source=source,
        mixture=mixture,
        constant_dims=int(flat.sum()),
    )


RELATIVE_FLAT_STD = 1e-6
"""A dimension whose std is at most this fraction of the median std counts as constant."""


def constant_dimensions(std: torch.Tensor) -> torch.Tensor:
    """Mask of (near-)constant dimensions: std <= RELATIVE_FLAT_STD x median std (or ~0)."""
    return std <= torch.clamp(RELATIVE_FLAT_STD * std.median(), min=1e-30)

"""Evaluate one cell: sample its EMA model, score the samples, and score the reference rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import EvalConfig
from .data import Dataset, Mixture
from .devices import pick_device
from .errors import CellError
from .exact_field import MixtureField
from .files import atomic_write
from .flow import build_field
from .layout import cell_digest
from .metrics import distribution_metrics, gaussian_fit_samples
from .scoring import (
    generalisation_gap,
    generate,
    validation_loss,
)


def _cell_bytes(run_dir: Path) -> bytes:
    """The raw ``cell.json`` of ``run_dir``; CellError naming the file if it cannot be read."""
    cell_file = run_dir / "cell.json"
    try:
        return cell_file.read_bytes()
    except FileNotFoundError:
        raise CellError(
            f"{cell_file}: missing; train the cell first (fmscale train ... --out {run_dir})"
        ) from None
    except OSError as exc:
        raise CellError(f"{cell_file}: unreadable ({exc}); retrain the cell") from None


def read_cell(run_dir: str | Path) -> dict[str, Any]:
    """The ``cell.json`` a finished train job wrote in ``run_dir``."""
    run_dir = Path(run_dir)
    try:
        return json.loads(_cell_bytes(run_dir))
    except ValueError as exc:  # not JSON, or not UTF-8
        raise CellError(f"{run_dir / 'cell.json'}: unreadable ({exc}); retrain the cell") from None


def parameterisation_of(cell: dict[str, Any]) -> str:
    """The cell's parameterisation (``velocity`` for cells trained before the setting)."""
    return cell.get("train", {}).get("parameterisation", "velocity")


def load_cell(
    run_dir: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The cell's EMA model (in eval mode) and its ``cell.json``."""
    from safetensors.torch import load_file

    cell = read_cell(run_dir)
    weights = Path(run_dir) / "model.safetensors"
    if not weights.exists():
        raise CellError(
            f"{weights}: missing; train the cell first (fmscale train ... --out {run_dir})"
        )
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise CellError(f"{weights}: unreadable ({exc}); retrain the cell") from None
    model = build_field(cell["arch"], cell["row"], cell["data_dim"], parameterisation_of(cell))
    if not any(key.startswith("net.") for key in state):  # a network saved before fields
        state = {f"net.{key}": value for key, value in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CellError(
            f"{weights}: does not match {cell['arch']}/{cell['scale']} ({exc})"
        ) from None
    return model.to(device).eval(), cell


def synthetic_metrics(
    samples: torch.Tensor, data: Dataset, quantile: float = 0.999
) -> dict[str, float]:
    """Mode metrics against the known mixture (samples are standardised; mapped back first).

    A sample is on a mode when its in-plane Mahalanobis distance to its most likely
    component is within the chi-square ``quantile``; a mode is covered when it holds at least
    a quarter of its expected share of samples.
    """
    from scipy.special import gammaincinv  # chi2.ppf(q, k) = 2 gammaincinv(k / 2, q); the
    # lighter import (scipy.stats takes ~1 s, every evaluate job)

    mix: Mixture = data.mixture
    raw = data.unstandardise(samples).double()
    comp = mix.assign(raw)
    z = (raw - mix.offset.double()) @ mix.basis.double()
    k = z.shape[1]
    covs = mix.covs.double() + mix.noise_std**2 * torch.eye(k, dtype=torch.float64)
    diff = (z - mix.means.double()[comp]).unsqueeze(-1)
    d2 = (diff.transpose(1, 2) @ torch.linalg.solve(covs[comp], diff)).flatten()
    on_mode = d2 <= 2 * gammaincinv(k / 2, quantile)
    counts = torch.bincount(comp[on_mode], minlength=len(mix.weights)).double()
    weights = mix.weights.double()
    expected = weights * len(samples)
    hist = (counts + 0.5) / (counts.sum() + 0.5 * len(counts))
    return {
        "modes_covered": int((counts >= 0.25 * expected).sum()),
        "modes_total": len(counts),
        "on_mode_fraction": on_mode.double().mean().item(),
        "mode_kl": (weights * (weights / hist).log()).sum().item(),
        "logpdf_per_dim": (mix.log_prob(raw).mean() / raw.shape[1]).item(),
    }


def score(
    samples: torch.Tensor, data: Dataset, train: torch.Tensor, cfg: EvalConfig, pca: Any
) -> dict[str, float]:
    """Every distribution metric (full and PCA space), plus the mode metrics on synthetic data."""
    test = data.test[: cfg.n_samples]
    out = distribution_metrics(samples, test, train, pca=pca, k=cfg.knn_k, seed=cfg.seed)
    if data.mixture is not None:
        out.update(synthetic_metrics(samples, data))
    return out


def reference_rows(
    data: Dataset, n_train: int, cfg: EvalConfig, pca: Any = None
) -> dict[str, dict[str, float]]:
    """The rows a model's metrics are read against, for this dataset and n_train.

    real_holdout: validation rows the training never saw (the floor a perfect model reaches
    at this sample size); gaussian_fit: samples of N(mean, cov) of the training rows;
    memoriser: training rows drawn with replacement (a model that copies its data);
    empirical_flow: the exact velocity field of the training rows, sampled like a model (what
    a model of unlimited capacity trained to its optimum would do), with its val_loss_ratio;
    exact_field (synthetic data): the generating mixture's exact field, whose val_loss_ratio
    is the irreducible loss no model can beat.
    """
    train = data.train(n_train)
    pca = pca if pca is not None else data.pca(cfg.pca_dims)
    n = min(cfg.n_samples, len(data.test))
    pick = torch.randint(n_train, (n,), generator=torch.Generator().manual_seed(cfg.seed))
    candidates = {
        "real_holdout": data.val[:n],
        "gaussian_fit": gaussian_fit_samples(train, n, seed=cfg.seed),
        "memoriser": train[pick],
    }
    rows = {name: score(s, data, train, cfg, pca) for name, s in candidates.items()}
    fields = {}
    if n_train <= cfg.empirical_flow_max_n:
        fields["empirical_flow"] = MixtureField.memoriser(train)
    else:
        rows["empirical_flow"] = {
            "skipped": f"n_train={n_train} is above evaluate.empirical_flow_max_n="
            f"{cfg.empirical_flow_max_n} (each velocity evaluation costs n_train x D per sample)"
        }
    if data.mixture is not None:
        fields["exact_field"] = MixtureField.population(data)
    for name, field in fields.items():
        samples = generate(field, n, data.dim, max(cfg.nfe), cfg.solver, cfg.batch_size)
        val_loss, zero_loss = validation_loss(field, data.val, cfg.batch_size)
        rows[name] = {"val_loss_ratio": val_loss / zero_loss} | score(
            samples, data, train, cfg, pca
        )
    return rows


def evaluate_cell(
    run_dir: str | Path,
    data: Dataset,
    cfg: EvalConfig,
    device: str = "auto",
    references: bool = False,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Score a trained cell at every NFE in ``cfg.nfe``; write ``metrics.json`` (or ``out``).

    ``cell_digest`` records the sha256 of the ``cell.json`` bytes: the training run scored, which
    the summary checks so metrics of a deleted or replaced run never read as current.
    """
    run_dir = Path(run_dir)
    start = time.perf_counter()
    # Digest before loading: a cell.json replaced in between then reads stale, never current.
    digest = cell_digest(_cell_bytes(run_dir))
    model, cell = load_cell(run_dir, pick_device(device))
    if cell["data_fingerprint"] != data.fingerprint:
        raise CellError(
            f"{run_dir}: trained on data {cell['data_fingerprint']}, but the given data is "
            f"{data.fingerprint}; evaluate with the data the cell was trained on"
        )
    train = data.train(cell["n_train"])
    pca = data.pca(cfg.pca_dims)
    n = min(cfg.n_samples, len(data.test))
    losses = generalisation_gap(model, data.val, train, cfg.batch_size)
    by_nfe = {}
    for nfe in sorted(cfg.nfe):
        samples = generate(model, n, data.dim, nfe, cfg.solver, cfg.batch_size)
        by_nfe[str(nfe)] = score(samples, data, train, cfg, pca)
    headline = str(max(cfg.nfe))
    result = {
        "cell": {k: cell[k] for k in ("arch", "scale", "n_train", "seed", "n_params", "steps")},
        "cell_digest": digest,
        **losses,
        "solver": cfg.solver,
        "headline_nfe": int(headline),
        "n_samples": n,
        "metrics": by_nfe[headline],
        "by_nfe": by_nfe,
        "eval_time_s": round(time.perf_counter() - start, 2),
    }
    if references:
        result["references"] = reference_rows(data, cell["n_train"], cfg, pca)
    atomic_write(Path(out) if out else run_dir / "metrics.json", json.dumps(result, indent=2))
    return result

"""What the scripts that train cells share: the synthetic data with its floor, and the budget."""

from __future__ import annotations

import argparse

from fmscale.config import PARAMETERISATIONS, DataConfig, SyntheticConfig, TrainConfig
from fmscale.data import Dataset, build_dataset
from fmscale.exact_field import MixtureField
from fmscale.scoring import validation_loss


def add_cell_arguments(p: argparse.ArgumentParser) -> None:
    """--n, the budget (--steps, --batch, --lr, --parameterisation) and the data (--n-modes,
    --latent-dim): the default study's budget and data unless told otherwise."""
    p.add_argument("--n", type=int, default=4096, help="n_train (default 4096)")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument(
        "--parameterisation", choices=PARAMETERISATIONS, default=TrainConfig.parameterisation
    )
    p.add_argument("--n-modes", type=int, default=SyntheticConfig.n_modes)
    p.add_argument("--latent-dim", type=int, default=SyntheticConfig.latent_dim)


def synthetic_data(n_train: int, n_modes: int, latent_dim: int) -> tuple[Dataset, float]:
    """The default synthetic data (500 validation, 1000 test rows) with ``n_modes`` modes on a
    ``latent_dim``-dim latent, and its floor: the exact field's val_loss_ratio."""
    synthetic = SyntheticConfig(n_modes=n_modes, latent_dim=latent_dim)
    data = build_dataset(DataConfig(n_val=500, n_test=1000, synthetic=synthetic), n_train)
    floor, zero = validation_loss(MixtureField.population(data), data.val)
    return data, floor / zero


def budget(
    args: argparse.Namespace, trajectory_points: int = TrainConfig.trajectory_points
) -> TrainConfig:
    """``args.steps`` of batch ``args.batch`` at ``args.lr`` under ``args.parameterisation``,
    on the CPU, one checkpoint at the end."""
    return TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        parameterisation=args.parameterisation,
        ckpt_every=args.steps,
        log_every=max(1, args.steps // 10),
        trajectory_points=trajectory_points,
        device="cpu",
    )

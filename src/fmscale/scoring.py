"""A velocity field's flow-matching losses on fixed noise and times, and its samples from fixed
noise: what ``evaluate`` scores and the training trajectory tracks."""

from __future__ import annotations

import torch
from torch import nn

from .flow import cfm_losses, sample

VAL_NOISE_SEED = 20_240_101


SAMPLE_NOISE_SEED = 31_337


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters (or, for a parameter-free field, its buffers) live."""
    return next(iter([*model.parameters(), *model.buffers()])).device


@torch.no_grad()
def pair_losses(
    model: nn.Module, rows: torch.Tensor, n_pairs: int, batch_size: int = 1000
) -> tuple[torch.Tensor, float]:
    """The validation protocol on any rows: the CFM loss of each of ``n_pairs`` (row, noise,
    time) triples, the rows cycled (each drawn again with new noise and time when fewer than
    ``n_pairs``), noise and times fixed by ``VAL_NOISE_SEED``; and v = 0's mean loss on the same.
    """
    g = torch.Generator().manual_seed(VAL_NOISE_SEED)
    x0 = torch.randn(n_pairs, rows.shape[1], generator=g)
    t = torch.rand(n_pairs, generator=g)
    x1 = rows[torch.arange(n_pairs) % len(rows)]
    device = device_of(model)
    losses = [
        cfm_losses(model, x0[sl].to(device), x1[sl].to(device), t[sl].to(device)).double().cpu()
        for sl in (slice(i, i + batch_size) for i in range(0, n_pairs, batch_size))
    ]
    return torch.cat(losses), ((x1 - x0) ** 2).mean().item()


def path_loss(
    model: nn.Module, rows: torch.Tensor, n_pairs: int, batch_size: int = 1000
) -> tuple[float, float]:
    """The mean of ``pair_losses`` and v = 0's loss on the same triples."""
    losses, zero = pair_losses(model, rows, n_pairs, batch_size)
    return losses.mean().item(), zero


def generalisation_gap(
    model: nn.Module, val: torch.Tensor, train: torch.Tensor, batch_size: int = 1000
) -> dict[str, float]:
    """Validation and training loss on the same noise and time draws, their gap and the gap's
    standard error over the draws (paired: sd(val_i - train_i) / sqrt(n)); with the zero-velocity
    losses of each."""
    val_losses, val_zero = pair_losses(model, val, len(val), batch_size)
    train_losses, train_zero = pair_losses(model, train, len(val), batch_size)
    diff = val_losses - train_losses
    val_loss, train_loss = val_losses.mean().item(), train_losses.mean().item()
    return {
        "val_loss": val_loss,
        "val_loss_zero_velocity": val_zero,
        "val_loss_ratio": val_loss / val_zero,
        "train_loss": train_loss,
        "train_loss_ratio": train_loss / train_zero,
        "gap": val_loss - train_loss,
        "gap_se": (diff.std() / len(diff) ** 0.5).item(),
        "gap_ratio": val_loss / train_loss,
    }


def validation_loss(
    model: nn.Module, val: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """CFM loss on the validation rows with fixed noise and times, and v = 0's loss on the same."""
    return path_loss(model, val, len(val), batch_size)


def training_loss(
    model: nn.Module, train: torch.Tensor, n_val: int, batch_size: int = 1000
) -> tuple[float, float]:
    """The validation protocol on the cell's training rows: the same ``n_val`` noise and time
    draws, so val_loss - train_loss is the generalisation gap, not sampling noise."""
    return path_loss(model, train, n_val, batch_size)


@torch.no_grad()
def generate(
    model: nn.Module, n: int, dim: int, nfe: int, solver: str, batch_size: int
) -> torch.Tensor:
    """n samples from fixed noise (the same for every cell), on the CPU."""
    x0 = torch.randn(n, dim, generator=torch.Generator().manual_seed(SAMPLE_NOISE_SEED))
    device = device_of(model)
    out = [
        sample(model, x0[i : i + batch_size].to(device), nfe, solver).cpu()
        for i in range(0, n, batch_size)
    ]
    return torch.cat(out)

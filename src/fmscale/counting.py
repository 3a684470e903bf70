"""Parameters of a cell's velocity field, counted on the meta device (what the gate checks)."""

from __future__ import annotations

import torch
from torch import nn

from .config import SyntheticConfig, TrainConfig
from .flow import build_field


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in the model's parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_model(
    arch: str,
    row: dict,
    data_dim: int = SyntheticConfig.dim,
    parameterisation: str = TrainConfig.parameterisation,
) -> int:
    """Build the velocity field a cell trains on the meta device (no memory, no init cost) and
    count it: the network plus whatever its parameterisation adds."""
    with torch.device("meta"):
        model = build_field(arch, row, data_dim, parameterisation)
    return count_parameters(model)

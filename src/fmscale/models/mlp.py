"""Residual MLP velocity network."""

from __future__ import annotations

import torch
from torch import nn

from ..config import SyntheticConfig
from .configs import MLPConfig
from .layers import FiLMResBlock, TimestepEmbedder, zero_linear


class MLPVelocity(nn.Module):
    """v(x, t): project D -> hidden, residual FiLM blocks, zero-initialised projection back to D."""

    def __init__(self, cfg: MLPConfig, data_dim: int = SyntheticConfig.dim):
        super().__init__()
        h = cfg.hidden_dim
        self.data_dim = data_dim
        self.t_embed = TimestepEmbedder(h)
        self.in_proj = nn.Linear(data_dim, h)
        self.blocks = nn.ModuleList(
            FiLMResBlock(h, h, cfg.mlp_ratio) for _ in range(cfg.num_layers)
        )
        self.norm_out = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.out_proj = zero_linear(h, data_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t)
        h = self.in_proj(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out_proj(self.norm_out(h))

"""Residual MLP velocity network."""

from __future__ import annotations

import torch
from torch import nn

from .configs import MLPConfig
from .layers import TimestepEmbedder, modulate, zero_linear


class MLPBlock(nn.Module):
    """x + fc2(SiLU(fc1(FiLM_t(norm(x))))). FiLM starts at identity (zero-initialised)."""

    def __init__(self, hidden_dim: int, mlp_ratio: float):
        super().__init__()
        inner = int(hidden_dim * mlp_ratio)
        self.norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.film = nn.Sequential(nn.SiLU(), zero_linear(hidden_dim, 2 * hidden_dim))
        self.fc1 = nn.Linear(hidden_dim, inner)
        self.fc2 = nn.Linear(inner, hidden_dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.film(c).chunk(2, dim=-1)
        return x + self.fc2(self.act(self.fc1(modulate(self.norm(x), shift, scale))))


class MLPVelocity(nn.Module):
    """v(x, t): project D -> hidden, residual FiLM blocks, zero-initialised projection back to D."""

    def __init__(self, cfg: MLPConfig, data_dim: int = 1024):
        super().__init__()
        h = cfg.hidden_dim
        self.data_dim = data_dim
        self.t_embed = TimestepEmbedder(h)
        self.in_proj = nn.Linear(data_dim, h)
        self.blocks = nn.ModuleList(MLPBlock(h, cfg.mlp_ratio) for _ in range(cfg.num_layers))
        self.norm_out = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.out_proj = zero_linear(h, data_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t)
        h = self.in_proj(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out_proj(self.norm_out(h))

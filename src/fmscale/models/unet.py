"""U-Net MLP velocity network: down path, bottleneck, up path with skip connections."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ..config import SyntheticConfig
from .configs import UNetConfig
from .layers import FiLMResBlock, TimestepEmbedder, zero_linear


class UNetVelocity(nn.Module):
    """v(x, t) through widths ``hidden_dims`` down, a bottleneck block, and back up.

    Each up level concatenates the matching down level's activation (the skip) and fuses it
    with a linear layer before its residual block.
    """

    def __init__(self, cfg: UNetConfig, data_dim: int = SyntheticConfig.dim):
        super().__init__()
        dims = list(cfg.hidden_dims)
        cond = dims[0]
        self.data_dim = data_dim
        self.t_embed = TimestepEmbedder(cond)
        self.in_proj = nn.Linear(data_dim, dims[0])
        self.down_blocks = nn.ModuleList(FiLMResBlock(d, cond, cfg.mlp_ratio) for d in dims)
        self.downsample = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.mid = FiLMResBlock(dims[-1], cond, cfg.mlp_ratio)
        self.upsample = nn.ModuleList(nn.Linear(b, a) for a, b in itertools.pairwise(dims))
        self.fuse = nn.ModuleList(nn.Linear(2 * d, d) for d in dims)
        self.up_blocks = nn.ModuleList(FiLMResBlock(d, cond, cfg.mlp_ratio) for d in dims)
        self.norm_out = nn.LayerNorm(dims[0], elementwise_affine=False, eps=1e-6)
        self.out_proj = zero_linear(dims[0], data_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t)
        h = self.in_proj(x)
        skips = []
        for level, block in enumerate(self.down_blocks):
            h = block(h, c)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid(h, c)
        for level in reversed(range(len(self.up_blocks))):
            if level < len(self.upsample):
                h = self.upsample[level](h)
            h = self.fuse[level](torch.cat([h, skips[level]], dim=-1))
            h = self.up_blocks[level](h, c)
        return self.out_proj(self.norm_out(h))

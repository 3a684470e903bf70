"""DiT velocity network: adaLN-Zero transformer over tokens cut from the vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SyntheticConfig
from .configs import DiTConfig
from .layers import TimestepEmbedder, TokenHead, check_tokenizable, modulate, zero_linear


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP, each modulated (shift, scale) and gated by t; gates start at 0."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        inner = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, dim)
        )
        self.ada = nn.Sequential(nn.SiLU(), zero_linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiTVelocity(nn.Module):
    """v(x, t): D -> ``num_tokens`` x chunk tokens, learned positions, adaLN-Zero blocks."""

    def __init__(self, cfg: DiTConfig, data_dim: int = SyntheticConfig.dim):
        super().__init__()
        self.data_dim = data_dim
        self.num_tokens = cfg.num_tokens
        self.chunk = check_tokenizable(data_dim, cfg.num_tokens)
        h = cfg.hidden_dim
        self.t_embed = TimestepEmbedder(h)
        self.patch = nn.Linear(self.chunk, h)
        self.pos = nn.Parameter(torch.randn(1, cfg.num_tokens, h) * 0.02)
        self.blocks = nn.ModuleList(
            DiTBlock(h, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.num_layers)
        )
        self.head = TokenHead(h, h, self.chunk)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t)
        h = self.patch(x.view(-1, self.num_tokens, self.chunk)) + self.pos
        for block in self.blocks:
            h = block(h, c)
        return self.head(h, c).reshape(-1, self.data_dim)

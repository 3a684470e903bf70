"""Building blocks shared by the velocity networks."""

from __future__ import annotations

import math

import torch
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """FiLM / adaLN modulation; ``shift`` and ``scale`` are [B, C] and broadcast over tokens."""
    if x.dim() == 3:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
    return x * (1 + scale) + shift


def zero_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer whose weight and bias start at zero (output layers, adaLN-Zero)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of ``t * time_scale`` followed by a two-layer MLP (as in DiT).

    t lives in [0, 1]; scaling it by 1000 before the sin/cos makes the features actually move
    over that interval (unscaled, the low frequencies barely change between t = 0.1 and 0.2).
    The frequencies are a buffer computed once (not per call: 3 fewer operations per forward),
    left out of the state_dict, so weights saved before it load unchanged.
    """

    def __init__(self, hidden_dim: int, freq_dim: int = 256, time_scale: float = 1000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_scale = time_scale
        half = freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        nn.init.normal_(self.mlp[0].weight, std=0.02)
        nn.init.normal_(self.mlp[2].weight, std=0.02)

    def sinusoidal(self, t: torch.Tensor) -> torch.Tensor:
        """[B] -> [B, freq_dim] features: cos then sin at geometrically spaced frequencies."""
        args = (t.float() * self.time_scale)[:, None] * self.freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoidal(t).to(self.mlp[0].weight.dtype))


class FiLMResBlock(nn.Module):
    """x + fc2(SiLU(fc1(FiLM_t(norm(x))))); FiLM is zero-initialised, so it starts at identity.

    ``cond_dim`` is the width of the time embedding that FiLM maps to a (shift, scale) pair.
    """

    def __init__(self, dim: int, cond_dim: int, mlp_ratio: float):
        super().__init__()
        inner = int(dim * mlp_ratio)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.film = nn.Sequential(nn.SiLU(), zero_linear(cond_dim, 2 * dim))
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.film(c).chunk(2, dim=-1)
        return x + self.fc2(self.act(self.fc1(modulate(self.norm(x), shift, scale))))


class TokenHead(nn.Module):
    """Final adaLN layer of the token models: norm, modulate by t, project to the chunk size."""

    def __init__(self, hidden_dim: int, cond_dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), zero_linear(cond_dim, 2 * hidden_dim))
        self.linear = zero_linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


def check_tokenizable(data_dim: int, num_tokens: int) -> int:
    """Return the chunk size of ``data_dim`` cut into ``num_tokens`` tokens, or raise ValueError."""
    if data_dim % num_tokens:
        raise ValueError(
            f"data_dim={data_dim} cannot be cut into num_tokens={num_tokens} equal chunks; "
            f"choose num_tokens dividing {data_dim}"
        )
    return data_dim // num_tokens

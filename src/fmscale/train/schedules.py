"""The learning-rate schedule (linear warm-up, cosine decay) and the EMA's decay, with its
warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_frac`` of the steps, then cosine down to ``min_lr_frac``."""
    warmup = int(cfg.warmup_frac * cfg.steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """EMA decay with warm-up, min(decay, (1 + step) / (10 + step)): early weights fade fast."""
    return min(cfg.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, params: list[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * params, for all tensors in one fused call."""
    torch._foreach_lerp_(list(ema.parameters()), params, 1 - decay)

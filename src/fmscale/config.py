"""Typed settings for training and evaluation, read from the same YAML keys the workflow uses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

SOLVERS = {"euler": 1, "midpoint": 2, "heun": 2}
"""ODE solver name -> velocity evaluations per step."""


class ConfigError(ValueError):
    """A bad setting; the message names the key and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    """One cell's optimisation: a budget in steps, AdamW with warm-up + cosine, EMA with warm-up."""

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ot_pairing: bool = False
    ckpt_every: int = 500
    keep_ckpts: int = 2
    log_every: int = 50
    device: str = "auto"
    bf16: bool = True
    tf32: bool = True
    fused_adamw: bool = True
    compile: bool = False

    def check(self) -> None:
        for name in ("steps", "batch_size", "ckpt_every", "keep_ckpts", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)} must be >= 1")
        if not 0 <= self.warmup_frac < 1:
            raise ConfigError(f"train.warmup_frac={self.warmup_frac} must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay={self.ema_decay} must be in [0, 1)")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise ConfigError("train.lr and train.grad_clip must be > 0")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith(
            "cuda:"
        ):
            raise ConfigError(f"train.device={self.device!r}; use auto, cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class EvalConfig:
    """Sampling and metric settings for one cell."""

    nfe: tuple[int, ...] = (8, 32)
    solver: str = "midpoint"
    n_samples: int = 2000
    pca_dims: int = 32
    knn_k: int = 5
    seed: int = 0
    batch_size: int = 1000

    def check(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(f"evaluate.solver={self.solver!r}; available: {list(SOLVERS)}")
        if not self.nfe or any(n < 1 or n % SOLVERS[self.solver] for n in self.nfe):
            raise ConfigError(
                f"evaluate.nfe={list(self.nfe)} must be positive multiples of {SOLVERS[self.solver]} for {self.solver}"
            )
        for name in ("n_samples", "pca_dims", "knn_k", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate.{name} must be >= 1")


def from_section(cls: type[T], raw: dict[str, Any] | None, section: str) -> T:
    """Build ``cls`` from a mapping, naming ``section.key`` on unknown keys or wrong types."""
    raw = dict(raw or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    values = {}
    for key, value in raw.items():
        default = names[key].default
        if isinstance(default, tuple):
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{section}.{key}={value!r} must be true or false")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{section}.{key}={value!r} must be a number")
            if isinstance(default, int) and not isinstance(default, bool) and value != int(value):
                raise ConfigError(f"{section}.{key}={value!r} must be an integer")
            value = type(default)(value)
        values[key] = value
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check()
    return obj


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; errors name the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw

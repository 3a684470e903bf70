"""Architecture hyper-parameters as dataclasses: the keys a scaling-table row may hold.

Kept free of torch so the scaling table can be validated cheaply (e.g. while Snakemake builds
its DAG).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, get_type_hints


@dataclass(frozen=True)
class MLPConfig:
    """Residual MLP: ``num_layers`` blocks of width ``hidden_dim`` (inner width x ``mlp_ratio``)."""

    hidden_dim: int = 256
    num_layers: int = 4
    mlp_ratio: float = 4.0

    def check(self) -> None:
        _positive(self, "hidden_dim", "num_layers", "mlp_ratio")


@dataclass(frozen=True)
class DiTConfig:
    """adaLN-Zero transformer over ``num_tokens`` tokens cut from the vector."""

    hidden_dim: int = 384
    num_layers: int = 3
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_tokens: int = 16

    def check(self) -> None:
        _positive(self, "hidden_dim", "num_layers", "num_heads", "mlp_ratio", "num_tokens")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} is not divisible by num_heads={self.num_heads}"
            )


@dataclass(frozen=True)
class UNetConfig:
    """U-Net MLP: down path through ``hidden_dims``, a bottleneck, an up path with skips."""

    hidden_dims: tuple[int, ...] = (512, 256)
    mlp_ratio: float = 2.0

    def check(self) -> None:
        if not self.hidden_dims or any(d <= 0 for d in self.hidden_dims):
            raise ValueError(
                f"hidden_dims={list(self.hidden_dims)} must be a non-empty list of positive ints"
            )
        _positive(self, "mlp_ratio")


@dataclass(frozen=True)
class MambaConfig:
    """Bidirectional Mamba (model width ``hidden_dim``) over ``num_tokens`` chunks of the vector."""

    hidden_dim: int = 256
    num_layers: int = 4
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    num_tokens: int = 16

    def check(self) -> None:
        _positive(self, "hidden_dim", "num_layers", "d_state", "d_conv", "expand", "num_tokens")


ARCH_CONFIGS: dict[str, type] = {
    "mlp": MLPConfig,
    "dit": DiTConfig,
    "unet": UNetConfig,
    "mamba": MambaConfig,
}


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name}={getattr(cfg, name)} must be > 0")


def field_names(arch: str) -> list[str]:
    """The keys a row of ``arch`` may hold."""
    return [f.name for f in dataclasses.fields(ARCH_CONFIGS[arch])]


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Return ``value`` as the field's type, or raise ValueError naming the field."""
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if hint == tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            raise ValueError(f"{name} must be a list of integers, got {value!r}")
        return tuple(value)
    raise TypeError(f"unsupported field type {hint} for {name}")


def build_config(arch: str, row: dict[str, Any]) -> Any:
    """Make ``arch``'s config from a row; unknown keys, wrong types and bad values raise ValueError."""
    cls = ARCH_CONFIGS[arch]
    hints = get_type_hints(cls)
    allowed = field_names(arch)
    unknown = sorted(set(row) - set(allowed))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for arch '{arch}'; allowed keys: {allowed}")
    cfg = cls(**{k: _coerce(k, v, hints[k]) for k, v in row.items()})
    cfg.check()
    return cfg

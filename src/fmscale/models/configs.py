"""Architecture hyper-parameters as dataclasses: the keys a scaling-table row may hold.

``ARCH_CONFIGS`` is the registry of architectures: each config names its network class
(``network = "<module>:<class>"`` in ``fmscale.models``) and its width knob (``width``: the key
``fmscale table`` moves to fit a capacity target at the data's D; a list of widths is scaled
as a whole). Kept free of torch so the scaling
table can be validated cheaply (e.g. while Snakemake builds its DAG).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import from_section


@dataclass(frozen=True)
class MLPConfig:
    """Residual MLP: ``num_layers`` blocks of width ``hidden_dim`` (inner width x ``mlp_ratio``)."""

    network: ClassVar[str] = "mlp:MLPVelocity"
    width: ClassVar[str] = "hidden_dim"
    hidden_dim: int = 256
    num_layers: int = 4
    mlp_ratio: float = 4.0

    def check(self) -> None:
        _positive(self, "hidden_dim", "num_layers", "mlp_ratio")


@dataclass(frozen=True)
class DiTConfig:
    """adaLN-Zero transformer over ``num_tokens`` tokens cut from the vector."""

    network: ClassVar[str] = "dit:DiTVelocity"
    width: ClassVar[str] = "hidden_dim"
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

    network: ClassVar[str] = "unet:UNetVelocity"
    width: ClassVar[str] = "hidden_dims"
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

    network: ClassVar[str] = "mamba:MambaVelocity"
    width: ClassVar[str] = "hidden_dim"
    hidden_dim: int = 256
    num_layers: int = 4
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    num_tokens: int = 16

    MAX_D_STATE: ClassVar[int] = 256
    """mamba-ssm's selective_scan_cuda refuses a larger state (``selective_scan.cpp``)."""
    D_CONV_RANGE: ClassVar[tuple[int, int]] = (2, 4)
    """The conv widths causal-conv1d's kernels take (``causal_conv1d.cpp``)."""

    def check(self) -> None:
        _positive(self, "hidden_dim", "num_layers", "d_state", "d_conv", "expand", "num_tokens")
        low, high = self.D_CONV_RANGE
        if not low <= self.d_conv <= high:
            raise ValueError(
                f"d_conv={self.d_conv} must be in {low}..{high}: mamba-ssm's fused path "
                "(causal-conv1d) takes no other width, so results would not carry to a GPU"
            )
        if self.d_state > self.MAX_D_STATE:
            raise ValueError(
                f"d_state={self.d_state} must be <= {self.MAX_D_STATE}: mamba-ssm's "
                "selective_scan_cuda takes no larger state"
            )


ARCH_CONFIGS: dict[str, type] = {  # the registry: adding an arch adds its config here
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


def build_config(arch: str, row: dict[str, Any]) -> Any:
    """``arch``'s config from a row; unknown keys, wrong types and bad values raise ValueError."""
    return from_section(ARCH_CONFIGS[arch], row)

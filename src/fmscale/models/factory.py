"""``create_model``: an architecture built from a scaling-table row plus overrides."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from torch import nn

from ..config import SyntheticConfig
from .configs import ARCH_CONFIGS, build_config, field_names
from .scaling import get_scaled_config

log = logging.getLogger(__name__)


def _network(spec: str) -> type[nn.Module]:
    module, name = spec.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), name)


ARCHITECTURES: dict[str, type[nn.Module]] = {
    arch: _network(cfg.network) for arch, cfg in ARCH_CONFIGS.items()
}
"""arch name -> network class, from the registry in ``configs.py``."""


def resolve_row(
    arch: str, scale: str | None = None, table: str | Path | None = None, **overrides: Any
) -> dict[str, Any]:
    """The table row with ``overrides`` applied; a conflicting override logs both values."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch '{arch}'; available: {list(ARCHITECTURES)}")
    row = get_scaled_config(arch, scale, table)
    unknown = sorted(set(overrides) - set(field_names(arch)))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} for arch '{arch}'; allowed: {field_names(arch)}"
        )
    for key, value in overrides.items():
        if key in row and row[key] != value:
            log.warning(
                "%s/%s: override %s=%r replaces the table's %s=%r",
                arch,
                scale or "default",
                key,
                value,
                key,
                row[key],
            )
        row[key] = value
    return row


def create_model(
    arch: str,
    scale: str | None = None,
    *,
    data_dim: int = SyntheticConfig.dim,
    table: str | Path | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build ``arch`` at ``scale`` (None: the table's default) for vectors of size ``data_dim``.

    ``overrides`` win over the table row. Unknown arch, scale or key raise ValueError.
    """
    return build_model(arch, resolve_row(arch, scale, table, **overrides), data_dim)


def build_model(arch: str, row: dict[str, Any], data_dim: int = SyntheticConfig.dim) -> nn.Module:
    """Build ``arch`` from a resolved row (e.g. the one a trained cell recorded)."""
    return ARCHITECTURES[arch](build_config(arch, row), data_dim=data_dim)

"""Velocity networks v(x, t) and ``create_model``, which builds them from the scaling table.

The torch-free parts (``configs``, ``scaling``) import without torch, so a workflow can read the
scaling table while it builds its DAG; everything else loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ARCHITECTURES": ".factory",
    "create_model": ".factory",
    "build_model": ".factory",
    "resolve_row": ".factory",
    "MambaBlock": ".mamba",
    "MAMBA_FUSED_AVAILABLE": ".mamba",
    "SCALING_CONFIGS": ".scaling",
    "get_scaled_config": ".scaling",
    "list_available_scales": ".scaling",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)

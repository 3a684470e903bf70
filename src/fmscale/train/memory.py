"""Out-of-memory: recognising it, and the estimate of a cell's memory its error message gives."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..flow import build_field

OOM_MARKERS = ("can't allocate memory", "not enough memory", "out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """A device allocator's failure: torch.OutOfMemoryError, or the CPU allocator's message."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in OOM_MARKERS)


def memory_estimate(
    arch: str,
    row: dict[str, Any],
    data_dim: int,
    batch_size: int,
    n_train: int,
    parameterisation: str = TrainConfig.parameterisation,
) -> dict[str, int | None]:
    """What training needs, in bytes, found without allocating (the model is built on ``meta``).

    ``state``: weights, grads, 2 AdamW moments and EMA, 5 fp32 copies of the parameters;
    ``activations``: roughly what backward keeps for one batch (the leaf modules' outputs;
    None if the model cannot run on ``meta``); ``data``: the training set on the device.
    """
    with torch.device("meta"):
        model = build_field(arch, row, data_dim, parameterisation)
        activations = _activation_bytes(model, batch_size, data_dim)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "params": n_params,
        "state": 5 * 4 * n_params,
        "activations": activations,
        "data": 4 * n_train * data_dim,
    }


def _activation_bytes(model: nn.Module, batch_size: int, data_dim: int) -> int | None:
    """fp32 bytes of the leaf modules' outputs for one batch, run on the ``meta`` device."""
    numel: list[int] = []
    for module in model.modules():
        if not any(module.children()):
            module.register_forward_hook(
                lambda _m, _i, out: numel.append(out.numel() if torch.is_tensor(out) else 0)
            )
    try:
        model(
            torch.zeros(batch_size, data_dim, device="meta"), torch.zeros(batch_size, device="meta")
        )
    except Exception:  # an op without a meta kernel: the size stays unknown
        return None
    return 4 * sum(numel)


def size_text(n_bytes: int | None) -> str:
    """Bytes in decimal units: 1.23 MB."""
    if n_bytes is None:
        return "unknown"
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.3g} {unit}"
        size /= 1000
    return f"{size:.3g} TB"

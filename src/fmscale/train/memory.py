"""Out-of-memory: recognising it, and the estimate of a cell's memory its error message gives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import OutOfMemory
from ..flow import build_field

OOM_MARKERS = ("can't allocate memory", "not enough memory", "out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """A device allocator's failure: torch.OutOfMemoryError, or the CPU allocator's message."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in OOM_MARKERS)


@contextmanager
def fits_in_memory(
    arch: str,
    scale: str | None,
    row: dict[str, Any],
    data_dim: int,
    n_train: int,
    cfg: TrainConfig,
    device: torch.device,
) -> Iterator[None]:
    """Turn an allocator failure in the block into OutOfMemory with the estimated sizes, what to
    lower, and the allocator's own first line."""
    try:
        yield
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        batch = cfg.batch_size
        est = memory_estimate(arch, row, data_dim, batch, n_train, cfg.parameterisation)
        total = sum(v for k, v in est.items() if k != "params" and v is not None)
        raise OutOfMemory(
            f"{arch}/{scale or 'default'} does not fit in memory on {device}: "
            f"{est['params']:,} parameters need ~{size_text(est['state'])} (weights, grads, "
            f"2 AdamW moments and EMA in fp32), a batch (batch_size={batch}, {data_dim}-dim "
            f"vectors) ~{size_text(est['activations'])} of activations (rough), the training set "
            f"({n_train} x {data_dim}) ~{size_text(est['data'])}: ~{size_text(total)} in all; "
            "lower train.batch_size (--batch-size), pick a smaller --scale, or use a device "
            f"with more memory (the allocator said: {str(exc).strip().splitlines()[0]})"
        ) from exc


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

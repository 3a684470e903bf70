"""Which device a job runs on."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """cuda > mps > cpu for ``auto``; otherwise the named device."""
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device '{name}' requested but CUDA is not available; use --device cpu"
            )
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")

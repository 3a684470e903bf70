"""Where a cell came from: what a checkpoint must match to resume it (its identity), and the
versions, device and git revision ``cell.json`` records."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..configfiles import flatten
from ..models.mamba_kernels import package_versions

RUN_ONLY_KEYS = ("ckpt_every", "keep_ckpts", "log_every", "device", "epochs", "require_fused")
"""train settings a checkpoint need not match to resume: how a run is kept, logged and
checked, not what it learns (``epochs`` is there as the steps it sets)."""


IDENTITY_CELL_KEYS = ("arch", "row", "n_train", "seed")
"""The identity keys that name the cell; the others (train settings, data) may change."""


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def versions() -> dict[str, str | None]:
    """What ran the cell: Python, torch and the CUDA it was built for (None on a CPU build),
    numpy, fmscale, and mamba-ssm / causal-conv1d where installed (None where not)."""
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "fmscale": __version__,
        **package_versions(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{device.type} ({cpu}, {torch.get_num_threads()} threads)"


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys (``train.steps``, ``data``, ...) whose values differ: key -> (old, new)."""
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """``train.steps: 50 -> 60, data: 'ab..' -> 'cd..'``."""
    return ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def check_identity(saved: str, mine: dict[str, Any], root: Path) -> dict[str, tuple[Any, Any]]:
    """What differs between a checkpoint's identity (``saved``, its JSON) and this run's: none to
    resume, other settings or data to set the checkpoints aside; ValueError naming the changes
    if the checkpoint in ``root`` belongs to another cell."""
    changes = identity_changes(json.loads(saved), json.loads(json.dumps(mine)))
    if any(key.split(".")[0] in IDENTITY_CELL_KEYS for key in changes):
        raise ValueError(
            f"checkpoint in {root} belongs to another cell ({describe_changes(changes)}); "
            "use another --out for another cell or settings, or delete that ckpt/ folder "
            "to start over"
        )
    return changes

"""mamba-ssm's fused Mamba kernels, found on the first CUDA forward of a Mamba model.

mamba-ssm is optional and heavy (it imports triton and transformers), so nothing imports it
until a ``MambaBlock`` sees a CUDA input. The fused path needs the kernels themselves, not just
the package: ``selective_scan_cuda`` (which mamba-ssm's newer sources import optionally) and
causal-conv1d's ``causal_conv1d_fwd_function`` / ``causal_conv1d_bwd_function`` (without
causal-conv1d, ``mamba_inner_fn`` imports and then asserts at its first call). When any of them
is missing, a CUDA input runs the pure-PyTorch scan and a WARNING says why, once per process.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

import torch

log = logging.getLogger(__name__)

INTERFACE = "mamba_ssm.ops.selective_scan_interface"
"""The mamba-ssm module whose ``mamba_inner_fn`` fmscale calls (as ``mamba_ssm.Mamba`` does)."""
KERNELS = ("selective_scan_cuda", "causal_conv1d_fwd_function", "causal_conv1d_bwd_function")
"""Names in ``INTERFACE`` that must not be None for ``mamba_inner_fn`` to run."""


@dataclass(frozen=True)
class FusedKernels:
    """mamba-ssm's fused call when it can run, else None and the reason."""

    inner_fn: Callable[..., torch.Tensor] | None
    reason: str

    @property
    def available(self) -> bool:
        return self.inner_fn is not None


def package_versions() -> dict[str, str | None]:
    """Installed mamba-ssm and causal-conv1d versions (None when absent), without importing."""
    found = {}
    for name in ("mamba-ssm", "causal-conv1d"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _import_interface() -> ModuleType:
    return importlib.import_module(INTERFACE)


def kernels_of(interface: ModuleType) -> FusedKernels:
    """The fused call of an imported ``INTERFACE`` module, or why it cannot run."""
    missing = [name for name in KERNELS if getattr(interface, name, None) is None]
    if missing:
        hint = (
            "install causal-conv1d>=1.5.2 built for this torch and CUDA"
            if any(name.startswith("causal_conv1d") for name in missing)
            else "reinstall mamba-ssm with its CUDA extension built"
        )
        return FusedKernels(None, f"{INTERFACE} lacks {', '.join(missing)}: {hint}")
    return FusedKernels(interface.mamba_inner_fn, "")


@functools.cache
def fused_kernels() -> FusedKernels:
    """mamba-ssm's fused call, looked up once per process (on the first input of a device the
    fused path serves); a WARNING naming the reason when it cannot run."""
    try:
        kernels = kernels_of(_import_interface())
    except Exception as exc:  # ImportError, OSError or an undefined symbol from a broken build
        kernels = FusedKernels(None, f"{INTERFACE} does not import: {type(exc).__name__}: {exc}")
    if not kernels.available:
        log.warning("Mamba runs its pure-PyTorch scan, not the fused kernels: %s", kernels.reason)
    return kernels

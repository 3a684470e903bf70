"""mamba-ssm's fused Mamba kernels, found on the first CUDA forward of a Mamba model.

mamba-ssm is optional and heavy (it imports triton and transformers), so nothing imports it
until a ``MambaBlock`` sees a CUDA input. The fused path needs the kernels themselves, not just
the package: ``selective_scan_cuda`` (which mamba-ssm's newer sources import optionally) and
causal-conv1d's ``causal_conv1d_fwd_function`` / ``causal_conv1d_bwd_function`` (without
causal-conv1d, ``mamba_inner_fn`` imports and then asserts at its first call). When any of them
is missing, a CUDA input runs the pure-PyTorch scan and a WARNING says why, once per process.

Kernels that import may still have no code for the GPU: both packages compile SASS only (no
PTX), and from mamba-ssm 2.3.2 and causal-conv1d 1.7.0 on (every version built with nvcc 13)
for sm_75 and newer only (their setup.py: 75, 80, 87, 90; 100, 120 from CUDA 12.8; 103, 110,
121 from 13.0), so a P100 (6.0) or V100 (7.0) fails at the first kernel launch; older versions
built with nvcc <= 12.9 carry sm_53 to sm_72 too (docs/cluster.md). ``capability_problem``
names such a device before any launch; ``models.mamba.fused_call`` then probes the call once
per device, which catches what the table cannot know (a site's own build flags).
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
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
MIN_CAPABILITY = (7, 5)
"""The oldest compute capability the versions of ``FROM_SM75`` have kernels for."""
FROM_SM75 = {"mamba-ssm": (2, 3, 2), "causal-conv1d": (1, 7, 0)}
"""The first release of each package whose setup.py compiles sm_75 and newer only, whatever
nvcc builds it (earlier releases do so from nvcc 13 on)."""


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


def device_capability(device: torch.device) -> tuple[int, int] | None:
    """The CUDA compute capability of ``device``; None for any other device type."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_capability(device)


def capability_problem(device: torch.device) -> str | None:
    """Why the installed kernels have no code for ``device``, or None when they may."""
    capability = device_capability(device)
    if capability is None or capability >= MIN_CAPABILITY:
        return None
    nvcc13 = int((torch.version.cuda or "0").split(".")[0]) >= 13
    too_new = [
        f"{name} {version}"
        for name, version in package_versions().items()
        if version is not None and (nvcc13 or _release(version) >= FROM_SM75[name])
    ]
    if not too_new:
        return None
    have, need = ".".join(map(str, capability)), ".".join(map(str, MIN_CAPABILITY))
    built = " built for CUDA 13" if nvcc13 else ""
    return (
        f"{device} has compute capability {have}; {' and '.join(too_new)}{built} ship kernels "
        f"for {need} and newer only"
    )


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version: ``2.3.2.post1`` -> (2, 3, 2)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


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

"""Bidirectional Mamba velocity network and ``MambaBlock``, a twin of ``mamba_ssm.Mamba``.

``MambaBlock`` has exactly the parameter names, shapes and initialisation of
``mamba_ssm.Mamba`` (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj), so state_dicts load
both ways with ``strict=True``. For a CUDA input, when mamba-ssm's fused kernels are there
(``mamba_kernels.py`` looks for them then, not at import), it runs mamba-ssm's fused call on its
own parameters; everywhere else the pure-PyTorch selective scan of ``scan.py``. Which one a
device runs is decided once per device (``fused_call``: import, compute capability, a probe).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SyntheticConfig
from . import mamba_kernels
from .configs import MambaConfig
from .layers import TimestepEmbedder, TokenHead, check_tokenizable, modulate, zero_linear
from .scan import selective_scan

log = logging.getLogger(__name__)

_FUSED_DEVICE_TYPES = ("cuda",)
"""Device types whose inputs take mamba-ssm's fused call when it can run (the CPU contract
tests add "cpu", with CPU stand-ins for the kernels)."""
_PROBE_WIDTH = 16
"""d_model of the one-block forward and backward that probes the fused call on a device."""


def _normalised(device: torch.device) -> torch.device:
    """``cuda`` as ``cuda:<current>``, so a device and its inputs share one cache entry."""
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def fused_call(device: torch.device) -> mamba_kernels.FusedKernels:
    """mamba-ssm's fused call for inputs on ``device``, or why they run the scan."""
    if device.type not in _FUSED_DEVICE_TYPES:
        return mamba_kernels.FusedKernels(None, f"{device.type} inputs run the scan")
    return _fused_call(_normalised(device))


@functools.cache
def _fused_call(device: torch.device) -> mamba_kernels.FusedKernels:
    """Decided once per device and process: the kernels import, the device's compute capability
    has code, and one forward and backward of a small block runs; a WARNING when not."""
    kernels = mamba_kernels.fused_kernels()  # warns itself when they do not import
    if not kernels.available:
        return kernels
    problem = mamba_kernels.capability_problem(device) or _probe(device, kernels.inner_fn)
    if problem is None:
        return kernels
    log.warning("Mamba runs its pure-PyTorch scan, not the fused kernels: %s", problem)
    return mamba_kernels.FusedKernels(None, problem)


def _probe(device: torch.device, inner_fn: Callable[..., torch.Tensor]) -> str | None:
    """Why one forward and backward of the fused call fails on ``device``, or None. Run with
    the random streams forked, so probing leaves a training run's draws as they were."""
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            block = MambaBlock(_PROBE_WIDTH).to(device)
            x = torch.randn(2, 4, _PROBE_WIDTH, device=device, requires_grad=True)
            block._fused(x, inner_fn).sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    except Exception as exc:  # "no kernel image is available", an illegal instruction, ...
        return f"the fused call failed its probe on {device}: {type(exc).__name__}: {exc}"
    return None


def mamba_kernel(device: torch.device) -> tuple[str, str]:
    """``("fused", "")`` when a Mamba model on ``device`` runs mamba-ssm's kernels, else
    ``("scan", <why>)``."""
    kernels = fused_call(device)
    return ("fused", "") if kernels.available else ("scan", kernels.reason)


def __getattr__(name: str) -> bool:
    if name == "MAMBA_FUSED_AVAILABLE":  # looked up on use: it imports mamba-ssm
        return torch.cuda.is_available() and mamba_kernel(torch.device("cuda"))[0] == "fused"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def causal_depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """``conv1d(groups=d, padding=K-1)[..., :L]`` over L of x [b, L, d] as K shifted
    multiply-adds, with no transposes: 3x faster forward + backward on CPU at L = 16."""
    length, kernel = x.shape[1], weight.shape[-1]
    padded = F.pad(x, (0, 0, kernel - 1, 0))
    w = weight.squeeze(1)  # [d, K]
    y = bias + padded[:, :length] * w[:, 0]
    for k in range(1, kernel):
        y = torch.addcmul(y, padded[:, k : k + length], w[:, k])
    return y


class MambaBlock(nn.Module):
    """Mamba (S6) mixer: in_proj -> causal depthwise conv -> selective scan, gated by SiLU(z)."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=True
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # As mamba_ssm: dt weights uniform in +-dt_rank^-0.5; bias = softplus^-1 of a
        # log-uniform dt in [dt_min, dt_max]; S4D-real A = -(1..d_state); D = 1.
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(
            torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type in _FUSED_DEVICE_TYPES:
            inner_fn = fused_call(x.device).inner_fn
            if inner_fn is not None:
                return self._fused(x, inner_fn)
        xi, z = self.in_proj(x).chunk(2, dim=-1)
        xi = F.silu(causal_depthwise_conv(xi, self.conv1d.weight, self.conv1d.bias))
        dt, B, C = self.x_proj(xi).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log.float())
        y = selective_scan(xi, delta, A, B, C, self.D)
        return self.out_proj(y * F.silu(z))

    def _fused(self, x: torch.Tensor, inner_fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        """mamba-ssm's fused call on this module's parameters (mamba_ssm.Mamba's fast path).

        xz is built as ``mamba_ssm.Mamba`` builds it, W @ x^T viewed as [b, 2*d_inner, L] with L
        contiguous, so ``MambaInnerFn`` takes it without a copy.
        """
        batch, length, _ = x.shape
        xz = self.in_proj.weight @ x.reshape(batch * length, -1).t()  # [2*d_inner, (b L)]
        xz = xz.view(-1, batch, length).transpose(0, 1)
        return inner_fn(
            xz,
            self.conv1d.weight,
            self.conv1d.bias,
            self.x_proj.weight,
            self.dt_proj.weight,
            self.out_proj.weight,
            self.out_proj.bias,
            -torch.exp(self.A_log.float()),
            None,
            None,
            self.D.float(),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )


class BiMambaLayer(nn.Module):
    """x + fwd(h) + flip(bwd(flip(h))), with h = FiLM_t(norm(x)) (FiLM starts at identity)."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.film = nn.Sequential(nn.SiLU(), zero_linear(d, 2 * d))
        kwargs = dict(d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand)
        self.forward_block = MambaBlock(d, **kwargs)
        self.backward_block = MambaBlock(d, **kwargs)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.film(c).chunk(2, dim=-1)
        h = modulate(self.norm(x), shift, scale)
        return x + self.forward_block(h) + self.backward_block(h.flip(1)).flip(1)


class MambaVelocity(nn.Module):
    """v(x, t): D -> ``num_tokens`` chunks -> d_model, bidirectional Mamba layers, adaLN head."""

    def __init__(self, cfg: MambaConfig, data_dim: int = SyntheticConfig.dim):
        super().__init__()
        self.data_dim = data_dim
        self.num_tokens = cfg.num_tokens
        self.chunk = check_tokenizable(data_dim, cfg.num_tokens)
        self.t_embed = TimestepEmbedder(cfg.hidden_dim)
        self.patch = nn.Linear(self.chunk, cfg.hidden_dim)
        self.layers = nn.ModuleList(BiMambaLayer(cfg) for _ in range(cfg.num_layers))
        self.head = TokenHead(cfg.hidden_dim, cfg.hidden_dim, self.chunk)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t)
        h = self.patch(x.view(-1, self.num_tokens, self.chunk))
        for layer in self.layers:
            h = layer(h, c)
        return self.head(h, c).reshape(-1, self.data_dim)

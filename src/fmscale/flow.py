"""Conditional flow matching on the straight path: the parameterisation of the velocity field,
the loss, minibatch OT pairing and ODE samplers.

Every velocity field the study trains is ``VelocityField(net, parameterisation)``:

    v(x, t) = a(t) x + b(t) F(c(t) x, t)

with F the architecture's network. The parameterisation picks a, b, c, shared by every arch,
so training, sampling, the validation loss and every metric go through the same field. Why it
matters: the optimal velocity v*(x, t) = (E[x1 | x_t = x] - x) / (1 - t) holds the full-rank
linear map -x / (1 - t); a network whose hidden width is below D cannot output it, whatever
its size, unless the parameterisation carries it.

- ``velocity``: a = 0, b = c = 1 (the network is the velocity).
- ``skip_scalar`` / ``skip_dim``: a = g(t), a learned scalar / per-dimension gain (a 64-wide
  MLP of t, zero-initialised, so the field starts at v = 0), b = c = 1.
- ``skip_lowrank``: a = g(t) + U h(t), a scalar gain plus a per-dimension gain of rank
  ``LOWRANK_GAIN_RANK``: the same 64-wide MLP of t with 1 + r zero-initialised outputs (g, h)
  and a learned D x r basis U. Per dimension at the cost of r x D parameters, not 64 x D: the
  optimal linear term differs across dimensions (standardising each dimension makes the
  isotropic noise off the data's subspace anisotropic), but smoothly, as a few functions of t.
- ``skip_share``: a = g(t) + h(t) e, g and h two outputs of the 64-wide MLP of t and e a fixed
  per-dimension vector from the cell's own training rows: each dimension's share of variance in
  their top ``SHARE_PRINCIPAL_DIRECTIONS`` principal directions, standardised across
  dimensions. What ``skip_dim``'s 65 x D parameters learn is rank one across dimensions and
  follows this share (docs/decisions/capacity-at-fixed-budget.md); here it costs 65.
- ``edm``: EDM-style preconditioning (Karras et al. 2022) derived for the straight path with
  standardised data (unit variance per dimension): Var(x_t) = (1 - t)^2 + t^2, a = c_skip =
  Cov(x1 - x0, x_t) / Var(x_t) = (2t - 1) / Var(x_t), b = c_out = sqrt(Var(x1 - x0) - c_skip^2
  Var(x_t)) = 1 / sqrt(Var(x_t)), c = c_in = 1 / sqrt(Var(x_t)): parameter-free; the network's
  input and target have unit variance at every t for data of unit variance.
- ``data``: the network predicts x1, v = (F(x, t) - x) / (1 - t), with 1 - t clamped at
  ``DATA_T_EPS`` (the samplers' last evaluations come close to t = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .config import PARAMETERISATIONS, SOLVERS
from .metrics import variance_share
from .models import build_model
from .models.layers import TimestepEmbedder, zero_linear

DATA_T_EPS = 1e-2
"""The data parameterisation divides by max(1 - t, DATA_T_EPS)."""

LOWRANK_GAIN_RANK = 4
"""The rank r of ``skip_lowrank``'s per-dimension gain."""

SHARE_PRINCIPAL_DIRECTIONS = 8
"""``skip_share``'s e: each dimension's share of variance in this many principal directions."""


class TimeGain(nn.Module):
    """g(t): sinusoidal features of t, a 64-wide MLP, and a zero-initialised output layer."""

    def __init__(self, out_dim: int, width: int = 64):
        super().__init__()
        self.embed = TimestepEmbedder(width, freq_dim=width)
        self.out = zero_linear(width, out_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.silu(self.embed(t)))


class LowRankGain(TimeGain):
    """g(t) + U h(t): ``TimeGain`` with 1 + rank outputs (g, h) and a D x rank basis U.

    U starts random (unit-variance entries) and h at zero, so the gain starts at zero with a
    non-zero gradient for h's output layer.
    """

    def __init__(self, data_dim: int, rank: int = LOWRANK_GAIN_RANK, width: int = 64):
        super().__init__(1 + rank, width)
        self.basis = nn.Parameter(torch.randn(data_dim, rank))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        gains = super().forward(t)
        return gains[:, :1] + gains[:, 1:] @ self.basis.T


class ShareGain(TimeGain):
    """g(t) + h(t) e: ``TimeGain`` with 2 outputs (g, h) and a fixed per-dimension vector e
    (a buffer: saved with the weights; zeros until set from the training rows or loaded)."""

    def __init__(self, data_dim: int, share: torch.Tensor | None = None, width: int = 64):
        super().__init__(2, width)
        self.register_buffer("share", torch.zeros(data_dim) if share is None else share.clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        gains = super().forward(t)
        return gains[:, :1] + gains[:, 1:] * self.share


def _gain(parameterisation: str, data_dim: int, train_rows: torch.Tensor | None = None) -> TimeGain:
    """The learned gain a(t) of a ``skip_*`` parameterisation."""
    if parameterisation == "skip_scalar":
        return TimeGain(1)
    if parameterisation == "skip_dim":
        return TimeGain(data_dim)
    if parameterisation == "skip_share":
        share = (
            None if train_rows is None else variance_share(train_rows, SHARE_PRINCIPAL_DIRECTIONS)
        )
        return ShareGain(data_dim, share)
    return LowRankGain(data_dim)


class VelocityField(nn.Module):
    """v(x, t) = a(t) x + b(t) F(c(t) x, t) around the network F (see the module docstring)."""

    def __init__(
        self,
        net: nn.Module,
        parameterisation: str,
        data_dim: int,
        train_rows: torch.Tensor | None = None,
    ):
        super().__init__()
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(
                f"unknown parameterisation {parameterisation!r}; available: {PARAMETERISATIONS}"
            )
        self.net = net
        self.parameterisation = parameterisation
        if parameterisation.startswith("skip"):
            self.gain = _gain(parameterisation, data_dim, train_rows)

    def coefficients(
        self, t: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(a, b, c) as [B, 1] or [B, D] tensors; None where a term is absent (a = 0, b = 1,
        c = 1)."""
        p = self.parameterisation
        if p == "velocity":
            return None, None, None
        if p.startswith("skip"):
            return self.gain(t), None, None
        t = t.float()[:, None]
        if p == "edm":
            var = (1 - t) ** 2 + t**2
            return (2 * t - 1) / var, var.rsqrt(), var.rsqrt()
        inv = 1 / (1 - t).clamp_min(DATA_T_EPS)  # data: v = (F - x) / (1 - t)
        return -inv, inv, None

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, b, c = self.coefficients(t)
        out = self.net(x if c is None else c * x, t)
        if b is not None:
            out = b * out
        return out if a is None else out + a * x

    def net_target(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The network output F that makes the field equal ``v`` at (x, t)."""
        a, b, _ = self.coefficients(t)
        target = v if a is None else v - a * x
        return target if b is None else target / b


def build_field(
    arch: str,
    row: dict[str, Any],
    data_dim: int,
    parameterisation: str,
    train_rows: torch.Tensor | None = None,
) -> VelocityField:
    """The velocity field a cell trains: ``arch``'s network from ``row``, parameterised.
    ``train_rows``: the cell's training rows, which ``skip_share`` reads its fixed vector from
    (without them it starts at zeros, e.g. to count parameters or to load a checkpoint)."""
    model = build_model(arch, row, data_dim)
    return VelocityField(model, parameterisation, data_dim, train_rows)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t x1 (noise at t = 0, data at t = 1)."""
    t = t[:, None]
    return (1 - t) * x0 + t * x1


def cfm_loss(model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean squared error between v(x_t, t) and the path's velocity x1 - x0, per dimension.

    v = 0 scores E||x1 - x0||^2 / D, i.e. 2.0 on standardised data with unit-variance noise.
    """
    return _squared_errors(model, x0, x1, t).mean()


def cfm_losses(
    model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """``cfm_loss`` of each row of the batch: [B]."""
    return _squared_errors(model, x0, x1, t).mean(dim=1)


def _squared_errors(
    model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """(v(x_t, t) - (x1 - x0))^2 per row and dimension: [B, D]."""
    return (model(interpolate(x0, x1, t), t) - (x1 - x0)) ** 2


def ot_pair(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Reorder the noise ``x0`` to the exact squared-distance optimal assignment onto ``x1``.

    A permutation (every noise row used exactly once), found with the Hungarian algorithm on
    the host; costs a device sync per call.
    """
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(x1.float(), x0.float()).pow(2).cpu().numpy()
    _, cols = linear_sum_assignment(cost)
    return x0[torch.as_tensor(cols, device=x0.device)]


def _velocity(model: nn.Module, x: torch.Tensor, t: float) -> torch.Tensor:
    return model(x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype))


def _euler(model: nn.Module, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    return x + h * _velocity(model, x, t)


def _midpoint(model: nn.Module, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    return x + h * _velocity(model, x + h / 2 * _velocity(model, x, t), t + h / 2)


def _heun(model: nn.Module, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    v0 = _velocity(model, x, t)
    v1 = _velocity(model, x + h * v0, t + h)
    return x + h / 2 * (v0 + v1)


_STEPS: dict[str, Callable] = {"euler": _euler, "midpoint": _midpoint, "heun": _heun}


@torch.no_grad()
def sample(model: nn.Module, x0: torch.Tensor, nfe: int, solver: str = "midpoint") -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from t = 0 (noise ``x0``) to t = 1 with ``nfe`` evaluations."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver '{solver}'; available: {list(SOLVERS)}")
    steps, rest = divmod(nfe, SOLVERS[solver])
    if steps < 1 or rest:
        raise ValueError(
            f"nfe={nfe} is not a positive multiple of {SOLVERS[solver]} for solver '{solver}'"
        )
    h = 1.0 / steps
    x = x0
    for i in range(steps):
        x = _STEPS[solver](model, x, i * h, h)
    return x

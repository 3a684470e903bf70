"""Pure-PyTorch forms of Mamba's selective scan, all computing the same function.

    h_l = exp(delta_l A) h_{l-1} + delta_l B_l u_l,     y_l = C_l h_l + D u_l

Shapes: u, delta [batch, L, d_inner]; A [d_inner, d_state]; B, C [batch, L, d_state];
D [d_inner]; delta is already softplus-ed. ``selective_scan`` runs the default form, ``blocked``:
the fastest on CPU (``benchmarks/mamba_scan.py`` compares them all; figures in
``docs/decisions/mamba-scan.md``). The other forms are kept as references for that comparison
and the tests.

Why ``blocked`` wins: the scan is elementwise work on [batch, L, d_inner, d_state] states, 16x
the size of its inputs. Any form that materialises them for the whole batch pays for fresh
allocations (page faults) and DRAM traffic on every op. ``blocked`` walks the batch in slices
whose states fit in cache and reuses four work buffers. When the batch takes several slices it
keeps nothing of that size for the backward pass but recomputes the states there, as
mamba-ssm's fused CUDA kernel does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

ScanFn = Callable[..., torch.Tensor]

BLOCK_ELEMENTS = {"cpu": 2**20, "cuda": 2**26}
"""Elements per state buffer of ``blocked``: a few MiB, cache-sized, on CPU; large on a GPU."""


def scan_loop(u, delta, A, B, C, D) -> torch.Tensor:
    """Sequential loop over L with autograd recording every step."""
    # Unbind along L once: indexing [:, step] inside the loop makes autograd scatter into a
    # full-size zero tensor per step in the backward pass.
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for d_l, du_l, b_l, c_l in zip(
        delta.unbind(1), (delta * u).unbind(1), B.unbind(1), C.unbind(1), strict=True
    ):
        h = torch.exp(d_l.unsqueeze(-1) * A) * h + du_l.unsqueeze(-1) * b_l.unsqueeze(1)
        ys.append(torch.bmm(h, c_l.unsqueeze(-1)).squeeze(-1))
    return torch.stack(ys, dim=1) + u * D


def scan_lxl(u, delta, A, B, C, D) -> torch.Tensor:
    """L x L decay form: every state at once as one batched matrix product per (b, d, n).

    h[b,d,n,t] = sum_{s<=t} exp(A[d,n] (c_t - c_s)) B[b,s,n] delta u[b,s,d], c = cumsum(delta).
    """
    L = u.shape[1]
    cum = delta.cumsum(1).transpose(1, 2)  # [b, d, L]
    gap = cum.unsqueeze(-1) - cum.unsqueeze(-2)  # [b, d, t, s], >= 0 where s <= t
    future = torch.ones(L, L, dtype=torch.bool, device=u.device).triu(1)
    exponent = gap.unsqueeze(2) * A[None, :, :, None, None]  # [b, d, n, t, s]
    decay = torch.exp(exponent.masked_fill(future, float("-inf")))
    inputs = B.transpose(1, 2).unsqueeze(1) * (delta * u).transpose(1, 2).unsqueeze(2)
    h = (decay @ inputs.unsqueeze(-1)).squeeze(-1)  # [b, d, n, t]
    return torch.einsum("bdnt,btn->btd", h, C) + u * D


def scan_parallel(u, delta, A, B, C, D) -> torch.Tensor:
    """Parallel (Hillis-Steele) scan: log2(L) doubling steps over the whole sequence."""
    a = torch.exp(delta.unsqueeze(-1) * A)  # [b, L, d, n]
    h = (delta * u).unsqueeze(-1) * B.unsqueeze(2)
    L, k = u.shape[1], 1
    while k < L:
        h = h + a * F.pad(h, (0, 0, 0, 0, k, 0))[:, :L]
        a = a * F.pad(a, (0, 0, 0, 0, k, 0), value=1.0)[:, :L]
        k *= 2
    return torch.einsum("bldn,bln->bld", h, C) + u * D


def _states(dA: torch.Tensor, H: torch.Tensor, u, delta, A, B) -> None:
    """Write exp(delta A) into ``dA`` and the scan's states into ``H`` (both [rows, L, d, n])."""
    torch.mul(delta.unsqueeze(-1), A, out=dA).exp_()
    torch.mul((delta * u).unsqueeze(-1), B.unsqueeze(2), out=H)
    for step in range(1, u.shape[1]):
        H[:, step].addcmul_(dA[:, step], H[:, step - 1])


class _BlockedScan(torch.autograd.Function):
    """The scan over batch slices of ``rows`` in reused buffers; backward recomputes states."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, rows: int):
        ctx.save_for_backward(u, delta, A, B, C, D)
        ctx.rows = rows
        dA = u.new_empty(rows, *u.shape[1:], A.shape[1])
        H = torch.empty_like(dA)
        y = torch.empty_like(u)
        parts = (x.split(rows) for x in (u, delta, B, C, y))
        for u_, delta_, B_, C_, y_ in zip(*parts, strict=True):
            n = len(u_)
            _states(dA[:n], H[:n], u_, delta_, A, B_)
            torch.sum(H[:n] * C_.unsqueeze(2), -1, out=y_)
        # One slice holds the whole batch: keep its states rather than recompute them.
        ctx.states = (dA, H) if rows >= len(u) else None
        return y.addcmul_(u, D)

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        u, delta, A, B, C, D = ctx.saved_tensors
        rows, kept, gy = ctx.rows, ctx.states, gy.contiguous()
        ctx.states = None
        if kept is None:
            dA = u.new_empty(rows, *u.shape[1:], A.shape[1])
            H = torch.empty_like(dA)
        else:
            dA, H = kept
        G, W = torch.empty_like(dA), torch.empty_like(dA)
        gu, gdelta = torch.empty_like(u), torch.empty_like(delta)
        gB, gC, gA = torch.empty_like(B), torch.empty_like(C), torch.zeros_like(A)
        parts = (x.split(rows) for x in (u, delta, B, C, gy, gu, gdelta, gB, gC))
        slices = zip(*parts, strict=True)
        for u_, delta_, B_, C_, gy_, gu_, gdelta_, gB_, gC_ in slices:
            n = len(u_)
            dA_, H_, G_, W_ = dA[:n], H[:n], G[:n], W[:n]
            if kept is None:
                _states(dA_, H_, u_, delta_, A, B_)
            torch.sum(torch.mul(H_, gy_.unsqueeze(-1), out=W_), 2, out=gC_)
            # G_t = dloss/dh_t: a reverse scan of C_t gy_t through the same decays.
            torch.mul(gy_.unsqueeze(-1), C_.unsqueeze(2), out=G_)
            for step in range(u.shape[1] - 2, -1, -1):
                G_[:, step].addcmul_(dA_[:, step + 1], G_[:, step + 1])
            torch.sum(torch.mul(G_, (delta_ * u_).unsqueeze(-1), out=W_), 2, out=gB_)
            gdu = torch.mul(G_, B_.unsqueeze(2), out=W_).sum(-1)
            # dloss/d(delta A)_t = G_t * h_{t-1} * exp(delta_t A), with h_{-1} = 0.
            G_[:, 1:].mul_(H_[:, :-1]).mul_(dA_[:, 1:])
            G_[:, 0].zero_()
            gA += torch.mul(G_, delta_.unsqueeze(-1), out=W_).sum((0, 1))
            torch.addcmul(G_.mul_(A).sum(-1), gdu, u_, out=gdelta_)
            torch.mul(gdu, delta_, out=gu_)
        gu.addcmul_(gy, D)
        gD = (gy * u).sum((0, 1))
        return gu, gdelta, gA, gB, gC, gD, None


def block_rows(u: torch.Tensor, d_state: int) -> int:
    """Batch rows per slice of ``blocked``: one slice when the whole batch is at most four
    buffers' worth (its states are then kept for the backward pass), else as many as fit one.
    """
    per_row = u.shape[1] * u.shape[2] * d_state
    budget = BLOCK_ELEMENTS.get(u.device.type, BLOCK_ELEMENTS["cuda"])
    if u.shape[0] * per_row <= 4 * budget:
        return u.shape[0]
    return max(1, budget // per_row)


def scan_blocked(u, delta, A, B, C, D) -> torch.Tensor:
    """Cache-blocked sequential scan with a hand-written, state-recomputing backward pass."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    args = [x.to(dtype) for x in (u, delta, A, B, C, D)]
    return _BlockedScan.apply(*args, block_rows(u, A.shape[1]))


SCAN_FORMS: dict[str, ScanFn] = {
    "blocked": scan_blocked,
    "loop": scan_loop,
    "parallel": scan_parallel,
    "lxl": scan_lxl,
}
"""Every form by name."""

DEFAULT_SCAN = "blocked"


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    form: str = DEFAULT_SCAN,
) -> torch.Tensor:
    """The selective scan (see the module docstring) in the named form; returns y [b, L, d]."""
    try:
        scan = SCAN_FORMS[form]
    except KeyError:
        raise ValueError(
            f"unknown scan form '{form}'; choose one of {sorted(SCAN_FORMS)}"
        ) from None
    return scan(u, delta, A, B, C, D)

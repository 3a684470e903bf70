"""Exact velocity fields of Gaussian mixtures on the straight path: references, not models.

For data x1 ~ sum_k w_k N(m_k, C_k) and x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I), the
optimal field v*(x, t) = E[x1 - x0 | x_t = x] is known in closed form. Given component k,
x_t ~ N(t m_k, Sigma_k(t)) with Sigma_k(t) = t^2 C_k + (1 - t)^2 I, and in the eigenbasis of
C_k (eigenvalues lam, y = x - t m_k):

    v_k(x, t) = m_k + (t lam - (1 - t)) / (t^2 lam + (1 - t)^2) * y

(no division by 1 - t, so t = 1 is fine when every lam > 0); v* = sum_k p(k | x_t) v_k.

Two mixtures matter to the study:

- ``MixtureField.population(data)``: the synthetic data's true mixture, in the standardised
  space the models see. Its CFM loss on the validation rows is the irreducible loss (the floor
  no model can beat on the population), so a val_loss_ratio reads against it.
- ``MixtureField.memoriser(train)``: the empirical distribution of the training rows
  (C_k = 0). Its flow maps noise onto the training rows: the exact memoriser, the field a
  model of unlimited capacity trained to its optimum on the training rows would learn.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import Dataset

_CHUNK_ROWS = 256
"""Rows per chunk when evaluating a field (bounds the [rows, K, D] intermediates)."""


class MixtureField(nn.Module):
    """v*(x, t) of sum_k w_k N(m_k, U_k diag(lam_k) U_k^T) on the straight path (float64)."""

    def __init__(
        self,
        weights: torch.Tensor,
        means: torch.Tensor,
        eigvals: torch.Tensor | None = None,
        eigvecs: torch.Tensor | None = None,
    ):
        super().__init__()
        self.register_buffer("log_weights", weights.double().log())
        self.register_buffer("means", means.double())  # [K, D]
        self.isotropic = eigvals is None  # C_k = 0: every Sigma_k(t) is (1 - t)^2 I
        if not self.isotropic:
            self.register_buffer("eigvals", eigvals.double().clamp_min(0))  # [K, D]
            self.register_buffer("eigvecs", eigvecs.double())  # [K, D, D], columns

    @classmethod
    def population(cls, data: Dataset) -> MixtureField:
        """The synthetic data's generating mixture, mapped to the standardised space."""
        mix = data.mixture
        if mix is None:
            raise ValueError("the exact population field needs synthetic data (a known mixture)")
        inv_std = 1 / data.std.double()
        basis = mix.basis.double() * inv_std[:, None]  # [D, k]
        means = (mix.means.double() @ mix.basis.double().T + mix.offset.double()) - data.mean
        means = means * inv_std
        noise = torch.diag(mix.noise_std**2 * inv_std**2)
        covs = noise + basis @ mix.covs.double() @ basis.T  # [K, D, D]
        eigvals, eigvecs = torch.linalg.eigh(covs)
        return cls(mix.weights, means, eigvals, eigvecs)

    @classmethod
    def memoriser(cls, train: torch.Tensor) -> MixtureField:
        """The empirical distribution of ``train`` (equal weights, zero covariances)."""
        return cls(torch.full((len(train),), 1 / len(train)), train)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = [
            self._field(x[i : i + _CHUNK_ROWS].double(), t[i : i + _CHUNK_ROWS].double())
            for i in range(0, len(x), _CHUNK_ROWS)
        ]
        return torch.cat(out).to(x.dtype)

    def _field(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t[:, None]  # [B, 1]
        if self.isotropic:  # v_k = (m_k - x) / (1 - t); ||x - t m_k||^2 without [B, K, D]
            sq = -2 * t * (x @ self.means.T) + t**2 * (self.means**2).sum(-1)  # + ||x||^2
            post = torch.softmax(self.log_weights - sq / (2 * ((1 - t) ** 2).clamp_min(1e-12)), -1)
            return (post @ self.means - x) / (1 - t).clamp_min(1e-6)
        y = x[:, None, :] - t[:, :, None] * self.means  # [B, K, D]
        proj = torch.einsum("bkd,kde->bke", y, self.eigvecs)  # y in each eigenbasis
        lam, tt = self.eigvals, t[:, :, None]
        var = tt**2 * lam + (1 - tt) ** 2  # [B, K, D]
        post = torch.softmax(self.log_weights - 0.5 * ((proj**2 / var) + var.log()).sum(-1), -1)
        gain = (tt * lam - (1 - tt)) / var
        v_k = self.means + torch.einsum("bke,kde->bkd", gain * proj, self.eigvecs)
        return torch.einsum("bk,bkd->bd", post, v_k)

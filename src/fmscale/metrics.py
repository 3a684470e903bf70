"""Sample-quality metrics for generated D-dim vectors against real data.

Inputs are float32 tensors [N, D] (rows are points); metrics compute in float64 on the inputs'
device. Distances are Euclidean, from ||x||^2 + ||y||^2 - 2 x.y clamped at 0, so exact copies
sit at distance ~1e-7 rather than exactly 0. MMD, PRDC and 1-NN hold the full float64 distance
matrices of real and fake (200 MB each at 5000 x 5000); memorisation scans the training set in
row chunks, so a 100k-row training set never needs a full matrix. Randomness comes only from a
local generator seeded by `seed`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _mean_cov(x: Tensor) -> tuple[Tensor, Tensor]:
    """Float64 mean [D] and unbiased (N - 1) covariance [D, D] of the rows of x."""
    x = x.double()
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def _psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric square root V diag(sqrt(max(lambda, 0))) V^T of a symmetric PSD matrix."""
    eigvals, eigvecs = torch.linalg.eigh(s)
    return (eigvecs * eigvals.clamp_min(0).sqrt()) @ eigvecs.T


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Float64 squared Euclidean distances [len(a), len(b)]."""
    a, b = a.double(), b.double()
    sq = torch.addmm(b.pow(2).sum(1), a, b.T, alpha=-2).add_(a.pow(2).sum(1, keepdim=True))
    return sq.clamp_min_(0)


@dataclass(frozen=True)
class _Pairwise:
    """Squared distances within real, within fake and real x fake [len(real), len(fake)].

    The within-set diagonals are +inf: no point is its own neighbour, and its self-kernel is 0.
    """

    real: Tensor
    fake: Tensor
    cross: Tensor

    def head(self, m: int) -> _Pairwise:
        """The same distances restricted to the first m rows of each set."""
        return _Pairwise(self.real[:m, :m], self.fake[:m, :m], self.cross[:m, :m])


def _pairwise(real: Tensor, fake: Tensor) -> _Pairwise:
    """All squared distances of real and fake, computed once for MMD, PRDC and 1-NN."""
    return _Pairwise(
        _sq_dists(real, real).fill_diagonal_(float("inf")),
        _sq_dists(fake, fake).fill_diagonal_(float("inf")),
        _sq_dists(real, fake),
    )


def _knn(query: Tensor, ref: Tensor, k: int, chunk: int) -> Tensor:
    """Ascending distances [len(query), k] from each query row to its k nearest ref rows.

    `ref` is scanned in chunks of `chunk` rows, keeping a running top-k.
    """
    if len(ref) < k:
        raise ValueError(f"need at least {k} reference rows, got {len(ref)}")
    best = torch.full((len(query), k), float("inf"), dtype=torch.float64, device=query.device)
    for start in range(0, len(ref), chunk):
        d = _sq_dists(query, ref[start : start + chunk])
        best = torch.cat([best, d], 1).topk(k, dim=1, largest=False).values
    return best.sqrt()


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to a and b (ideal 0).

    FD = ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}), unbiased
    covariances, matrix square roots by float64 eigh with negative eigenvalues clamped to 0.
    """
    mu_a, s_a = _mean_cov(a)
    mu_b, s_b = _mean_cov(b)
    root_a = _psd_sqrt(s_a)
    middle = root_a @ s_b @ root_a
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * cross)


def principal_axes(x: Tensor) -> tuple[Tensor, Tensor]:
    """(mean [D], every principal direction [D, D]) of the rows of x, float32.

    Columns are the covariance eigenvectors by descending eigenvalue, each signed so that its
    largest-magnitude entry is positive: the first k columns are ``pca_basis(x, k)``.
    """
    mean, cov = _mean_cov(x)
    components = torch.linalg.eigh(cov).eigenvectors.flip(1)
    peak = components.abs().argmax(dim=0)
    signs = components.gather(0, peak.unsqueeze(0)).sign()
    return mean.float(), (components * signs).float()


def leading_axes(axes: tuple[Tensor, Tensor], k: int) -> tuple[Tensor, Tensor]:
    """(mean, the first k principal directions [D, k]) of ``principal_axes``' output."""
    mean, components = axes
    if not 1 <= k <= len(components):
        raise ValueError(
            f"evaluate.pca_dims={k} must be in [1, D={len(components)}] (the data's dimension)"
        )
    return mean, components[:, :k].contiguous()


def variance_share(x: Tensor, k: int) -> Tensor:
    """Per dimension, the share of x's variance in its top-k principal directions,
    standardised across dimensions, float32 (zeros for fewer than 2 rows or where every
    dimension has the same share)."""
    if len(x) < 2:
        return torch.zeros(x.shape[1])
    _, cov = _mean_cov(x)
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0)[:k], vectors.flip(1)[:, :k]
    share = (vectors**2 * values).sum(1) / cov.diag().clamp_min(1e-12)
    centred, spread = share - share.mean(), share.std()
    return (centred / spread if spread > 1e-12 else torch.zeros_like(centred)).float()


def pca_basis(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(mean [D], components [D, k]) of x's top-k principal directions (``principal_axes``)."""
    return leading_axes(principal_axes(x), k)


def project(x: Tensor, basis: tuple[Tensor, Tensor]) -> Tensor:
    """Coordinates (x - mean) @ components [N, k] of x in a `pca_basis`."""
    mean, components = basis
    return (x - mean) @ components


def _median_heuristic(p: _Pairwise) -> Tensor:
    """Lower median of the squared distances over all distinct pairs of the pooled set."""
    upper_real = torch.ones_like(p.real, dtype=torch.bool).triu(1)
    upper_fake = torch.ones_like(p.fake, dtype=torch.bool).triu(1)
    return torch.cat([p.real[upper_real], p.fake[upper_fake], p.cross.flatten()]).median()


def _mmd2_and_se(p: _Pairwise, bandwidth: float | None) -> tuple[float, float]:
    """Unbiased MMD^2 from pairwise squared distances (see `mmd2_unbiased`), and its jackknife
    standard error over the samples (``fake``; the real set is shared by every row compared)."""
    if bandwidth is None:
        two_sigma2 = _median_heuristic(p)
    else:
        two_sigma2 = 2 * bandwidth**2
    n_real, n_fake = p.cross.shape
    # The +inf diagonals make the self-kernels 0, so full sums are off-diagonal sums.
    within_real = (-p.real / two_sigma2).exp().sum() / (n_real * (n_real - 1))
    k_fake = (-p.fake / two_sigma2).exp()
    k_cross = (-p.cross / two_sigma2).exp()
    value = float(within_real + k_fake.sum() / (n_fake * (n_fake - 1)) - 2 * k_cross.mean())
    if n_fake < 3:
        return value, math.nan
    # Leave sample i out: its row of the sample kernel (twice) and its column of the cross one.
    fake_sums = k_fake.sum() - 2 * k_fake.sum(dim=1)
    cross_sums = k_cross.sum() - k_cross.sum(dim=0)
    left_out = (
        within_real
        + fake_sums / ((n_fake - 1) * (n_fake - 2))
        - 2 * cross_sums / (n_real * (n_fake - 1))
    )
    se = ((n_fake - 1) / n_fake * (left_out - left_out.mean()).pow(2).sum()).sqrt()
    return value, float(se)


def _mmd2(p: _Pairwise, bandwidth: float | None) -> float:
    """Unbiased MMD^2 from pairwise squared distances (see `mmd2_unbiased`)."""
    return _mmd2_and_se(p, bandwidth)[0]


def mmd2_unbiased(a: Tensor, b: Tensor, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012) with an RBF kernel (ideal 0; can dip below 0).

    MMD^2_u = mean_{i!=j} k(a_i, a_j) + mean_{i!=j} k(b_i, b_j) - 2 mean_{i,j} k(a_i, b_j),
    k(x, y) = exp(-||x - y||^2 / (2 sigma^2)), sigma = `bandwidth`. With bandwidth None,
    2 sigma^2 = the lower median of ||x - y||^2 over the distinct pairs of the pooled set
    (i.e. sigma^2 = median / 2, so k = exp(-||x - y||^2 / median)).
    """
    return _mmd2(_pairwise(a, b), bandwidth)


def _prdc(p: _Pairwise, k: int) -> dict[str, float]:
    """PRDC from pairwise squared distances (see `prdc`)."""
    if min(p.cross.shape) <= k:
        raise ValueError(f"prdc needs more than k = {k} points per set, got {tuple(p.cross.shape)}")
    real_radii = p.real.kthvalue(k, dim=1).values.sqrt()
    fake_radii = p.fake.kthvalue(k, dim=1).values.sqrt()
    dist = p.cross.sqrt()
    in_real_ball = dist < real_radii.unsqueeze(1)
    return {
        "precision": float(in_real_ball.any(dim=0).double().mean()),
        "recall": float((dist < fake_radii.unsqueeze(0)).any(dim=1).double().mean()),
        "density": float(in_real_ball.sum(dim=0).double().mean() / k),
        "coverage": float((dist.min(dim=1).values < real_radii).double().mean()),
    }


def prdc(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage of Naeem et al. 2020 (ideal 1, 1, ~1, 1).

    Radius of a point = distance to its k-th nearest neighbour in its own set (self excluded);
    "in ball(x)" means strictly closer to x than x's radius. precision = fraction of fake in some
    real ball; recall = fraction of real in some fake ball; density = (1 / (k M)) sum_j sum_i
    1[fake_j in ball(real_i)]; coverage = fraction of real_i whose nearest fake is in ball(real_i).
    """
    return _prdc(_pairwise(real, fake), k)


def _one_nn(p: _Pairwise) -> float:
    """Leave-one-out 1-NN accuracy from pairwise squared distances (see `one_nn_accuracy`)."""
    # A tie between the nearest real and the nearest fake point is read as "real".
    real_right = p.real.min(dim=1).values <= p.cross.min(dim=1).values
    fake_right = p.fake.min(dim=1).values < p.cross.min(dim=0).values
    return float(torch.cat([real_right, fake_right]).double().mean())


def one_nn_accuracy(real: Tensor, fake: Tensor) -> float:
    """Leave-one-out 1-NN two-sample classifier accuracy on real U fake.

    Each point is labelled by its nearest other point in the union; 0.5 = indistinguishable
    (for equal sizes), 1.0 = separable, 0.0 = fake copies real.
    """
    return _one_nn(_pairwise(real, fake))


def sliced_wasserstein(a: Tensor, b: Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance (ideal 0) between equal-size sets; unequal sizes raise.

    SW2 = sqrt(mean over theta of W2^2(a.theta, b.theta)) over `n_projections` random unit
    directions theta drawn from a generator seeded with `seed`; each 1-D W2^2 is the mean
    squared difference of the sorted projections.
    """
    if len(a) != len(b):
        raise ValueError(f"sliced_wasserstein needs equal sizes, got {len(a)} and {len(b)}")
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(a.device)
    proj_a = (a.double() @ theta).sort(dim=0).values
    proj_b = (b.double() @ theta).sort(dim=0).values
    return float((proj_a - proj_b).pow(2).mean().sqrt())


def memorisation(
    samples: Tensor, train: Tensor, test: Tensor, threshold: float = 1 / 3, chunk: int = 4096
) -> dict[str, float]:
    """Training-set copying of `samples`, with nearest neighbours found over chunks of train.

    memorised_fraction = fraction of samples with d1 < threshold * d2, d1 and d2 the distances
    to the nearest and second-nearest training point (ideal ~0). nn_train_test_ratio = lower
    median over samples of d1 / (distance to the nearest test point) (~1 when the model
    generalises and train and test are equal-size draws; -> 0 when it copies train).
    """
    train_d = _knn(samples, train, 2, chunk)
    test_d = _knn(samples, test, 1, chunk)[:, 0]
    return {
        "memorised_fraction": float((train_d[:, 0] < threshold * train_d[:, 1]).double().mean()),
        "nn_train_test_ratio": float((train_d[:, 0] / test_d).median()),
    }


FLAT_VARIANCE = 1e-6
"""Dimensions whose real variance is below this (in standardised units) carry no spread to
match: ``variance_ratio`` leaves them out (real embeddings can hold constant dimensions)."""


def variance_ratio(samples: Tensor, real: Tensor) -> float:
    """Mean over dimensions of var(samples_d) / var(real_d) (1 = matched spread, >1 = excess).

    Only dimensions where the real data varies (var > FLAT_VARIANCE) count; NaN if none does.
    """
    real_var = real.double().var(dim=0)
    varies = real_var > FLAT_VARIANCE
    if not varies.any():
        return float("nan")
    return float((samples.double().var(dim=0)[varies] / real_var[varies]).mean())


def gaussian_fit_samples(x: Tensor, n: int, seed: int) -> Tensor:
    """n float32 draws from N(mean(x), cov(x)) as mean + z cov^{1/2}, z ~ N(0, I) seeded.

    The symmetric square root comes from eigh (negative eigenvalues clamped), so a singular
    covariance (N <= D) works: the draws stay in the affine span of x.
    """
    mean, cov = _mean_cov(x)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, x.shape[1], generator=generator, dtype=torch.float64).to(x.device)
    return (mean + z @ _psd_sqrt(cov)).float()


def _space_metrics(samples: Tensor, real: Tensor, k: int, seed: int) -> dict[str, float]:
    """FD, MMD^2, PRDC on the full sets; 1-NN accuracy and SW2 on the first min(sizes) rows."""
    m = min(len(samples), len(real))
    pairwise = _pairwise(real, samples)
    mmd2, mmd2_se = _mmd2_and_se(pairwise, None)
    out = {"fd": frechet_distance(samples, real), "mmd2": mmd2, "mmd2_se": mmd2_se}
    out.update(_prdc(pairwise, k))
    out["one_nn_acc"] = _one_nn(pairwise.head(m))
    out["sw2"] = sliced_wasserstein(samples[:m], real[:m], seed=seed)
    return out


def distribution_metrics(
    samples: Tensor,
    real: Tensor,
    train: Tensor,
    *,
    pca: tuple[Tensor, Tensor],
    k: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """All metrics of `samples` against held-out `real`, as one flat dict.

    Keys: fd, mmd2 (and mmd2_se, its jackknife standard error), precision, recall, density,
    coverage, one_nn_acc, sw2 in the full space; the
    same with suffix _pca after `project(., pca)`; variance_ratio; and memorised_fraction,
    nn_train_test_ratio from `memorisation(samples, train, real)` in the full space (the
    headline: a copy reproduces the whole vector) and, suffixed _pca, in the PCA space.
    """
    out = _space_metrics(samples, real, k, seed)
    projected = _space_metrics(project(samples, pca), project(real, pca), k, seed)
    out.update({f"{name}_pca": value for name, value in projected.items()})
    out["variance_ratio"] = variance_ratio(samples, real)
    out.update(memorisation(samples, train, real))
    in_pca = memorisation(project(samples, pca), project(train, pca), project(real, pca))
    out.update({f"{name}_pca": value for name, value in in_pca.items()})
    return out

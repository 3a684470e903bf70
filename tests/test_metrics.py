"""Sample-quality metrics: closed forms, reference implementations and limiting cases."""

import math

import numpy as np
import pytest
import torch

from fmscale.metrics import (
    distribution_metrics,
    frechet_distance,
    gaussian_fit_samples,
    memorisation,
    mmd2_unbiased,
    one_nn_accuracy,
    pca_basis,
    prdc,
    project,
    sliced_wasserstein,
    variance_ratio,
)


def _randn(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_identical_sets_score_as_perfect():
    x = _randn(400, 16, seed=1)
    assert abs(frechet_distance(x, x)) < 1e-8
    # Identical sets: MMD^2_u = 2 (mean_{i!=j} k - 1) / n, a small negative number.
    assert -2 / len(x) < mmd2_unbiased(x, x) <= 0
    scores = prdc(x, x.clone())
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    assert sliced_wasserstein(x, x.clone()) == 0.0
    # Every point's nearest other point is its copy in the other set.
    assert one_nn_accuracy(x, x.clone()) == 0.0


def test_frechet_distance_matches_scipy_closed_form():
    linalg = pytest.importorskip("scipy.linalg", reason="scipy gives the sqrtm reference")
    mix = _randn(8, 8, seed=2)
    a = _randn(3000, 8, seed=3) @ mix
    b = _randn(2500, 8, seed=4) * torch.linspace(0.5, 2.0, 8) + 0.3
    a64, b64 = a.double().numpy(), b.double().numpy()
    s_a, s_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    delta = a64.mean(0) - b64.mean(0)
    expected = delta @ delta + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_shifted_standard_normals_approaches_squared_shift():
    shift = torch.tensor([1.0, -1.0, 0.5, 0.0, 0.0, 1.5, 0.0, 0.0])
    a = _randn(100000, 8, seed=5)
    b = _randn(100000, 8, seed=6) + shift
    # Sampling noise: sd of 2 shift . (mean error) is 2 ||shift|| sqrt(2 / N) ~ 0.019.
    assert frechet_distance(a, b) == pytest.approx(float(shift @ shift), abs=0.1)


def test_disjoint_clusters_score_as_fully_separated():
    real = _randn(300, 16, seed=7)
    fake = _randn(300, 16, seed=8) + 20.0
    scores = prdc(real, fake)
    assert scores == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    assert one_nn_accuracy(real, fake) == 1.0
    assert mmd2_unbiased(real, fake) > 0.5


def test_memorisation_of_exact_copies():
    train, test = _randn(500, 16, seed=9), _randn(500, 16, seed=10)
    scores = memorisation(train.clone(), train, test)
    assert scores["memorised_fraction"] == 1.0
    assert scores["nn_train_test_ratio"] < 1e-6


def test_memorisation_of_independent_samples():
    train, test = _randn(1000, 16, seed=11), _randn(1000, 16, seed=12)
    samples = _randn(500, 16, seed=13)
    scores = memorisation(samples, train, test)
    assert scores["memorised_fraction"] < 0.02
    assert scores["nn_train_test_ratio"] == pytest.approx(1.0, abs=0.1)
    # The running top-2 over train chunks gives the same answer as one chunk.
    assert memorisation(samples, train, test, chunk=37) == scores


def _mmd2_loops(a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    def k(x, y):
        return math.exp(-float(((x - y) ** 2).sum()) / (2 * sigma**2))

    m, n = len(a), len(b)
    aa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    bb = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    ab = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return aa + bb - 2 * ab


def test_mmd2_matches_double_loop_reference():
    a = _randn(30, 4, seed=14)
    b = _randn(40, 4, seed=15) * 1.3 + 0.2
    expected = _mmd2_loops(a.double().numpy(), b.double().numpy(), sigma=1.7)
    assert mmd2_unbiased(a, b, bandwidth=1.7) == pytest.approx(expected, rel=1e-10)


def test_mmd2_median_heuristic_is_half_the_median_squared_distance():
    a = _randn(30, 4, seed=14)
    b = _randn(40, 4, seed=15) * 1.3 + 0.2
    pooled = torch.cat([a, b]).double().numpy()
    i, j = np.triu_indices(len(pooled), k=1)  # 70 * 69 / 2 pairs: odd, so one median
    median = np.median(((pooled[i] - pooled[j]) ** 2).sum(1))
    expected = mmd2_unbiased(a, b, bandwidth=math.sqrt(median / 2))
    assert mmd2_unbiased(a, b) == pytest.approx(expected, rel=1e-10)


def test_prdc_hand_computed_1d_example():
    real = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    fake = torch.tensor([[0.5], [2.9], [20.0], [25.0]])
    # k = 1 radii: real 1, 1, 2, 7; fake 2.4, 2.4, 5, 5. Fake 0.5 lies in the balls of real 0
    # and 1, fake 2.9 in that of real 3; real 10's nearest fake (2.9) is 7.1 > 7 away.
    scores = prdc(real, fake, k=1)
    assert scores == pytest.approx(
        {"precision": 0.5, "recall": 0.75, "density": 0.75, "coverage": 0.75}
    )


def test_prdc_matches_the_prdc_package():
    package = pytest.importorskip("prdc", reason="the prdc package is the reference")
    real = _randn(300, 12, seed=16)
    fake = _randn(250, 12, seed=17) * 1.2 + 0.3
    expected = package.compute_prdc(real.double().numpy(), fake.double().numpy(), nearest_k=5)
    scores = prdc(real, fake, k=5)
    assert scores == pytest.approx({name: float(v) for name, v in expected.items()}, rel=1e-12)


def test_one_nn_accuracy_is_near_half_for_one_distribution():
    assert one_nn_accuracy(_randn(500, 8, seed=18), _randn(500, 8, seed=19)) == pytest.approx(
        0.5, abs=0.06
    )


def test_one_nn_accuracy_matches_brute_force_labels():
    spatial = pytest.importorskip("scipy.spatial", reason="scipy gives the cdist reference")
    real = _randn(150, 6, seed=33)
    fake = _randn(110, 6, seed=34) * 1.5
    union = torch.cat([real, fake]).double().numpy()
    labels = np.r_[np.zeros(150), np.ones(110)]
    dist = spatial.distance.cdist(union, union)
    np.fill_diagonal(dist, np.inf)
    expected = (labels[dist.argmin(1)] == labels).mean()
    assert one_nn_accuracy(real, fake) == pytest.approx(expected, abs=1e-12)


def test_sliced_wasserstein_in_1d_is_exact_w2():
    optimize = pytest.importorskip("scipy.optimize", reason="scipy gives the assignment reference")
    a = _randn(200, 1, seed=20)
    b = _randn(200, 1, seed=21) * 2.0 + 1.0
    a64, b64 = a.double().numpy()[:, 0], b.double().numpy()[:, 0]
    # Uniform equal-size empirical measures: W2^2 is the optimal assignment's mean cost.
    cost = (a64[:, None] - b64[None, :]) ** 2
    rows, cols = optimize.linear_sum_assignment(cost)
    expected = math.sqrt(cost[rows, cols].mean())
    assert sliced_wasserstein(a, b, n_projections=4) == pytest.approx(expected, rel=1e-10)


def test_sliced_wasserstein_of_a_shift_is_its_norm_over_sqrt_d():
    a = _randn(300, 16, seed=22)
    shift = torch.linspace(-1.0, 2.0, 16)
    # E[(theta . m)^2] = ||m||^2 / D for a uniform unit theta.
    expected = float(shift.norm()) / 4.0
    assert sliced_wasserstein(a, a + shift, n_projections=4096) == pytest.approx(expected, rel=0.05)


def test_sliced_wasserstein_is_seeded_and_needs_equal_sizes():
    a, b = _randn(100, 8, seed=23), _randn(100, 8, seed=24)
    assert sliced_wasserstein(a, b, seed=3) == sliced_wasserstein(a, b, seed=3)
    assert sliced_wasserstein(a, b, seed=3) != sliced_wasserstein(a, b, seed=4)
    with pytest.raises(ValueError, match="equal sizes"):
        sliced_wasserstein(a, b[:99])


def test_pca_basis_finds_the_high_variance_axes():
    scales = torch.tensor([3.0, 0.5, 2.0, 0.1, 0.2, 0.3])
    x = _randn(4000, 6, seed=25) * scales + 5.0
    mean, components = pca_basis(x, 2)
    assert mean.shape == (6,) and components.shape == (6, 2)
    assert components.dtype == torch.float32
    assert torch.allclose(components.T @ components, torch.eye(2), atol=1e-5)
    # Signed so the largest entry is positive: close to +e_0 then +e_2.
    assert torch.allclose(components, torch.eye(6)[:, [0, 2]], atol=0.05)
    z = project(x, (mean, components))
    assert z.shape == (4000, 2)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(z.var(0), torch.tensor([9.0, 4.0]), rtol=0.1)


def test_variance_ratio_of_doubled_samples_is_four():
    real = _randn(500, 32, seed=26)
    assert variance_ratio(2 * real, real) == pytest.approx(4.0, rel=1e-6)
    assert variance_ratio(real, real) == pytest.approx(1.0)


def test_gaussian_fit_samples_reproduce_mean_and_covariance():
    mix = _randn(4, 4, seed=27)
    x = _randn(5000, 4, seed=28) @ mix + torch.tensor([1.0, -2.0, 0.0, 3.0])
    out = gaussian_fit_samples(x, 40000, seed=0)
    assert out.shape == (40000, 4) and out.dtype == torch.float32
    assert torch.allclose(out.mean(0), x.mean(0), atol=0.05)
    assert torch.allclose(torch.cov(out.T), torch.cov(x.T), atol=0.1)
    assert torch.equal(out, gaussian_fit_samples(x, 40000, seed=0))


def test_gaussian_fit_samples_with_fewer_points_than_dimensions():
    x = _randn(10, 32, seed=29)
    out = gaussian_fit_samples(x, 50, seed=1)
    assert out.shape == (50, 32) and torch.isfinite(out).all()
    # A rank-9 covariance: the draws stay in the affine span of x.
    singular = torch.linalg.svdvals((out - x.mean(0)).double())
    assert (singular[9:] < 1e-5 * singular[0]).all()


def test_distribution_metrics_is_deterministic_and_complete():
    train = _randn(300, 16, seed=30)
    real = _randn(120, 16, seed=31)
    samples = _randn(150, 16, seed=32) * 1.1
    pca = pca_basis(train, 4)
    first = distribution_metrics(samples, real, train, pca=pca, seed=5)
    second = distribution_metrics(samples, real, train, pca=pca, seed=5)
    assert first == second
    space = ["fd", "mmd2", "mmd2_se", "precision", "recall", "density", "coverage", "one_nn_acc"]
    space += ["sw2"]
    extra = ["variance_ratio", "memorised_fraction", "nn_train_test_ratio"]
    extra += ["memorised_fraction_pca", "nn_train_test_ratio_pca"]
    assert list(first) == space + [f"{name}_pca" for name in space] + extra
    assert all(math.isfinite(v) for v in first.values())
    # 1-NN and SW2 use the first min(sizes) rows of each set.
    assert first["sw2"] == sliced_wasserstein(samples[:120], real, seed=5)
    assert first["one_nn_acc_pca"] == one_nn_accuracy(
        project(real, pca), project(samples, pca)[:120]
    )


def test_mmd2_standard_error_is_the_jackknife_over_the_samples():
    from fmscale.metrics import _mmd2_and_se, _pairwise

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, 3, generator=g), torch.randn(25, 3, generator=g) + 0.3
    value, se = _mmd2_and_se(_pairwise(real, fake), 1.0)
    assert value == pytest.approx(mmd2_unbiased(real, fake, 1.0))
    left_out = np.array(
        [mmd2_unbiased(real, torch.cat([fake[:i], fake[i + 1 :]]), 1.0) for i in range(25)]
    )
    jackknife = math.sqrt(24 / 25 * ((left_out - left_out.mean()) ** 2).sum())
    assert se == pytest.approx(jackknife, rel=1e-6)

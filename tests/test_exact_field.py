"""Exact mixture fields: they transport noise to the data, satisfy the CFM optimality condition,
and the memoriser's flow lands on its training rows."""

from pathlib import Path

import pytest
import torch

from fmscale.config import SOLVERS
from fmscale.configfiles import read_yaml
from fmscale.data import DataConfig, build_dataset
from fmscale.exact_field import MixtureField
from fmscale.flow import interpolate, sample
from fmscale.scoring import training_loss, validation_loss

SETTINGS = read_yaml(Path(__file__).with_name("tiny_config.yaml"))


def _gaussian_mixture(weights, means, covs) -> MixtureField:
    eigvals, eigvecs = torch.linalg.eigh(torch.as_tensor(covs, dtype=torch.float64))
    return MixtureField(torch.as_tensor(weights), torch.as_tensor(means), eigvals, eigvecs)


def _sample_mixture(weights, means, covs, n, g):
    comp = torch.multinomial(torch.as_tensor(weights), n, replacement=True, generator=g)
    chol = torch.linalg.cholesky(torch.as_tensor(covs, dtype=torch.float64))
    eps = torch.randn(n, chol.shape[-1], 1, generator=g, dtype=torch.float64)
    return torch.as_tensor(means, dtype=torch.float64)[comp] + (chol[comp] @ eps).squeeze(-1)


MEANS = [[2.0, 0.0, -1.0], [-1.5, 1.0, 0.5]]
COVS = [
    [[0.5, 0.2, 0.0], [0.2, 0.3, 0.0], [0.0, 0.0, 0.05]],
    [[0.1, 0.0, 0.0], [0.0, 0.8, -0.3], [0.0, -0.3, 0.4]],
]
WEIGHTS = [0.3, 0.7]


def test_exact_flow_transports_noise_to_the_gaussian():
    cov = torch.tensor([[1.5, 0.6], [0.6, 0.4]], dtype=torch.float64)
    mean = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    field = _gaussian_mixture([1.0], mean, cov[None])
    x0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x1 = sample(field, x0, nfe=128, solver="midpoint")
    assert torch.allclose(x1.mean(0), mean[0], atol=0.03)
    assert torch.allclose(torch.cov(x1.T), cov, atol=0.05)


@pytest.mark.parametrize("shift", [0.0, 0.15])
def test_only_the_exact_field_is_the_conditional_mean_of_the_path_velocity(shift):
    """E[(v(x_t, t) - (x1 - x0)) phi(x_t, t)] = 0 for test functions phi iff v is optimal."""
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x1 = _sample_mixture(WEIGHTS, MEANS, COVS, n, g)
    x0 = torch.randn(n, 3, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    means = torch.tensor(MEANS, dtype=torch.float64) + shift
    field = _gaussian_mixture(WEIGHTS, means, COVS)
    xt = interpolate(x0, x1, t)
    resid = field(xt, t) - (x1 - x0)
    tests = torch.cat([torch.ones(n, 1), xt, t[:, None]], dim=1).double()
    moments = (resid[:, :, None] * tests[:, None, :]).reshape(n, -1)
    z = moments.mean(0) / (moments.std(0) / n**0.5)
    if shift == 0:
        assert z.abs().max() < 4.5, z
    else:  # a wrong field is caught by the same check
        assert z.abs().max() > 10, z


@pytest.mark.parametrize("solver", ["euler", "midpoint"])
def test_empirical_flow_of_two_points_lands_on_them(solver):
    """Heun is left out: its last evaluation sits at t = 1, where the empirical field
    (x_i - x) / (1 - t) is 0 / 0 on the row it reached."""
    train = torch.tensor([[1.0, 0.0], [-1.0, 0.5]])
    x0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(4))
    x1 = sample(MixtureField.memoriser(train), x0, nfe=32 * SOLVERS[solver], solver=solver)
    assert torch.cdist(x1, train).min(1).values.max() < 1e-3
    assert len({int(i) for i in torch.cdist(x1, train).argmin(1)}) == 2  # both points reached


def test_empirical_flow_lands_on_its_training_rows():
    train = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    field = MixtureField.memoriser(train)
    x0 = torch.randn(200, 8, generator=torch.Generator().manual_seed(3))
    x1 = sample(field, x0, nfe=64, solver="midpoint")
    nearest = torch.cdist(x1, train).topk(2, largest=False).values
    assert (nearest[:, 0] < 0.01 * nearest[:, 1]).all()  # on a row, far from the next


@pytest.fixture(scope="module")
def data():
    return build_dataset(DataConfig.from_dict(SETTINGS["data"]), 1000)


def test_population_field_is_the_standardised_data_distribution(data):
    field = MixtureField.population(data)
    w = field.log_weights.exp()
    mean = w @ field.means
    covs = field.eigvecs @ torch.diag_embed(field.eigvals) @ field.eigvecs.transpose(1, 2)
    second = (w[:, None, None] * (covs + field.means[:, :, None] * field.means[:, None, :])).sum(0)
    var = torch.diagonal(second) - mean**2
    assert mean.abs().max() < 0.1  # the train pool's statistics standardise the data
    assert (var - 1).abs().max() < 0.15


def test_floor_is_below_every_other_field(data):
    floor, zero = validation_loss(MixtureField.population(data), data.val)
    memoriser, _ = validation_loss(MixtureField.memoriser(data.train(500)), data.val)
    assert floor < 0.5 * zero < memoriser  # copying the training rows fails on new rows


def test_memoriser_fits_its_training_rows_below_the_floor(data):
    """The gap the study measures: the memoriser beats the irreducible loss on its own rows."""
    train = data.train(100)  # fewer rows than pairs: each drawn again with new noise and time
    floor, _ = validation_loss(MixtureField.population(data), data.val)
    fitted, zero = training_loss(MixtureField.memoriser(train), train, len(data.val))
    assert fitted < 0.8 * floor and abs(zero - 2.0) < 0.3

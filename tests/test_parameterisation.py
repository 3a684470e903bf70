"""The flow parameterisations: one field algebra for the loss and the sampler, exact on a field
whose flow is known; counted by the gate; resumed exactly; recorded and refused by name."""

import logging
import math

import pytest
import torch
from safetensors.torch import save_file

from fmscale.config import PARAMETERISATIONS, TrainConfig, from_section
from fmscale.configfiles import read_yaml
from fmscale.counting import count_model
from fmscale.data import DataConfig, build_dataset
from fmscale.evaluate import load_cell
from fmscale.flow import (
    LOWRANK_GAIN_RANK,
    SHARE_PRINCIPAL_DIRECTIONS,
    TimeGain,
    VelocityField,
    cfm_loss,
    sample,
)
from fmscale.metrics import variance_share
from fmscale.models import create_model
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec, Trainer

S = 0.5  # data ~ N(0, S^2 I): its exact velocity field is linear in x
D = 8


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v*(x, t) = Cov(x1 - x0, x_t) / Var(x_t) x for x0 ~ N(0, I), x1 ~ N(0, S^2 I)."""
    t = t[:, None]
    return (t * S**2 - (1 - t)) / ((1 - t) ** 2 + t**2 * S**2) * x


class Oracle(torch.nn.Module):
    """The network output that makes ``field`` exact: F = net_target(x, t, v*)."""

    def __init__(self):
        super().__init__()
        self.field: VelocityField | None = None

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _, _, c = self.field.coefficients(t)
        x = z if c is None else z / c  # the field feeds the network c(t) x
        return self.field.net_target(x, t, gaussian_velocity(x, t))


def exact_field(parameterisation: str) -> VelocityField:
    oracle = Oracle()
    field = VelocityField(oracle, parameterisation, D)
    oracle.field = field
    if parameterisation.startswith("skip"):  # a non-zero gain, so the skip term is exercised
        torch.nn.init.normal_(field.gain.out.weight, std=0.5)
    return field


@pytest.mark.parametrize("parameterisation", PARAMETERISATIONS)
def test_field_is_exact_when_the_network_outputs_its_target(parameterisation):
    field = exact_field(parameterisation)
    x, t = torch.randn(256, D), torch.rand(256)
    torch.testing.assert_close(field(x, t), gaussian_velocity(x, t), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("parameterisation", PARAMETERISATIONS)
def test_loss_and_sampler_agree_on_the_exact_field(parameterisation):
    """The exact field reaches the irreducible CFM loss and its ODE carries N(0, I) to the
    data's N(0, S^2 I), through the same parameterised forward."""
    field = exact_field(parameterisation)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(20000, D, generator=g), S * torch.randn(20000, D, generator=g)
    t = torch.rand(20000, generator=g)
    # E_t[S^2 / ((1 - t)^2 + t^2 S^2)] = S (pi/2 + atan((1 - S^2) / (2 S))) / (1 + S^2) ... by
    # quadrature, to stay independent of algebra:
    grid = (torch.arange(100000, dtype=torch.float64) + 0.5) / 100000
    irreducible = (S**2 / ((1 - grid) ** 2 + grid**2 * S**2)).mean().item()
    assert math.isclose(cfm_loss(field, x0, x1, t).item(), irreducible, rel_tol=0.03)
    samples = sample(field, torch.randn(20000, D, generator=g), nfe=64, solver="midpoint")
    assert math.isclose(samples.std().item(), S, rel_tol=0.03)


@pytest.mark.parametrize("parameterisation", PARAMETERISATIONS)
def test_every_field_starts_at_its_zero_network(parameterisation):
    """Zero-initialised output layers: the field starts at a(t) x (v = 0 unless a fixed
    parameterisation carries a linear term)."""
    torch.manual_seed(0)
    net = create_model("mlp", "tiny", data_dim=64)
    field = VelocityField(net, parameterisation, 64)
    x, t = torch.randn(16, 64), torch.rand(16)
    a, _, _ = field.coefficients(t)
    expected = torch.zeros_like(x) if a is None else a * x
    torch.testing.assert_close(field(x, t), expected)


def test_gate_counts_what_the_parameterisation_adds():
    gain = sum(p.numel() for p in TimeGain(1).parameters())
    gain_dim = sum(p.numel() for p in TimeGain(1024).parameters())
    base = count_model("mlp", {"hidden_dim": 96, "num_layers": 3}, 1024, "velocity")
    assert count_model("mlp", {"hidden_dim": 96, "num_layers": 3}, 1024, "skip_scalar") == (
        base + gain
    )
    assert count_model("mlp", {"hidden_dim": 96, "num_layers": 3}, 1024, "skip_dim") == (
        base + gain_dim
    )
    assert gain_dim == gain + 1023 * 65  # 64 weights and a bias per extra output dimension
    rank = LOWRANK_GAIN_RANK
    assert count_model("mlp", {"hidden_dim": 96, "num_layers": 3}, 1024, "skip_lowrank") == (
        base + gain + rank * 65 + rank * 1024  # r more outputs of the MLP of t, a D x r basis
    )
    assert count_model("mlp", {"hidden_dim": 96, "num_layers": 3}, 1024, "skip_share") == (
        base + gain + 65  # one more output of the MLP of t; e is a buffer, not a parameter
    )
    for fixed in ("velocity", "edm", "data"):
        assert count_model("mlp", {"hidden_dim": 96, "num_layers": 3}, 1024, fixed) == base


SETTINGS = read_yaml(__file__.replace("test_parameterisation.py", "tiny_config.yaml"))


@pytest.fixture(scope="module")
def data():
    return build_dataset(DataConfig.from_dict(SETTINGS["data"]), 1000)


def cfg(**kw):
    return from_section(TrainConfig, {**SETTINGS["train"], **kw}, "train")


def share(rows: torch.Tensor) -> torch.Tensor:
    """skip_share's vector of these rows."""
    return variance_share(rows, SHARE_PRINCIPAL_DIRECTIONS)


def test_skip_share_reads_its_vector_from_the_cells_own_rows_and_keeps_it(tmp_path, data):
    """e comes from the cell's n_train rows (not the pool: a small cell must not see rows it
    does not train on), is saved with the weights and loaded back."""
    spec = CellSpec("mlp", "tiny", 64, 0)
    train_cell(spec, data, cfg(steps=4, parameterisation="skip_share"), tmp_path, progress=False)
    field, _ = load_cell(tmp_path)
    own = share(data.train(64))
    torch.testing.assert_close(field.gain.share, own)
    assert not torch.allclose(own, share(data.train(1000)), atol=1e-2)
    assert own.mean().abs() < 1e-5 and (own.std() - 1).abs() < 1e-4


def test_variance_share_is_zero_when_every_dimension_is_alike():
    assert torch.equal(share(torch.ones(10, 4)), torch.zeros(4))


@pytest.mark.parametrize("parameterisation", ["skip_dim", "skip_share", "edm", "data"])
def test_resume_is_exact_and_the_field_is_recorded(tmp_path, data, parameterisation):
    spec = CellSpec("mlp", "tiny", 300, 0)
    settings = cfg(steps=40, ckpt_every=20, parameterisation=parameterisation)
    whole = train_cell(spec, data, settings, tmp_path / "a", progress=False)
    train_cell(spec, data, settings, tmp_path / "b", progress=False)
    for late in (tmp_path / "b" / "ckpt").glob("step_00000040.*"):  # as if killed after 20
        late.unlink()
    resumed = train_cell(spec, data, settings, tmp_path / "b", progress=False)
    assert resumed["resumed_from_step"] == 20
    assert whole["train"]["parameterisation"] == parameterisation
    a, _ = load_cell(tmp_path / "a")
    b, _ = load_cell(tmp_path / "b")
    assert a.parameterisation == parameterisation
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_checkpoint_of_another_parameterisation_is_not_resumed_and_is_named(tmp_path, data, caplog):
    spec = CellSpec("mlp", "tiny", 300, 0)
    Trainer(spec, data, cfg(steps=20, parameterisation="velocity"), tmp_path).run(progress=False)
    with caplog.at_level(logging.WARNING):
        cell = train_cell(
            spec, data, cfg(steps=20, parameterisation="skip_dim"), tmp_path, progress=False
        )
    assert cell["resumed_from_step"] == 0 and cell["restarted_from_stale"]
    assert "train.parameterisation: 'velocity' -> 'skip_dim'" in caplog.text


def test_a_cell_saved_before_parameterisations_loads_as_velocity(tmp_path, data):
    settings = cfg(steps=5, parameterisation="velocity")
    cell = train_cell(CellSpec("mlp", "tiny", 300, 0), data, settings, tmp_path, progress=False)
    field, _ = load_cell(tmp_path)
    old = {k.removeprefix("net."): v for k, v in field.state_dict().items()}
    save_file({k: v.contiguous() for k, v in old.items()}, str(tmp_path / "model.safetensors"))
    info = (tmp_path / "cell.json").read_text().replace('"parameterisation": "velocity",', "")
    (tmp_path / "cell.json").write_text(info)
    again, _ = load_cell(tmp_path)
    assert again.parameterisation == "velocity" and cell["steps"] == 5
    x, t = torch.randn(4, 64), torch.rand(4)
    torch.testing.assert_close(again(x, t), field(x, t))

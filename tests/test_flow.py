"""Probability path, CFM loss, OT pairing and ODE samplers."""

import pytest
import torch

from fmscale.flow import cfm_loss, interpolate, ot_pair, sample


def test_path_endpoints_and_zero_velocity_baseline():
    x0, x1 = torch.randn(4000, 32), torch.randn(4000, 32)
    torch.testing.assert_close(interpolate(x0, x1, torch.zeros(4000)), x0)
    torch.testing.assert_close(interpolate(x0, x1, torch.ones(4000)), x1)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    assert abs(cfm_loss(zero, x0, x1, torch.rand(4000)).item() - 2.0) < 0.05


def test_ot_pairing_is_a_permutation_that_lowers_cost():
    x0, x1 = torch.randn(64, 8), torch.randn(64, 8)
    paired = ot_pair(x0, x1)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x0.tolist()))
    assert ((paired - x1) ** 2).sum() < ((x0 - x1) ** 2).sum()


class Translate(torch.nn.Module):
    """Exact velocity of the straight path from N(0, I) to N(0, I) + shift: v = shift."""

    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def forward(self, x, t):
        return self.shift.expand_as(x)


@pytest.mark.parametrize("solver,nfe", [("euler", 1), ("euler", 7), ("midpoint", 4), ("heun", 8)])
def test_samplers_integrate_a_known_field(solver, nfe):
    shift = torch.arange(5.0)
    x0 = torch.randn(10, 5)
    torch.testing.assert_close(sample(Translate(shift), x0, nfe, solver), x0 + shift)


class Linear(torch.nn.Module):
    """dx/dt = x: the exact flow is x0 * e; higher-order solvers get closer at equal NFE."""

    def forward(self, x, t):
        return x


def test_second_order_solvers_beat_euler():
    x0 = torch.ones(1, 1)
    err = {
        s: (sample(Linear(), x0, 8, s) - torch.e).abs().item()
        for s in ("euler", "midpoint", "heun")
    }
    assert err["midpoint"] < err["euler"] / 5 and err["heun"] < err["euler"] / 5


def test_bad_nfe_and_solver():
    with pytest.raises(ValueError, match="multiple of 2"):
        sample(Linear(), torch.ones(1, 1), 3, "heun")
    with pytest.raises(ValueError, match="unknown solver"):
        sample(Linear(), torch.ones(1, 1), 3, "rk4")

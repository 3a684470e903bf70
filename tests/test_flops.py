"""FLOP counts: matmul FLOPs counted on the meta device, the Mamba scan estimated and flagged."""

import pytest

import fmscale.flops as flops_module
from fmscale.flops import SCAN_FLOPS_PER_STATE, count_flops
from fmscale.flow import VelocityField
from fmscale.models import create_model


def field(arch):
    return VelocityField(create_model(arch, "tiny", data_dim=64), "skip_scalar", 64)


def test_mlp_costs_six_flops_per_parameter_per_row_to_train():
    f = field("mlp")
    n = sum(p.numel() for p in f.parameters())
    flops = count_flops(f, 64, 32)
    assert flops["train_flops_per_step"] == pytest.approx(6 * n * 32, rel=0.1)
    assert flops["sampling_flops_per_sample_per_nfe"] == pytest.approx(2 * n, rel=0.1)
    assert flops["flops_estimated_part"] is None


def test_mamba_scan_is_estimated_from_its_shapes_and_flagged(monkeypatch):
    f = field("mamba")
    flops = count_flops(f, 64, 32)
    assert "mamba selective scan" in flops["flops_estimated_part"]
    blocks = [m for m in f.modules() if type(m).__name__ == "MambaBlock"]
    scan = sum(SCAN_FLOPS_PER_STATE * f.net.num_tokens * b.d_inner * b.d_state for b in blocks)
    monkeypatch.setattr(flops_module, "SCAN_FLOPS_PER_STATE", 0)
    counted = count_flops(f, 64, 32)
    assert flops["sampling_flops_per_sample_per_nfe"] - counted[
        "sampling_flops_per_sample_per_nfe"
    ] == pytest.approx(scan)
    assert flops["train_flops_per_step"] - counted["train_flops_per_step"] == pytest.approx(
        3 * scan * 32
    )


def test_counting_leaves_the_field_untouched():
    f = field("dit")
    before = {k: v.clone() for k, v in f.state_dict().items()}
    count_flops(f, 64, 8)
    assert all(p.grad is None for p in f.parameters())
    assert all((f.state_dict()[k] == v).all() for k, v in before.items())

"""Every velocity network: shapes, zero start, live gradients, time conditioning."""

import itertools
import logging

import pytest
import torch

from fmscale.models import (
    ARCHITECTURES,
    SCALING_CONFIGS,
    create_model,
    get_scaled_config,
    list_available_scales,
)
from fmscale.models.layers import TimestepEmbedder

ARCHS = list(ARCHITECTURES)
SCALES = ["tiny", "small", "base"]


@pytest.mark.parametrize("arch,scale", list(itertools.product(ARCHS, SCALES)))
def test_every_arch_and_scale_builds_and_maps_b_by_d(arch, scale):
    model = create_model(arch, scale)
    x, t = torch.randn(4, 1024), torch.rand(4)
    out = model(x, t)
    assert out.shape == (4, 1024)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch,dim", [(1, 1024), (3, 256), (2, 512)])
def test_other_dims_and_batch_one(arch, batch, dim):
    model = create_model(arch, "tiny", data_dim=dim)
    out = model(torch.randn(batch, dim), torch.rand(batch))
    assert out.shape == (batch, dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_output_starts_at_zero(arch):
    model = create_model(arch, "tiny", data_dim=256)
    out = model(torch.randn(5, 256), torch.rand(5))
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_no_dead_parameters(arch):
    """Zero-initialised output layers and gates block gradients for the first steps, so take
    a few optimiser steps (as many as the zero-init depth, 3 for adaLN-Zero), then every
    parameter must receive a finite, non-zero gradient."""
    model = create_model(arch, "tiny", data_dim=256)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, t, target = torch.randn(16, 256), torch.rand(16), torch.randn(16, 256)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x, t), target).backward()
        opt.step()
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x, t), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{arch}: no gradient reaches {name}"


@pytest.mark.parametrize("arch", ARCHS)
def test_output_depends_on_t_after_training_step(arch):
    model = create_model(arch, "tiny", data_dim=256)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(8, 256)
    for _ in range(3):
        opt.zero_grad()
        t = torch.rand(8)
        ((model(x, t) - t[:, None] * x) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        a = model(x, torch.full((8,), 0.1))
        b = model(x, torch.full((8,), 0.9))
    assert (a - b).abs().max() > 1e-4


def test_timestep_embedding_varies_over_unit_interval():
    emb = TimestepEmbedder(64)
    feats = emb.sinusoidal(torch.tensor([0.1, 0.2]))
    # Unscaled t would move these features by ~1e-3 on average; scaled by 1000 they decorrelate.
    assert (feats[0] - feats[1]).abs().mean() > 0.3
    assert torch.nn.functional.cosine_similarity(feats[0], feats[1], dim=0) < 0.9


def test_default_scale_and_overrides(caplog):
    default = create_model("mlp")
    small = create_model("mlp", "small")
    assert sum(p.numel() for p in default.parameters()) == sum(
        p.numel() for p in small.parameters()
    )
    with caplog.at_level(logging.WARNING):
        model = create_model("mlp", "tiny", hidden_dim=48)
    assert model.in_proj.out_features == 48
    assert "hidden_dim=48" in caplog.text and "hidden_dim=96" in caplog.text


def test_same_override_value_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING):
        create_model("mlp", "tiny", hidden_dim=96)
    assert caplog.text == ""


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(arch="transformer"), "available: ['mlp', 'dit', 'unet', 'mamba']"),
        (dict(arch="mlp", scale="huge"), "available: ['tiny', 'small', 'base']"),
        (dict(arch="mlp", scale="tiny", num_heads=4), "allowed"),
        (dict(arch="dit", scale="tiny", num_heads=5), "not divisible"),
        (dict(arch="mlp", scale="tiny", hidden_dim="wide"), "hidden_dim must be an integer"),
    ],
)
def test_bad_requests_raise_value_error(kwargs, needle):
    with pytest.raises(ValueError, match=None) as info:
        create_model(**kwargs)
    assert needle in str(info.value)


def test_tokens_must_divide_data_dim():
    with pytest.raises(ValueError, match="num_tokens=16"):
        create_model("dit", "tiny", data_dim=1000)


def test_scaling_configs_are_read_only_and_copies_are_independent():
    with pytest.raises(TypeError):
        SCALING_CONFIGS["mlp_tiny"]["hidden_dim"] = 1
    row = get_scaled_config("unet", "tiny")
    row["hidden_dims"].append(7)
    assert get_scaled_config("unet", "tiny")["hidden_dims"] == [104, 52]
    assert list_available_scales() == {a: SCALES for a in ARCHS}
    assert set(SCALING_CONFIGS) == {f"{a}_{s}" for a in ARCHS for s in SCALES}


def test_mlp_and_unet_share_the_film_block_and_its_state_dict_keys():
    from fmscale.models.layers import FiLMResBlock

    expected = {"film.1.weight", "film.1.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    mlp, unet = create_model("mlp", "tiny"), create_model("unet", "tiny")
    blocks = [*mlp.blocks, *unet.down_blocks, unet.mid, *unet.up_blocks]
    for block in blocks:
        assert type(block) is FiLMResBlock
        assert set(block.state_dict()) == expected
    assert mlp.blocks[0].film[1].in_features == mlp.in_proj.out_features  # cond_dim = hidden_dim


def test_dit_block_modulation_is_x_times_one_plus_scale_plus_shift():
    from fmscale.models.dit import DiTBlock

    torch.manual_seed(0)
    block = DiTBlock(24, 3, 2.0)
    torch.nn.init.normal_(block.ada[1].weight)  # adaLN-Zero starts at 0: make it non-trivial
    torch.nn.init.normal_(block.ada[1].bias)
    x, c = torch.randn(2, 5, 24), torch.randn(2, 24)
    shift1, scale1, gate1, shift2, scale2, gate2 = block.ada(c).unsqueeze(1).chunk(6, dim=-1)
    ref = x + gate1 * block.attn(block.norm1(x) * (1 + scale1) + shift1)
    ref = ref + gate2 * block.mlp(block.norm2(ref) * (1 + scale2) + shift2)
    assert torch.equal(block(x, c), ref)


def test_importing_the_models_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, fmscale, fmscale.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""MambaBlock: the scan, mamba_ssm-compatible parameters, and the optional fused path."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from fmscale.models import MAMBA_FUSED_AVAILABLE, MambaBlock, create_model, mamba, mamba_kernels
from fmscale.models.mamba import causal_depthwise_conv, mamba_kernel
from fmscale.models.scan import BLOCK_ELEMENTS, SCAN_FORMS, block_rows, selective_scan


def reference_scan(u, delta, A, B, C, D):
    """mamba_ssm's selective_scan_ref, one scalar state update at a time (no batching tricks)."""
    batch, length, d_inner = u.shape
    y = torch.zeros_like(u)
    for b in range(batch):
        h = torch.zeros(d_inner, A.shape[1], dtype=torch.float64)
        for step in range(length):
            dA = torch.exp(delta[b, step, :, None].double() * A.double())
            dBu = (
                delta[b, step, :, None].double()
                * B[b, step, None, :].double()
                * u[b, step, :, None].double()
            )
            h = dA * h + dBu
            y[b, step] = (h @ C[b, step].double() + D.double() * u[b, step].double()).to(u.dtype)
    return y


def scan_inputs(b=3, L=16, d=24, n=8, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(b, L, d, generator=gen, dtype=dtype)
    delta = F.softplus(torch.randn(b, L, d, generator=gen, dtype=dtype))
    A = -torch.rand(d, n, generator=gen, dtype=dtype) * 4
    B = torch.randn(b, L, n, generator=gen, dtype=dtype)
    C = torch.randn(b, L, n, generator=gen, dtype=dtype)
    D = torch.randn(d, generator=gen, dtype=dtype)
    return u, delta, A, B, C, D


@pytest.mark.parametrize("form", sorted(SCAN_FORMS))
def test_scan_forms_match_sequential_reference(form):
    args = scan_inputs()
    torch.testing.assert_close(
        selective_scan(*args, form=form), reference_scan(*args), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("form", sorted(SCAN_FORMS))
def test_scan_form_gradients_match_float64_autograd(form):
    """Every input's gradient, against autograd through the float64 loop."""
    args64 = [x.requires_grad_() for x in scan_inputs(dtype=torch.float64)]
    gy = torch.randn(3, 16, 24, dtype=torch.float64)
    want = torch.autograd.grad(SCAN_FORMS["loop"](*args64), args64, gy)
    args = [x.detach().float().requires_grad_() for x in args64]
    got = torch.autograd.grad(selective_scan(*args, form=form), args, gy.float())
    for name, g, w in zip("u delta A B C D".split(), got, want, strict=True):
        torch.testing.assert_close(g.double(), w, atol=1e-5, rtol=1e-5, msg=f"d/d{name}")


def test_blocked_scan_walks_the_batch_in_slices(monkeypatch):
    """A budget of two rows per slice gives slices of 2, 2, 2, 2, 1: same values and gradients."""
    args = [x.requires_grad_() for x in scan_inputs(b=9)]
    gy = torch.randn(9, 16, 24)
    whole = selective_scan(*args)
    whole_grads = torch.autograd.grad(whole, args, gy)
    monkeypatch.setitem(BLOCK_ELEMENTS, "cpu", 2 * 16 * 24 * 8)
    assert block_rows(args[0], 8) == 2
    sliced = selective_scan(*args)
    torch.testing.assert_close(sliced, whole, atol=1e-6, rtol=1e-6)
    for g, w in zip(torch.autograd.grad(sliced, args, gy), whole_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-6)


def test_unknown_scan_form_is_named():
    with pytest.raises(ValueError, match="unknown scan form 'fft'.*blocked"):
        selective_scan(*scan_inputs(), form="fft")


def test_causal_conv_matches_conv1d_with_gradients():
    conv = torch.nn.Conv1d(24, 24, 4, groups=24, padding=3)
    x = torch.randn(3, 16, 24, requires_grad=True)
    gy = torch.randn(3, 16, 24)
    want = conv(x.transpose(1, 2))[..., :16].transpose(1, 2)
    got = causal_depthwise_conv(x, conv.weight, conv.bias)
    torch.testing.assert_close(got, want)
    params = [x, conv.weight, conv.bias]
    grads = torch.autograd.grad(got, params, gy), torch.autograd.grad(want, params, gy)
    for g, w in zip(*grads, strict=True):
        torch.testing.assert_close(g, w)


def test_block_matches_reference_forward():
    """The whole block against a re-derivation of mamba_ssm.Mamba's slow path."""
    block = MambaBlock(32, d_state=8)
    x = torch.randn(2, 16, 32)
    xi, z = block.in_proj(x).chunk(2, dim=-1)
    xi = F.silu(block.conv1d(xi.transpose(1, 2))[..., :16]).transpose(1, 2)
    dt, B, C = block.x_proj(xi).split([block.dt_rank, 8, 8], dim=-1)
    delta = F.softplus(dt @ block.dt_proj.weight.t() + block.dt_proj.bias)
    y = reference_scan(xi, delta, -torch.exp(block.A_log), B, C, block.D) * F.silu(z)
    torch.testing.assert_close(block(x), block.out_proj(y), atol=1e-5, rtol=1e-5)


def test_parameters_match_mamba_ssm_layout():
    """Names and shapes of mamba_ssm.Mamba(d_model=64) (d_inner 128, dt_rank 4, d_state 16)."""
    block = MambaBlock(64)
    shapes = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (256, 64),
        "conv1d.weight": (128, 1, 4),
        "conv1d.bias": (128,),
        "x_proj.weight": (36, 128),
        "dt_proj.weight": (128, 4),
        "dt_proj.bias": (128,),
        "A_log": (128, 16),
        "D": (128,),
        "out_proj.weight": (64, 128),
    }


def test_initialisation_matches_mamba_ssm():
    block = MambaBlock(64, dt_min=0.001, dt_max=0.1)
    torch.testing.assert_close(torch.exp(block.A_log), torch.arange(1, 17.0).repeat(128, 1))
    assert torch.all(block.D == 1)
    dt = F.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-3 - 1e-6 and dt.max() <= 0.1 + 1e-6
    bound = 4**-0.5
    assert block.dt_proj.weight.abs().max() <= bound


def test_state_dict_round_trips_strictly():
    a, b = MambaBlock(48), MambaBlock(48)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 16, 48)
    torch.testing.assert_close(a(x), b(x))


def test_state_dict_loads_into_mamba_ssm_when_installed():
    mamba_ssm = pytest.importorskip("mamba_ssm", reason="mamba-ssm is not importable here (CPU)")
    ours = MambaBlock(64)
    theirs = mamba_ssm.Mamba(d_model=64)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.skipif(not MAMBA_FUSED_AVAILABLE, reason="fused path needs CUDA and mamba-ssm")
def test_fused_path_matches_pure_pytorch():
    block = MambaBlock(64).cuda()
    x = torch.randn(4, 16, 64, device="cuda")
    fused = block(x)
    slow = block.cpu()(x.cpu())
    torch.testing.assert_close(fused.cpu(), slow, atol=1e-3, rtol=1e-3)


def _fake_mamba_ssm(root, interface_source: str) -> dict[str, str]:
    """A mamba_ssm package whose selective_scan_interface is ``interface_source``; the env."""
    pkg = root / "mamba_ssm"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "selective_scan_interface.py").write_text(interface_source)
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_a_cpu_mamba_model_never_imports_mamba_ssm(tmp_path):
    """A mamba_ssm that fails on import, as on a CPU machine, is never imported: fmscale builds,
    trains a step of and counts a Mamba model without it."""
    env = _fake_mamba_ssm(tmp_path, "raise RuntimeError('imported')\n")
    code = textwrap.dedent(
        """
        import sys, torch
        from fmscale.models import MAMBA_FUSED_AVAILABLE, create_model
        assert MAMBA_FUSED_AVAILABLE is False
        m = create_model("mamba", "tiny", data_dim=256)
        m(torch.randn(2, 256), torch.rand(2)).sum().backward()
        assert "mamba_ssm" not in sys.modules
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


class _Interface:
    """A stand-in for mamba_ssm.ops.selective_scan_interface with chosen kernels missing."""

    def __init__(self, *missing: str):
        self.mamba_inner_fn = lambda *args, **kwargs: None
        for name in mamba_kernels.KERNELS:
            setattr(self, name, None if name in missing else object())


@pytest.mark.parametrize(
    "interface,needle",
    [
        (_Interface("causal_conv1d_fwd_function", "causal_conv1d_bwd_function"), "causal-conv1d"),
        (_Interface("selective_scan_cuda"), "selective_scan_cuda"),
        (ImportError("libcudart.so.12: cannot open shared object file"), "does not import"),
    ],
    ids=["no causal-conv1d", "no selective_scan_cuda (mamba-ssm head)", "broken build"],
)
def test_missing_kernels_fall_back_to_the_scan_with_a_warning(
    monkeypatch, caplog, interface, needle
):
    def import_interface():
        if isinstance(interface, Exception):
            raise interface
        return interface

    monkeypatch.setattr(mamba_kernels, "_import_interface", import_interface)
    mamba_kernels.fused_kernels.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="fmscale.models.mamba_kernels"):
            kernels = mamba_kernels.fused_kernels()
            mamba_kernels.fused_kernels()  # cached: one warning per process
        assert not kernels.available and needle in kernels.reason
        assert len(caplog.records) == 1 and needle in caplog.records[0].getMessage()
        with monkeypatch.context() as patch:
            patch.setattr(mamba, "_FUSED_DEVICE_TYPES", ("cuda", "cpu"))
            mamba._fused_call.cache_clear()
            assert mamba_kernel(torch.device("cpu")) == ("scan", kernels.reason)
    finally:
        mamba_kernels.fused_kernels.cache_clear()
        mamba._fused_call.cache_clear()


def test_complete_kernels_are_taken():
    interface = _Interface()
    kernels = mamba_kernels.kernels_of(interface)
    assert kernels.available and kernels.inner_fn is interface.mamba_inner_fn


def test_cpu_inputs_take_the_scan_whatever_is_installed():
    assert mamba_kernel(torch.device("cpu")) == ("scan", "cpu inputs run the scan")


@pytest.mark.parametrize(
    "override,needle",
    [({"d_conv": 5}, "d_conv=5 must be in 2..4"), ({"d_state": 257}, "d_state=257 must be <=")],
)
def test_rows_the_fused_kernels_cannot_run_are_refused(override, needle):
    with pytest.raises(ValueError, match=needle):
        create_model("mamba", "tiny", data_dim=256, **override)


def test_mamba_arch_is_bidirectional():
    """Changing the last token must change the first token's output (the backward pass)."""
    model = create_model("mamba", "tiny", data_dim=256)
    torch.nn.init.normal_(model.head.linear.weight)  # undo the zero start
    x = torch.randn(1, 256)
    y = x.clone()
    y[0, -16:] += 1.0
    t = torch.full((1,), 0.5)
    with torch.no_grad():
        diff = model(x, t) - model(y, t)
    assert diff[0, :16].abs().max() > 1e-6

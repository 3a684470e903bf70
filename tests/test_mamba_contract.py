"""Contract tests of the fused path: mamba-ssm's real ``mamba_inner_fn`` on CPU.

mamba-ssm cannot be imported without CUDA, so ``mamba_upstream`` downloads the pinned sdists and
runs their ``selective_scan_interface.py`` against CPU stand-ins of the CUDA kernels that raise
where the kernels' checks do. ``MambaBlock`` then takes that fused call for CPU inputs (the
``_FUSED_DEVICE_TYPES`` and ``_import_interface`` seams) and must agree with its pure-PyTorch
scan: values, every gradient, the fallback when a kernel is missing, and xz's layout.
"""

import contextlib
import logging
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from mamba_upstream import (
    SelectiveScanCPU,
    SourcesUnavailable,
    TorchAutocastOnCpu,
    causal_conv1d_fwd_function,
    fetch_sources,
    load_interface,
)

from fmscale.models import MambaBlock, create_model, mamba, mamba_kernels
from fmscale.models.configs import MambaConfig
from fmscale.models.mamba import MambaVelocity

VERSIONS = ("2.3.0", "2.3.2.post1")
"""The ends of the pyproject's ``mamba-ssm>=2.3.0,<=2.3.2.post1``."""
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmscale-tests"
PURE, FUSED = ("cuda",), ("cuda", "cpu")
"""``_FUSED_DEVICE_TYPES`` for CPU inputs on the pure-PyTorch scan and on the fused call."""


@pytest.fixture(scope="session", params=VERSIONS)
def upstream_sources(request) -> Path:
    """The sources of one pinned mamba-ssm, downloaded once into CACHE."""
    try:
        return fetch_sources(request.param, CACHE)
    except SourcesUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def load(upstream_sources, monkeypatch):
    """``load_interface`` on the sources, its modules in sys.modules for this test only, and
    ``fused_kernels`` and the per-device ``fused_call`` decided afresh in the test and after it."""
    mamba_kernels.fused_kernels.cache_clear()
    mamba._fused_call.cache_clear()

    def load_it(**options):
        setitem = lambda name, made: monkeypatch.setitem(sys.modules, name, made)  # noqa: E731
        return load_interface(upstream_sources, setitem, **options)

    yield load_it
    mamba_kernels.fused_kernels.cache_clear()
    mamba._fused_call.cache_clear()


@pytest.fixture
def fused_calls(load, monkeypatch) -> list[torch.Tensor]:
    """CPU inputs may take the loaded ``mamba_inner_fn``, which sees CPU autocast as it sees
    CUDA's on a GPU; the list records the xz of each call."""
    interface = load()
    calls = []

    def recording(xz, *args, **kwargs):
        calls.append(xz)
        return inner_fn(xz, *args, **kwargs)

    inner_fn = interface.mamba_inner_fn
    monkeypatch.setattr(interface, "mamba_inner_fn", recording)
    monkeypatch.setattr(interface, "torch", TorchAutocastOnCpu())
    monkeypatch.setattr(mamba_kernels, "_import_interface", lambda: interface)
    with monkeypatch.context() as patch:  # the once-per-device probe, before the test's calls
        patch.setattr(mamba, "_FUSED_DEVICE_TYPES", FUSED)
        assert mamba.fused_call(torch.device("cpu")).available
    assert len(calls) == 1
    calls.clear()
    return calls


def block_and_inputs() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """A MambaBlock(d_model 64, d_state 16, d_conv 4) and x [3, 16, 64]."""
    torch.manual_seed(0)
    return MambaBlock(64, d_state=16, d_conv=4), (torch.randn(3, 16, 64),)


def model_and_inputs() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """The tiny Mamba model, its zero-initialised weights (FiLM, head) made random so that every
    gradient is non-trivial, and (x, t) for a batch of 3."""
    torch.manual_seed(0)
    model = create_model("mamba", "tiny", data_dim=256)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(std=0.1)
    return model, (torch.randn(3, 256), torch.rand(3))


def run(model, inputs, monkeypatch, device_types, bf16=False):
    """Output and gradients (inputs', then parameters') of ``model(*inputs)`` for a fixed
    cotangent, with ``device_types`` as ``_FUSED_DEVICE_TYPES``; forward and backward under
    bf16 CPU autocast when ``bf16`` (upstream's custom_bwd runs the backward under the forward's
    autocast on CUDA)."""
    leaves = [x.detach().requires_grad_() for x in inputs]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with monkeypatch.context() as patch, autocast:
        patch.setattr(mamba, "_FUSED_DEVICE_TYPES", device_types)
        out = model(*leaves)
        cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad(out, [*leaves, *model.parameters()], cotangent.to(out.dtype))
    names = [f"input {i}" for i in range(len(leaves))] + [n for n, _ in model.named_parameters()]
    return out.detach(), dict(zip(names, grads, strict=True))


def differences(out, want_out, grads: dict, want_grads: dict) -> str:
    """Max |out - want| (absolute, then relative to max |want|) of the output and of the
    gradient that differs most relative to its own scale."""

    def pair(got, want):
        diff = (got.float() - want.float()).abs().max().item()
        return diff, diff / want.float().abs().max().item()

    out_abs, out_rel = pair(out, want_out)
    grad_abs = max(pair(grads[k], want_grads[k])[0] for k in want_grads)
    worst = max(want_grads, key=lambda k: pair(grads[k], want_grads[k])[1])
    worst_rel = pair(grads[worst], want_grads[worst])[1]
    return (
        f"out {out_abs:.1e} (relative {out_rel:.1e}); "
        f"grads max {grad_abs:.1e}, worst relative {worst_rel:.1e} (d/d{worst})"
    )


CASES = {"block": (block_and_inputs, 1), "tiny model": (model_and_inputs, 8)}
"""Builders and the MambaBlock calls of a forward (tiny: 4 layers of two directions)."""


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_call_matches_pure_scan_in_fp32_with_every_gradient(case, fused_calls, monkeypatch):
    build, n_calls = CASES[case]
    model, inputs = build()
    out, grads = run(model, inputs, monkeypatch, FUSED)
    assert len(fused_calls) == n_calls
    want_out, want_grads = run(model, inputs, monkeypatch, PURE)
    assert len(fused_calls) == n_calls
    torch.testing.assert_close(out, want_out, atol=1e-5, rtol=1e-5)
    for name, want in want_grads.items():
        assert want.abs().max() > 0, f"d/d{name} is zero: the comparison would be vacuous"
        torch.testing.assert_close(grads[name], want, atol=1e-5, rtol=1e-4, msg=f"d/d{name}")
    print(f"{case} fp32: {differences(out, want_out, grads, want_grads)}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_call_matches_pure_scan_under_bf16_autocast(case, fused_calls, monkeypatch):
    build, n_calls = CASES[case]
    model, inputs = build()
    out, grads = run(model, inputs, monkeypatch, FUSED, bf16=True)
    assert len(fused_calls) == n_calls
    want_out, want_grads = run(model, inputs, monkeypatch, PURE, bf16=True)
    assert out.dtype == want_out.dtype
    scale = want_out.abs().max()
    torch.testing.assert_close(out, want_out, atol=0.05 * scale, rtol=0.05)
    for name, want in want_grads.items():
        assert grads[name].dtype == want.dtype, name
        torch.testing.assert_close(
            grads[name], want, atol=0.05 * want.abs().max(), rtol=0.1, msg=f"d/d{name}"
        )
    print(f"{case} bf16: {differences(out, want_out, grads, want_grads)}")


def conv_call(batch=2, dim=8, length=16, width=4, dtype=torch.float32, every=1):
    """causal_conv1d_fwd_function on x [batch, dim, length] (every ``every``-th of L)."""
    x = torch.randn(batch, dim, length * every, dtype=dtype)[..., ::every]
    return causal_conv1d_fwd_function(x, torch.randn(dim, width), None, None, None, None, True)


def scan_call(batch=2, dim=8, length=16, dstate=4, dtype=torch.float32, every=1):
    """selective_scan_cuda.fwd on u, delta [batch, dim, length] (every ``every``-th of L) and
    grouped B, C [batch, 1, dstate, length]."""
    u = torch.randn(batch, dim, length * every, dtype=dtype)[..., ::every]
    BC = torch.randn(batch, 1, dstate, length, dtype=dtype)
    A = -torch.rand(dim, dstate)
    return SelectiveScanCPU().fwd(u, u, A, BC, BC, None, None, None, True)


REFUSED = {
    "conv float64 input": (lambda: conv_call(dtype=torch.float64), "input dtype"),
    "conv width 5": (lambda: conv_call(width=5), "width between 2 and 4"),
    "conv strided L": (lambda: conv_call(every=2), "x.stride(2) == 1 or x.stride(1) == 1"),
    "scan float64 input": (lambda: scan_call(dtype=torch.float64), "input dtype"),
    "scan 257 states": (lambda: scan_call(dstate=257), "state dimension <= 256"),
    "scan strided L": (lambda: scan_call(every=2), "u.stride(-1) == 1"),
}
"""Calls the CUDA kernels refuse, and the check that refuses them."""


@pytest.mark.parametrize("call", sorted(REFUSED))
def test_stand_in_kernels_refuse_what_the_cuda_kernels_refuse(call):
    make_call, check = REFUSED[call]
    with pytest.raises(RuntimeError, match=re.escape(check)):
        make_call()


FALLBACKS = {
    "causal-conv1d not installed": (
        {"causal_conv1d": False},
        None,
        "lacks causal_conv1d_fwd_function, causal_conv1d_bwd_function: install causal-conv1d",
    ),
    "selective_scan_cuda None": ({}, "selective_scan_cuda", "lacks selective_scan_cuda: reinstall"),
    "selective_scan_cuda not importable": (
        {"scan_kernel": False},
        None,
        "does not import: ModuleNotFoundError",
    ),
}
"""Load options, a kernel set to None after loading (mamba-ssm's head imports
``selective_scan_cuda`` optionally), and what the WARNING must say."""


@pytest.mark.parametrize("cause", sorted(FALLBACKS))
def test_missing_kernel_falls_back_to_pure_scan_with_a_warning(cause, load, monkeypatch, caplog):
    options, none_name, reason = FALLBACKS[cause]

    def import_interface():
        interface = load(**options)
        if none_name:
            setattr(interface, none_name, None)
        return interface

    monkeypatch.setattr(mamba_kernels, "_import_interface", import_interface)
    block, (x,) = block_and_inputs()
    with caplog.at_level(logging.WARNING, logger=mamba_kernels.__name__):
        out, _ = run(block, (x,), monkeypatch, FUSED)
    assert mamba_kernels.fused_kernels().reason in caplog.text
    assert reason in caplog.text
    with monkeypatch.context() as patch:
        patch.setattr(mamba, "_FUSED_DEVICE_TYPES", FUSED)
        assert mamba.mamba_kernel(x.device)[0] == "scan"
    torch.testing.assert_close(out, run(block, (x,), monkeypatch, PURE)[0], atol=0, rtol=0)


def test_fused_call_receives_xz_with_unit_stride_so_upstream_copies_nothing(
    fused_calls, monkeypatch
):
    model, inputs = model_and_inputs()
    run(model, inputs, monkeypatch, FUSED)
    assert fused_calls and all(xz.stride(-1) == 1 for xz in fused_calls)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_model_on_the_cpu_scan_matches_eager_with_gradients():
    """torch.compile of a small Mamba model (1 layer, 4 tokens: compile time grows with both)."""
    torch.manual_seed(0)
    model = MambaVelocity(MambaConfig(hidden_dim=16, num_layers=1, num_tokens=4), data_dim=64)
    x, t = torch.randn(2, 64), torch.rand(2)
    torch._dynamo.reset()
    compiled = torch.compile(model)
    got = compiled(x, t)
    got_grads = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    want = model(x, t)
    want_grads = torch.autograd.grad(want.square().sum(), list(model.parameters()))
    torch._dynamo.reset()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


NEWEST = {"mamba-ssm": "2.3.2.post1", "causal-conv1d": "1.7.0"}
"""Installed versions whose kernels start at sm_75."""


def test_a_gpu_older_than_the_kernels_runs_the_scan_and_says_why(fused_calls, monkeypatch, caplog):
    """A V100 (compute capability 7.0): mamba-ssm >= 2.3 has no code for it, so no launch."""
    mamba._fused_call.cache_clear()
    monkeypatch.setattr(mamba_kernels, "device_capability", lambda device: (7, 0))
    monkeypatch.setattr(mamba_kernels, "package_versions", lambda: NEWEST)
    monkeypatch.setattr(mamba, "_FUSED_DEVICE_TYPES", FUSED)
    with caplog.at_level(logging.WARNING, logger=mamba.__name__):
        kernel, reason = mamba.mamba_kernel(torch.device("cpu"))
        block, (x,) = block_and_inputs()
        block(x)
    assert kernel == "scan" and "compute capability 7.0" in reason and "7.5 and newer" in reason
    assert "mamba-ssm 2.3.2.post1 and causal-conv1d 1.7.0 ship" in reason
    assert reason in caplog.text and not fused_calls  # neither probed nor called


@pytest.mark.parametrize(
    "versions,cuda,refused",
    [
        ({"mamba-ssm": "2.3.1", "causal-conv1d": "1.6.1"}, "12.9", None),
        ({"mamba-ssm": "2.3.1", "causal-conv1d": "1.7.0"}, "12.9", "causal-conv1d 1.7.0 ship"),
        ({"mamba-ssm": "2.3.1", "causal-conv1d": "1.6.1"}, "13.0", "built for CUDA 13"),
    ],
)
def test_older_builds_may_carry_code_for_a_v100_and_are_left_to_the_probe(
    monkeypatch, versions, cuda, refused
):
    """mamba-ssm <= 2.3.1 and causal-conv1d <= 1.6.x built with nvcc <= 12.9 compile sm_70."""
    monkeypatch.setattr(mamba_kernels, "device_capability", lambda device: (7, 0))
    monkeypatch.setattr(mamba_kernels, "package_versions", lambda: versions)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    problem = mamba_kernels.capability_problem(torch.device("cpu"))
    assert problem is None if refused is None else refused in problem


def test_a_fused_call_that_fails_its_probe_runs_the_scan(load, monkeypatch, caplog):
    """Kernels that import but cannot launch (a build without this GPU's code)."""
    interface = load()

    def no_kernel_image(*args, **kwargs):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    monkeypatch.setattr(interface, "mamba_inner_fn", no_kernel_image)
    monkeypatch.setattr(mamba_kernels, "_import_interface", lambda: interface)
    monkeypatch.setattr(mamba, "_FUSED_DEVICE_TYPES", FUSED)
    block, (x,) = block_and_inputs()
    with caplog.at_level(logging.WARNING, logger=mamba.__name__):
        out = block(x)  # the first input decides, and runs the scan
        kernel, reason = mamba.mamba_kernel(x.device)
    assert kernel == "scan" and "failed its probe" in reason and "no kernel image" in reason
    assert caplog.text.count("failed its probe") == 1  # decided once per device
    torch.testing.assert_close(out, run(block, (x,), monkeypatch, PURE)[0], atol=0, rtol=0)


def test_probing_leaves_the_random_stream_as_it_was(fused_calls, monkeypatch):
    mamba._fused_call.cache_clear()
    monkeypatch.setattr(mamba, "_FUSED_DEVICE_TYPES", FUSED)
    torch.manual_seed(0)
    assert mamba.fused_call(torch.device("cpu")).available and len(fused_calls) == 1
    probed = torch.rand(4)
    torch.manual_seed(0)
    torch.testing.assert_close(probed, torch.rand(4), atol=0, rtol=0)


@pytest.fixture
def tiny_study():
    """The tiny test config's data and a train config of 2 steps."""
    from fmscale.config import TrainConfig, from_section
    from fmscale.configfiles import read_yaml
    from fmscale.data import DataConfig, build_dataset

    settings = read_yaml(Path(__file__).with_name("tiny_config.yaml"))
    data = build_dataset(DataConfig.from_dict(settings["data"]), 300)
    return data, lambda **kw: from_section(TrainConfig, {**settings["train"], **kw}, "train")


def test_a_cell_on_an_old_gpu_records_the_scan_and_require_fused_fails_it(
    fused_calls, monkeypatch, tiny_study, tmp_path
):
    from fmscale.errors import RequiresFused
    from fmscale.train.cell import train_cell
    from fmscale.train.loop import CellSpec

    data, cfg = tiny_study
    mamba._fused_call.cache_clear()
    monkeypatch.setattr(mamba_kernels, "device_capability", lambda device: (7, 0))
    monkeypatch.setattr(mamba_kernels, "package_versions", lambda: NEWEST)
    monkeypatch.setattr(mamba, "_FUSED_DEVICE_TYPES", FUSED)
    spec = CellSpec("mamba", "tiny", 100, 0)
    cell = train_cell(spec, data, cfg(steps=2), tmp_path / "scan", progress=False)
    assert cell["mamba_kernel"] == "scan"
    assert "compute capability 7.0" in cell["mamba_kernel_reason"]
    with pytest.raises(RequiresFused, match="compute capability 7.0.*require_fused: false"):
        train_cell(spec, data, cfg(steps=2, require_fused=True), tmp_path / "req", progress=False)
    # On a GPU the kernels have code for, the same cell runs them, and require_fused lets it.
    mamba._fused_call.cache_clear()
    monkeypatch.setattr(mamba_kernels, "device_capability", lambda device: (8, 0))
    cell = train_cell(spec, data, cfg(steps=2, require_fused=True), tmp_path / "fused")
    assert (cell["mamba_kernel"], cell["mamba_kernel_reason"]) == ("fused", "")
    assert len(fused_calls) > 1  # the probe and the training steps

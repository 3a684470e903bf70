"""mamba-ssm's own Python on CPU, for the contract tests of ``test_mamba_contract.py``.

``fetch_sources`` downloads a pinned mamba-ssm sdist (once, into a cache) and keeps the two files
the fused call needs. ``load_interface`` runs ``mamba_ssm/ops/selective_scan_interface.py`` in a
bare ``mamba_ssm`` package (the real ``__init__`` imports triton and transformers) against CPU
stand-ins for the CUDA extensions. The stand-ins compute with references (upstream's own
``selective_scan_ref``, a depthwise ``F.conv1d``) and raise where the kernels' TORCH_CHECKs do
(``csrc/selective_scan/selective_scan.cpp`` of mamba-ssm, ``csrc/causal_conv1d.cpp`` and
``causal_conv1d/cpp_functions.py`` of causal-conv1d 1.5.2), so a dtype or layout that the GPU
would refuse fails here too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

INTERFACE_FILE = "mamba_ssm/ops/selective_scan_interface.py"
SOURCE_FILES = (INTERFACE_FILE, "mamba_ssm/utils/torch.py")
"""What the contract tests run of an sdist: the interface and the custom_fwd/bwd it imports."""
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
"""Input (and, for causal-conv1d, weight) dtypes the kernels dispatch on."""


class SourcesUnavailable(RuntimeError):
    """The sdist could not be downloaded (no network, no index)."""


def fetch_sources(version: str, cache: Path) -> Path:
    """``SOURCE_FILES`` of mamba-ssm ``version`` under ``cache/mamba_ssm-<version>``, downloaded
    with pip on the first call (seconds: no build, no dependencies)."""
    root = cache / f"mamba_ssm-{version}"
    if all((root / name).is_file() for name in SOURCE_FILES):
        return root
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--retries", "1"]
    flags = ["--no-deps", "--no-binary", ":all:", "--no-build-isolation", "-d", str(cache)]
    command = [*pip, *flags, f"mamba-ssm=={version}"]
    env = {**os.environ, "MAMBA_SKIP_CUDA_BUILD": "TRUE"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    sdist = cache / f"mamba_ssm-{version}.tar.gz"
    if done.returncode != 0 or not sdist.is_file():
        last_line = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SourcesUnavailable(f"pip download mamba-ssm=={version} failed: {last_line}")
    with tarfile.open(sdist) as tar:
        for name in SOURCE_FILES:
            member = tar.getmember(f"mamba_ssm-{version}/{name}")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(tar.extractfile(member).read())
    return root


def check(condition: bool, message: str) -> None:
    """TORCH_CHECK: the kernels raise a RuntimeError."""
    if not condition:
        raise RuntimeError(f"stand-in kernel check failed: {message}")


def check_shape(tensor: torch.Tensor, *shape: int, name: str) -> None:
    check(
        tuple(tensor.shape) == shape, f"{name} must have shape {shape}, not {tuple(tensor.shape)}"
    )


def like(template: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` in a ``torch.empty_like(template)``: the layout the kernels allocate."""
    return torch.empty_like(template).copy_(values)


def input_grads(
    fn: Callable[..., torch.Tensor], inputs: list, dout: torch.Tensor
) -> tuple[list, torch.Tensor]:
    """Gradients of ``fn(*inputs)`` against ``dout`` by autograd on detached copies (None for
    None inputs), and the output."""
    leaves = [None if x is None else x.detach().requires_grad_() for x in inputs]
    with torch.enable_grad():  # a custom Function's backward runs without grad mode
        out = fn(*leaves)
    wanted = [x for x in leaves if x is not None]
    grads = iter(torch.autograd.grad(out, wanted, dout))
    return [None if x is None else next(grads) for x in leaves], out.detach()


class SelectiveScanCPU(ModuleType):
    """Stand-in for the ``selective_scan_cuda`` extension: ``fwd`` and ``bwd`` with its checks,
    computed by the loaded interface's ``selective_scan_ref`` (set as ``reference`` once the
    interface is loaded, since the interface imports this module)."""

    def __init__(self) -> None:
        super().__init__("selective_scan_cuda")
        self.reference: Callable[..., torch.Tensor] | None = None

    def check_inputs(self, u, delta, A, B, C, D, z, delta_bias) -> None:
        """selective_scan_fwd's checks for real A (the only case fmscale uses)."""
        input_type = u.dtype
        check(input_type in INPUT_DTYPES, f"input dtype {input_type}")
        check(A.dtype == torch.float32, f"weight (A) dtype {A.dtype}: real A must be float32")
        check(delta.dtype == input_type, "delta dtype must match u")
        for name, BC in (("B", B), ("C", C)):
            variable = BC.dim() >= 3
            check(BC.dtype == (input_type if variable else A.dtype), f"{name} dtype {BC.dtype}")
        check(u.stride(-1) == 1 or u.size(-1) == 1, "u.stride(-1) == 1")
        check(delta.stride(-1) == 1 or delta.size(-1) == 1, "delta.stride(-1) == 1")
        batch, dim, seqlen = u.shape
        dstate = A.size(1)
        check(dstate <= 256, "selective_scan only supports state dimension <= 256")
        check_shape(delta, batch, dim, seqlen, name="delta")
        check_shape(A, dim, dstate, name="A")
        for name, BC in (("B", B), ("C", C)):
            if BC.dim() >= 3:
                check_shape(BC, batch, B.size(1), dstate, seqlen, name=name)
                check(BC.stride(-1) == 1 or BC.size(-1) == 1, f"{name}.stride(-1) == 1")
            else:
                check_shape(BC, dim, dstate, name=name)
        for name, vector in (("D", D), ("delta_bias", delta_bias)):
            if vector is not None:
                check(vector.dtype == torch.float32, f"{name} must be float32")
                check(vector.stride(-1) == 1 or vector.size(-1) == 1, f"{name}.stride(-1) == 1")
                check_shape(vector, dim, name=name)
        if z is not None:
            check(z.dtype == input_type, "z dtype must match u")
            check(z.stride(-1) == 1 or z.size(-1) == 1, "z.stride(-1) == 1")
            check_shape(z, batch, dim, seqlen, name="z")

    def fwd(self, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        """``[out, x]`` (+ ``out_z`` with z); of x, the scan intermediates, only the last chunk's
        final state ``x[:, :, -1, 1::2]`` (what ``SelectiveScanFn`` reads) is filled, the rest
        is NaN."""
        self.check_inputs(u, delta, A, B, C, D, z, delta_bias)
        batch, dim, seqlen = u.shape
        n_chunks = (seqlen + 2047) // 2048
        out, last_state = self.reference(
            u, delta, A, B, C, D, None, delta_bias, delta_softplus, return_last_state=True
        )
        x = torch.full(
            (batch, dim, n_chunks, 2 * A.size(1)), float("nan"), dtype=A.dtype, device=u.device
        )
        x[:, :, -1, 1::2] = last_state
        result = [like(delta, out), x]
        if z is not None:
            out_z = self.reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
            result.append(like(z, out_z))
        return result

    def bwd(
        self, u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, delta_softplus, recompute_out_z
    ):
        """``[du, ddelta, dA, dB, dC, dD, ddelta_bias]`` (+ ``dz`` with z, + ``out_z`` when
        recomputed), by autograd through ``selective_scan_ref``; ``dz``, when given, is
        written in place as the kernel does."""
        self.check_inputs(u, delta, A, B, C, D, z, delta_bias)
        check(dout.dtype == u.dtype, "dout dtype must match u")
        check(dout.stride(-1) == 1 or dout.size(-1) == 1, "dout.stride(-1) == 1")
        check_shape(dout, *u.shape, name="dout")
        batch, dim, seqlen = u.shape
        n_chunks = (seqlen + 2047) // 2048
        check(n_chunks == 1 or x is not None, "x is needed for more than one chunk")
        if x is not None:
            check(x.dtype == A.dtype and x.is_contiguous(), "x: weight dtype, contiguous")
            check_shape(x, batch, dim, n_chunks, 2 * A.size(1), name="x")
        if z is not None:
            check(out is not None and out.dtype == u.dtype, "out (input dtype) is needed with z")
            check_shape(out, *u.shape, name="out")
        if dz is not None:
            check(dz.dtype == u.dtype and dz.stride(-1) == 1, "dz: input dtype, stride(-1) 1")
            check_shape(dz, *u.shape, name="dz")

        def scan(u, delta, A, B, C, D, z, delta_bias):
            return self.reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

        inputs = [u, delta, A, B, C, D, z, delta_bias]
        (du, ddelta, dA, dB, dC, dD, dz_, ddelta_bias), out_z = input_grads(scan, inputs, dout)
        result = [like(u, du), like(delta, ddelta), dA, dB, dC, dD, ddelta_bias]
        if z is not None:
            result.append(like(z, dz_) if dz is None else dz.copy_(dz_))
        if recompute_out_z:
            result.append(like(out, out_z))
        return result


def causal_conv1d_ref(x, weight, bias=None, activation=None):
    """Depthwise causal conv of x [b, d, L] by weight [d, width], optional SiLU, in float32 as
    the kernel accumulates."""
    width, bias = weight.size(-1), None if bias is None else bias.float()
    out = F.conv1d(
        x.float(), weight.float().unsqueeze(1), bias, padding=width - 1, groups=x.size(1)
    )
    out = out[..., : x.size(-1)]
    return (F.silu(out) if activation in ("silu", "swish") else out).to(x.dtype)


def check_conv_inputs(x, weight, bias) -> bool:
    """causal_conv1d_fwd/bwd's checks on x, weight and bias; whether x is channel-last."""
    check(x.dtype in INPUT_DTYPES, f"input dtype {x.dtype}")
    check(weight.dtype in INPUT_DTYPES, f"weight dtype {weight.dtype}")
    batch, dim, _ = x.shape
    width = weight.size(-1)
    check_shape(weight, dim, width, name="weight")
    check(x.stride(2) == 1 or x.stride(1) == 1, "x.stride(2) == 1 or x.stride(1) == 1")
    channel_last = x.stride(1) == 1 and x.stride(2) > 1
    if channel_last:
        check(dim % 8 == 0, "channel-last: dim divisible by 8")
        check(x.stride(2) % 8 == 0 and x.stride(0) % 8 == 0, "channel-last: strides multiple of 8")
    check(2 <= width <= 4, "causal_conv1d only supports width between 2 and 4")
    if bias is not None:
        check(bias.dtype == weight.dtype, "bias dtype must match weight")
        check(bias.stride(-1) == 1, "bias.stride(-1) == 1")
        check_shape(bias, dim, name="bias")
    return channel_last


def check_no_states(seq_idx, *states) -> None:
    """seq_idx and initial/final states: channel-last only upstream, not in these stand-ins."""
    check(seq_idx is None and all(s is None for s in states), "stand-in: no seq_idx or states")


def causal_conv1d_fwd_function(
    x, weight, bias, seq_idx, initial_states, final_states_out, silu_activation
):
    """causal-conv1d 1.5.2's ``cpp_functions.causal_conv1d_fwd_function`` on CPU."""
    check_conv_inputs(x, weight, bias)
    check_no_states(seq_idx, initial_states, final_states_out)
    return like(x, causal_conv1d_ref(x, weight, bias, "silu" if silu_activation else None))


def causal_conv1d_bwd_function(
    x,
    weight,
    bias,
    dout,
    seq_idx,
    initial_states,
    dfinal_states,
    dx,
    return_dinitial_states,
    silu_activation,
):
    """causal-conv1d 1.5.2's ``causal_conv1d_bwd_function`` on CPU: ``(dx, dweight, dbias,
    None)``, writing into ``dx`` when one is given (``MambaInnerFn`` passes a view of dxz)."""
    channel_last = check_conv_inputs(x, weight, bias)
    check_no_states(seq_idx, initial_states, dfinal_states)
    check(not return_dinitial_states, "stand-in: no dinitial_states")
    check_shape(dout, *x.shape, name="dout")
    if dx is None:
        dx = torch.empty_like(x)
    check(dx.dtype == x.dtype, "dx dtype must match x")
    check_shape(dx, *x.shape, name="dx")
    check(dx.stride(1 if channel_last else 2) == 1, "dx in x's layout")
    activation = "silu" if silu_activation else None
    (dx_, dweight, dbias), _ = input_grads(
        lambda x, w, b: causal_conv1d_ref(x, w, b, activation), [x, weight, bias], dout
    )
    dx.copy_(dx_)
    return dx, dweight.type_as(weight), None if bias is None else dbias.type_as(bias), None


def causal_conv1d_update_function(*args, **kwargs):
    """Imported by the interface, never called by ``mamba_inner_fn``."""
    raise NotImplementedError("causal_conv1d_update has no CPU stand-in")


class TorchAutocastOnCpu(ModuleType):
    """``torch`` for the interface's globals, except that the autocast queries of
    ``MambaInnerFn.forward`` (CUDA's, by default) answer for CPU: with it, CPU autocast casts
    the projection weights to the autocast dtype as CUDA autocast does on a GPU."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def is_autocast_enabled(device_type: str = "cpu") -> bool:
        return torch.is_autocast_enabled(device_type)

    @staticmethod
    def get_autocast_gpu_dtype() -> torch.dtype:
        return torch.get_autocast_dtype("cpu")


def module(name: str, **attributes) -> ModuleType:
    """A bare module with ``attributes``, importable as a package."""
    made = ModuleType(name)
    made.__path__ = []
    made.__dict__.update(attributes)
    return made


def load_file(name: str, path: Path, setitem: Callable[[str, ModuleType], None]) -> ModuleType:
    """Execute the file at ``path`` as module ``name``, registered through ``setitem``."""
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    setitem(name, loaded)
    spec.loader.exec_module(loaded)
    return loaded


def load_interface(
    root: Path,
    setitem: Callable[[str, ModuleType | None], None],
    *,
    scan_kernel: bool = True,
    causal_conv1d: bool = True,
) -> ModuleType:
    """``selective_scan_interface`` of the sources under ``root`` with the CPU stand-ins, every
    module registered in ``sys.modules`` through ``setitem`` (``monkeypatch.setitem`` undoes
    it). Without ``causal_conv1d`` (or ``scan_kernel``), those modules are made unimportable
    (None in sys.modules),
    as when the package is not installed: upstream's own ``try``/``except`` then sets
    ``causal_conv1d_*`` to None (and ``import selective_scan_cuda`` raises)."""
    stubs = {name: {} for name in ("mamba_ssm", "mamba_ssm.utils", "mamba_ssm.ops")}
    stubs["mamba_ssm.ops.triton"] = {}
    stubs["mamba_ssm.ops.triton.layer_norm"] = {"_layer_norm_fwd": None}  # RMS-norm options only
    stubs["causal_conv1d"] = {"causal_conv1d_fn": causal_conv1d_ref}
    stubs["causal_conv1d.cpp_functions"] = {
        "causal_conv1d_fwd_function": causal_conv1d_fwd_function,
        "causal_conv1d_bwd_function": causal_conv1d_bwd_function,
        "causal_conv1d_update_function": causal_conv1d_update_function,
    }
    for name, attributes in stubs.items():
        absent = name.startswith("causal_conv1d") and not causal_conv1d
        setitem(name, None if absent else module(name, **attributes))
    load_file("mamba_ssm.utils.torch", root / "mamba_ssm/utils/torch.py", setitem)
    kernel = SelectiveScanCPU() if scan_kernel else None
    setitem("selective_scan_cuda", kernel)
    interface = load_file("mamba_ssm.ops.selective_scan_interface", root / INTERFACE_FILE, setitem)
    if kernel is not None:
        kernel.reference = interface.selective_scan_ref
    return interface

"""Forms of the pure-PyTorch selective scan, timed forward + backward at the models' shapes.

    python benchmarks/mamba_scan.py

For each Mamba scale of the packaged table (d_inner = expand x hidden_dim, L = 16, d_state 16)
and each batch: ms per forward + backward of every form in ``fmscale.models.scan.SCAN_FORMS``
and of ``ref`` (mamba_ssm's ``selective_scan_ref``: einsum, then a loop indexing [:, :, i]),
interleaved so a noisy machine hits all forms alike; the largest error of each form's output
and input gradients against a float64 loop; and one training step of the whole Mamba model with
each of ``--model-forms``. Forms whose work tensors would exceed ``--max-gib`` are skipped.
Writes ``mamba_scan.csv`` / ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import RESULTS_DIR, machine_lines, markdown_table, write_report

import fmscale.models.mamba as mamba_module
from fmscale.models import create_model, get_scaled_config
from fmscale.models.scan import SCAN_FORMS, scan_loop, selective_scan


def scan_ref(u, delta, A, B, C, D) -> torch.Tensor:
    """mamba_ssm's selective_scan_ref (layout [b, L, d]): einsum, then index one step at a time."""
    dA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))
    dBu = torch.einsum("bld,bln,bld->bldn", delta, B, u)
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    ys = []
    for i in range(u.shape[1]):
        h = dA[:, i] * h + dBu[:, i]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, i]))
    return torch.stack(ys, dim=1) + u * D


FORMS: dict[str, Callable[..., torch.Tensor]] = {**SCAN_FORMS, "ref": scan_ref}
WORK_TENSORS = {"lxl": 6 * 16, "parallel": 12, "ref": 6, "loop": 6, "blocked": 2}
"""Rough peak of live [b, L, d, n] tensors per form (lxl holds [b, d, n, L, L] ones)."""


def scan_inputs(batch: int, d_inner: int, dtype=torch.float32, L: int = 16, n: int = 16):
    """Inputs of the shapes and ranges a MambaBlock feeds its scan."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(batch, L, d_inner, generator=gen, dtype=dtype)
    delta = F.softplus(torch.randn(batch, L, d_inner, generator=gen, dtype=dtype) - 2)
    A = -torch.arange(1, n + 1, dtype=dtype).repeat(d_inner, 1) * torch.exp(
        0.3 * torch.randn(d_inner, n, generator=gen, dtype=dtype)
    )
    B = torch.randn(batch, L, n, generator=gen, dtype=dtype)
    C = torch.randn(batch, L, n, generator=gen, dtype=dtype)
    D = torch.randn(d_inner, generator=gen, dtype=dtype)
    return [x.requires_grad_() for x in (u, delta, A, B, C, D)]


def max_rel_error(form: Callable, batch: int, d_inner: int) -> float:
    """Largest error of output and gradients vs a float64 loop, relative to each tensor's max."""
    args64 = scan_inputs(batch, d_inner, torch.float64)
    gy = torch.randn(batch, 16, d_inner, dtype=torch.float64)
    y64 = scan_loop(*args64)
    want = [y64.detach(), *torch.autograd.grad(y64, args64, gy)]
    args = [x.detach().float().requires_grad_() for x in args64]
    y = form(*args)
    got = [y.detach(), *torch.autograd.grad(y, args, gy.float())]
    return max(
        float((g.double() - w).abs().max() / w.abs().max()) for g, w in zip(got, want, strict=True)
    )


def time_forms(forms: dict, batch: int, d_inner: int, repeat: int) -> dict[str, float]:
    """Median seconds of forward + backward per form, forms interleaved in every round."""
    args = scan_inputs(batch, d_inner)
    gy = torch.randn(batch, 16, d_inner)

    def run(form: Callable) -> float:
        start = time.perf_counter()
        torch.autograd.grad(form(*args), args, gy)
        return time.perf_counter() - start

    for form in forms.values():
        run(form)
    times = {name: [] for name in forms}
    for _ in range(repeat):
        for name, form in forms.items():
            times[name].append(run(form))
    return {name: statistics.median(t) for name, t in times.items()}


def model_step_seconds(scale: str, batch: int, forms: list[str], repeat: int) -> dict[str, float]:
    """Median seconds of one training step of the Mamba model with each scan form."""
    model = create_model("mamba", scale)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x1 = torch.randn(batch, 1024)

    def step(form: str) -> float:
        mamba_module.selective_scan = functools.partial(selective_scan, form=form)
        start = time.perf_counter()
        x0, t = torch.randn_like(x1), torch.rand(batch)
        loss = F.mse_loss(model((1 - t[:, None]) * x0 + t[:, None] * x1, t), x1 - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    try:
        for form in forms:
            step(form)
        times = {form: [] for form in forms}
        for _ in range(repeat):
            for form in forms:
                times[form].append(step(form))
    finally:
        mamba_module.selective_scan = selective_scan
    return {form: statistics.median(t) for form, t in times.items()}


def profile_form(form: str, batch: int, d_inner: int) -> str:
    """torch.profiler's op table (self CPU time) for one forward + backward of ``form``."""
    from torch.profiler import profile

    args = scan_inputs(batch, d_inner)
    gy = torch.randn(batch, 16, d_inner)
    torch.autograd.grad(FORMS[form](*args), args, gy)
    with profile() as prof:
        torch.autograd.grad(FORMS[form](*args), args, gy)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def report(rows: list[dict], stem: Path, header: list[str], title: str) -> None:
    """Print ``rows`` as Markdown and write them to ``stem``.csv / .md."""
    table = markdown_table(rows)
    print(f"\n{title}\n\n{table}")
    write_report(stem, title, header, table, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="tiny,small,base")
    parser.add_argument("--batches", default="256,1024")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--max-gib", type=float, default=4.0)
    parser.add_argument("--model-forms", default="blocked,loop")
    parser.add_argument("--model-batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--profile", metavar="FORM:BATCH:D_INNER", help="only profile one form")
    args = parser.parse_args()
    if args.profile:
        form, batch, d_inner = args.profile.split(":")
        print(profile_form(form, int(batch), int(d_inner)))
        return
    header = machine_lines(torch.device("cpu"))
    print("\n".join(header))
    rows = []
    for scale in args.scales.split(","):
        row = get_scaled_config("mamba", scale)
        d_inner = row.get("expand", 2) * row["hidden_dim"]
        for batch in map(int, args.batches.split(",")):
            gib = {n: k * batch * 16 * d_inner * 16 * 4 / 2**30 for n, k in WORK_TENSORS.items()}
            forms = {n: f for n, f in FORMS.items() if gib[n] <= args.max_gib}
            seconds = time_forms(forms, batch, d_inner, args.repeat)
            for name in FORMS:
                ran = name in forms
                rows.append(
                    {
                        "scale": scale,
                        "batch": batch,
                        "d_inner": d_inner,
                        "form": name,
                        "ms": round(seconds[name] * 1000, 2) if ran else None,
                        "speedup_vs_loop": round(seconds["loop"] / seconds[name], 2)
                        if ran
                        else None,
                        "speedup_vs_ref": round(seconds["ref"] / seconds[name], 2)
                        if ran and "ref" in seconds
                        else None,
                        "max_rel_error": f"{max_rel_error(FORMS[name], 4, d_inner):.1e}",
                        "note": "" if ran else f"skipped: ~{gib[name]:.0f} GiB of work tensors",
                    }
                )
    report(rows, args.out / "mamba_scan", header, "Selective-scan forms, forward + backward")
    steps = []
    for scale in args.scales.split(","):
        forms = args.model_forms.split(",")
        seconds = model_step_seconds(scale, args.model_batch, forms, args.repeat)
        for form in forms:
            steps.append(
                {
                    "scale": scale,
                    "batch": args.model_batch,
                    "form": form,
                    "ms_per_step": round(seconds[form] * 1000, 1),
                    "speedup_vs_loop": round(seconds["loop"] / seconds[form], 2)
                    if "loop" in seconds
                    else None,
                }
            )
    report(steps, args.out / "mamba_step", header, "Mamba training step per scan form")


if __name__ == "__main__":
    main()

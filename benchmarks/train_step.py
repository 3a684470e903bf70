"""CPU/GPU time of one training step (forward + backward + AdamW) per arch x scale.

    python benchmarks/train_step.py --scales small --batch 256

Prints a Markdown table: ms/step (median of --repeat timed steps after --warmup steps) and
samples/s. Archs are interleaved per repeat so a noisy machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fmscale.models import ARCHITECTURES, create_model


def make_step(arch: str, scale: str, batch: int, data_dim: int, device: str):
    model = create_model(arch, scale, data_dim=data_dim).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x1 = torch.randn(batch, data_dim, device=device)

    def step() -> None:
        x0 = torch.randn_like(x1)
        t = torch.rand(batch, device=device)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = ((model(xt, t) - (x1 - x0)) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return model, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    parser.add_argument("--scales", default="tiny,small,base")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--data-dim", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cells = [(a, s) for a in args.archs.split(",") for s in args.scales.split(",")]
    steps = {}
    for cell in cells:
        model, step = make_step(*cell, args.batch, args.data_dim, args.device)
        for _ in range(args.warmup):
            step()
        steps[cell] = (sum(p.numel() for p in model.parameters()), step)
    times = {cell: [] for cell in cells}
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for _ in range(args.repeat):
        for cell in cells:
            sync()
            start = time.perf_counter()
            steps[cell][1]()
            sync()
            times[cell].append(time.perf_counter() - start)
    print(
        f"device={args.device} threads={torch.get_num_threads()} batch={args.batch} D={args.data_dim}\n"
    )
    print("| arch | scale | params | ms/step | samples/s |\n|---|---|---:|---:|---:|")
    for cell in cells:
        ms = statistics.median(times[cell]) * 1000
        print(
            f"| {cell[0]} | {cell[1]} | {steps[cell][0]:,} | {ms:.1f} | {args.batch / ms * 1000:,.0f} |"
        )


if __name__ == "__main__":
    main()

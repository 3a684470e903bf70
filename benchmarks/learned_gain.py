"""What a learned per-dimension gain a(t) learned: its rank over t and what in the data it follows.

    python benchmarks/learned_gain.py [--parameterisation skip_dim] [--arch mlp] [--scale small]
        [--batch 256] [--steps 1200]

Trains one cell of the CPU table at n_train ``--n`` (the default synthetic data), then reads
its gain on 100 times t in [0, 0.99]: the mean over dimensions at a few t, the spread across
dimensions, the share of the across-dimension deviation in the top singular directions, and the
correlation of the leading deviation direction with per-dimension statistics of the train pool:
the share of each dimension's variance in the top-k principal directions, and (synthetic data)
its noise variance. A probe for choosing a cheaper gain, not a quality or speed benchmark.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _cells import add_cell_arguments, budget, synthetic_data

from fmscale.evaluate import load_cell
from fmscale.metrics import variance_share
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec

TIMES = torch.linspace(0.0, 0.99, 100)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="mlp")
    p.add_argument("--scale", default="small")
    p.add_argument("--table", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    add_cell_arguments(p)
    p.set_defaults(parameterisation="skip_dim", batch=256)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    data, _ = synthetic_data(args.n, args.n_modes, args.latent_dim)
    spec = CellSpec(args.arch, args.scale, args.n, args.seed, args.table)
    with tempfile.TemporaryDirectory() as tmp:
        train_cell(spec, data, budget(args, trajectory_points=0), Path(tmp), None, False)
        field, _ = load_cell(tmp)
    if not hasattr(field, "gain"):
        raise SystemExit(f"--parameterisation {args.parameterisation} learns no gain")
    with torch.no_grad():
        gain = field.gain(TIMES).double()
    if gain.shape[1] == 1:
        raise SystemExit(
            f"--parameterisation {args.parameterisation} learns one gain for every dimension; "
            "use skip_dim or skip_lowrank"
        )
    deviation = gain - gain.mean(1, keepdim=True)
    _, singular, right = torch.linalg.svd(deviation, full_matrices=False)
    direction = right[0]
    at = [0, 50, 90, 99]
    print(f"{args.arch}/{args.scale} under {args.parameterisation}, {args.steps} x {args.batch}")
    print("t:", [round(float(TIMES[i]), 2) for i in at])
    print("mean gain over dimensions:", [round(float(gain[i].mean()), 3) for i in at])
    print("sd across dimensions:", [round(float(gain[i].std()), 3) for i in at])
    energy = (singular**2).cumsum(0) / (singular**2).sum()
    print(
        "deviation energy in the top 1 / 2 / 4 / 8 directions:",
        energy[[0, 1, 3, 7]].round(decimals=3).tolist(),
    )
    stats = {f"share in top-{k} PCs": variance_share(data.train_pool, k) for k in (8, 16, 32)}
    if data.mixture is not None:
        stats["noise variance"] = data.mixture.noise_std**2 / data.std.double() ** 2
    for name, values in stats.items():
        r = abs(np.corrcoef(direction.numpy(), values.numpy())[0, 1])
        print(f"|corr(leading deviation direction, {name})| = {r:.3f}")


if __name__ == "__main__":
    main()

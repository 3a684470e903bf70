"""Every arch under every flow parameterisation, scored against the reference rows.

    python benchmarks/parameterisation.py [--archs mlp,unet] [--budgets 300,1000] [--n 256,4096]
    python benchmarks/parameterisation.py --scales tiny,small,base --parameterisations skip_scalar

The default synthetic data (D = 1024, 8 modes on a 16-dim subspace; 500 validation and 1000
test rows), each arch at each of ``--scales`` (small), trained for each budget (steps of batch
``--batch``) on the first n rows under each parameterisation, then sampled (``--samples``
samples, midpoint, ``--nfe``) from the EMA weights. Cells run interleaved: the
parameterisations of one (budget, n, arch) follow each other, so a noisy machine hits them
alike. Prints and writes, after every cell, val_loss_ratio, variance_ratio, precision_pca,
mmd2_pca, mode_kl and modes_covered beside the reference rows (real_holdout, gaussian_fit,
memoriser) to ``<--name>.csv`` / ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
from _common import RESULTS_DIR, comma_list, machine_lines, markdown_table, write_report

from fmscale.config import PARAMETERISATIONS, DataConfig, EvalConfig, TrainConfig
from fmscale.data import build_dataset
from fmscale.evaluate import evaluate_cell, reference_rows
from fmscale.metrics import pca_basis
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec

METRICS = ["val_loss_ratio", "variance_ratio", "precision_pca", "mmd2_pca", "mode_kl"]
COLUMNS = {
    "budget": ("budget", "{}"),
    "n": ("n", "{}"),
    "arch": ("arch", "{}"),
    "scale": ("scale", "{}"),
    "parameterisation": ("parameterisation", "{}"),
    "params": ("n_params", "{:,}"),
    "val_loss_ratio": ("val_loss_ratio", "{:.3f}"),
    "gap_ratio": ("gap_ratio", "{:.3f}"),
    "variance_ratio": ("variance_ratio", "{:.3f}"),
    "precision_pca": ("precision_pca", "{:.3f}"),
    "mmd2_pca": ("mmd2_pca", "{:.4f}"),
    "mode_kl": ("mode_kl", "{:.3f}"),
    "modes": ("modes_covered", "{}"),
    "train s": ("train_s", "{:.0f}"),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=comma_list(str), default=["mlp", "unet", "dit", "mamba"])
    p.add_argument("--parameterisations", type=comma_list(str), default=list(PARAMETERISATIONS))
    p.add_argument("--scales", type=comma_list(str), default=["small"])
    p.add_argument("--budgets", type=comma_list(int), default=[300, 1000], help="steps per cell")
    p.add_argument("--n", type=comma_list(int), default=[256, 4096], help="training-set sizes")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--nfe", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--name", default="parameterisation", help="file stem of the report")
    return p.parse_args()


def reference_table(data, sizes: list[int], cfg: EvalConfig, pca) -> list[dict]:
    """The reference rows per n, in the table's columns."""
    rows = []
    for n in sizes:
        for name, metrics in reference_rows(data, n, cfg, pca).items():
            rows.append({"budget": "", "n": n, "arch": f"ref: {name}", "scale": ""})
            rows[-1]["parameterisation"] = ""
            ratio = metrics.get("val_loss_ratio", float("nan"))
            rows[-1].update(n_params=0, val_loss_ratio=ratio, gap_ratio=float("nan"), train_s=0.0)
            rows[-1].update({k: metrics[k] for k in [*METRICS[1:], "modes_covered"]})
    return rows


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    data = build_dataset(DataConfig(n_val=500, n_test=1000), max(args.n))
    eval_cfg = EvalConfig(nfe=(args.nfe,), n_samples=args.samples)
    pca = pca_basis(data.train_pool, eval_cfg.pca_dims)
    refs = reference_table(data, args.n, eval_cfg, pca)
    lines = [
        *machine_lines(torch.device("cpu")),
        f"data: synthetic D = {data.dim}, batch {args.batch}, "
        f"lr {args.lr}, {args.samples} samples at NFE {args.nfe} (midpoint), EMA weights",
    ]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in args.budgets:
            for n in args.n:
                for arch in args.archs:
                    for scale, parameterisation in itertools.product(
                        args.scales, args.parameterisations
                    ):
                        train = TrainConfig(
                            steps=budget,
                            batch_size=args.batch,
                            lr=args.lr,
                            parameterisation=parameterisation,
                            ckpt_every=budget,
                            log_every=max(1, budget // 10),
                            device="cpu",
                        )
                        run = Path(tmp) / f"{arch}_{scale}_{parameterisation}_{n}_{budget}"
                        start = time.perf_counter()
                        cell = train_cell(
                            CellSpec(arch, scale, n, args.seed), data, train, run, None, False
                        )
                        train_s = time.perf_counter() - start
                        result = evaluate_cell(run, data, eval_cfg, "cpu")
                        row = {
                            "budget": budget,
                            "n": n,
                            "arch": arch,
                            "scale": scale,
                            "parameterisation": parameterisation,
                            "n_params": cell["n_params"],
                            "val_loss_ratio": result["val_loss_ratio"],
                            "gap_ratio": result["gap_ratio"],
                            **{k: result["metrics"][k] for k in [*METRICS[1:], "modes_covered"]},
                            "train_s": train_s,
                        }
                        rows.append(row)
                        print(markdown_table([row], COLUMNS).splitlines()[-1], flush=True)
                        table = markdown_table(rows + refs, COLUMNS)
                        write_report(
                            args.out / args.name,
                            "Flow parameterisations per arch",
                            lines,
                            table,
                            rows + refs,
                        )


if __name__ == "__main__":
    main()

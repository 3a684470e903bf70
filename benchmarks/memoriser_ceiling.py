"""The ceiling of memorised_fraction: how much the exact memoriser flow (``empirical_flow``, the
training rows' own velocity field) copies when sampled like a model, at D x n_train x NFE.

A model's memorised_fraction is read against this ceiling (``fmscale analyze``, "Memorisation
against its ceiling"): at few solver steps even the exact flow stops short of its training
rows. Synthetic data, the midpoint solver, 300 samples. Writes ``memoriser_ceiling.csv`` /
``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _common import RESULTS_DIR, markdown_table, run_lines, write_report

from fmscale.config import DataConfig, EvalConfig, SyntheticConfig
from fmscale.data import build_dataset
from fmscale.evaluate import reference_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--n-train", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--nfe", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "memoriser_ceiling")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for dim in args.dims:
        synthetic = SyntheticConfig(dim=dim, n_rows=max(args.n_train) + 3000)
        data = build_dataset(
            DataConfig(n_val=1000, n_test=1000, synthetic=synthetic), max(args.n_train)
        )
        for n in args.n_train:
            for nfe in args.nfe:
                refs = reference_rows(data, n, EvalConfig(nfe=(nfe,), n_samples=300))
                rows.append(
                    {
                        "dim": dim,
                        "n_train": n,
                        "nfe": nfe,
                        "empirical_flow": refs["empirical_flow"]["memorised_fraction"],
                        "memoriser": refs["memoriser"]["memorised_fraction"],
                    }
                )
    columns = {
        "D": ("dim", "{}"),
        "n_train": ("n_train", "{}"),
        "NFE (midpoint)": ("nfe", "{}"),
        "empirical_flow memorised": ("empirical_flow", "{:.3f}"),
        "memoriser": ("memoriser", "{:.3f}"),
    }
    write_report(
        args.out,
        "The memorisation ceiling",
        run_lines(),
        markdown_table(rows, columns),
        rows,
    )


if __name__ == "__main__":
    main()

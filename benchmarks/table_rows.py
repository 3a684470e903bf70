"""Candidate scaling-table rows, trained at one n_train and budget: quality and train time.

    python benchmarks/table_rows.py --rows '[["dit", {"hidden_dim": 40, "num_layers": 2,
        "num_heads": 4, "mlp_ratio": 2.0, "num_tokens": 4}]]' [--n 4096] [--steps 1200]

How the CPU table (src/fmscale/models/scaling_cpu.yaml) was chosen: each row is trained on the
default synthetic data (500 validation and 1000 test rows) for ``--steps`` of batch ``--batch``
with lr ``--lr`` on one torch thread, then scored like a study cell (EMA weights, 300 samples at
NFE 8, midpoint). Prints one line per row: parameters, val_loss_ratio, gap_ratio,
precision_pca, mode_kl, modes_covered, memorised_fraction, variance_ratio and the training
wall time (seconds, one thread; rows run one after another, so compare times within one run).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _cells import add_cell_arguments, budget, synthetic_data

from fmscale.config import EvalConfig
from fmscale.evaluate import evaluate_cell
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", required=True, help="JSON list of [arch, row] pairs")
    p.add_argument("--seed", type=int, default=0, help="the cell's training seed")
    add_cell_arguments(p)
    return p.parse_args()


def one_row_table(arch: str, row: dict, path: Path) -> Path:
    """A table holding one row (scale ``x``) and no ratio band to pass."""
    table = {"ratio": {"target": 4.0, "min": 0.01, "max": 100.0}, "scales": ["x"]}
    path.write_text(yaml.safe_dump(table | {"default_scale": "x", "archs": {arch: {"x": row}}}))
    return path


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    data, floor = synthetic_data(args.n, args.n_modes, args.latent_dim)
    evaluation = EvalConfig(nfe=(8,), n_samples=300)
    train = budget(args)
    print(
        f"n_train {args.n}, {args.steps} steps of batch {args.batch}, lr {args.lr}, seed "
        f"{args.seed}; data {args.n_modes} modes on a {args.latent_dim}-dim latent, floor "
        f"(exact field's val_loss_ratio) {floor:.4f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i, (arch, row) in enumerate(json.loads(args.rows)):
            table = one_row_table(arch, row, Path(tmp) / f"table{i}.yaml")
            run = Path(tmp) / f"run{i}"
            start = time.perf_counter()
            cell = train_cell(
                CellSpec(arch, "x", args.n, args.seed, str(table)), data, train, run, None, False
            )
            seconds = time.perf_counter() - start
            result = evaluate_cell(run, data, evaluation, "cpu")
            m = result["metrics"]
            print(
                f"{arch} {json.dumps(row)} params={cell['n_params']:,} "
                f"val_loss_ratio={result['val_loss_ratio']:.3f} "
                f"gap_ratio={result['gap_ratio']:.3f} "
                f"precision_pca={m['precision_pca']:.3f} mode_kl={m['mode_kl']:.3f} "
                f"modes={m['modes_covered']}/{m['modes_total']} "
                f"memorised={m['memorised_fraction']:.3f} variance_ratio={m['variance_ratio']:.3f} "
                f"train_s={seconds:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

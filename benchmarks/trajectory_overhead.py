"""What the memorisation trajectory costs: one cell per arch trained with and without it.

For each arch, the default study's train settings (``config.yaml``) at ``--scale`` and the
largest n_train, trained in this process with ``trajectory_points: 0`` (off) and with the
config's trajectory settings (on), after a short warm-up run of the arch, in the order on, off,
off, on, ... (``--repeats`` pairs). Reports the fastest run of each (training plus snapshots,
start to end of ``train_cell``) and their ratio to ``trajectory_overhead.csv`` / ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from _common import RESULTS_DIR, machine_lines, markdown_table, write_report

from fmscale.configfiles import read_yaml
from fmscale.data import build_dataset
from fmscale.study import load_study
from fmscale.train.cell import train_cell
from fmscale.train.loop import CellSpec

COLUMNS = {
    "arch": ("arch", "{}"),
    "scale": ("scale", "{}"),
    "n_train": ("n_train", "{}"),
    "steps": ("steps", "{}"),
    "snapshots": ("snapshots", "{}"),
    "off s": ("off_s", "{:.1f}"),
    "on s": ("on_s", "{:.1f}"),
    "on / off": ("ratio", "{:.2f}"),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=Path("config.yaml"))
    p.add_argument("--archs", default="mlp,unet,dit,mamba")
    p.add_argument("--scale", default="small")
    p.add_argument("--steps", type=int, help="replace the config's budget")
    p.add_argument("--repeats", type=int, default=2, help="on/off pairs per arch (default 2)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    return p.parse_args()


def timed_cell(arch: str, scale: str, n_train: int, data, cfg, folder: Path) -> tuple[float, int]:
    """Seconds of one ``train_cell`` and the snapshots it scored."""
    start = time.perf_counter()
    cell = train_cell(CellSpec(arch, scale, n_train, 0), data, cfg, folder, None, False)
    return time.perf_counter() - start, len(cell["trajectory_steps"])


def main() -> None:
    args = parse_args()
    study = load_study(read_yaml(args.config))
    n_train = max(study.grid.n_train)
    data = build_dataset(study.data, n_train)
    train = dataclasses.replace(study.train, device="cpu")
    if args.steps:
        train = dataclasses.replace(train, steps=args.steps, epochs=None)
    off = dataclasses.replace(train, trajectory_points=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            warm_up = dataclasses.replace(train, steps=2, epochs=None)
            timed_cell(arch, args.scale, n_train, data, warm_up, Path(tmp) / f"{arch}_warm")
            runs: dict[str, list[tuple[float, int]]] = {"on": [], "off": []}
            order = ["on", "off", "off", "on"] * args.repeats
            for i, kind in enumerate(order[: 2 * args.repeats]):
                cfg = train if kind == "on" else off
                folder = Path(tmp) / f"{arch}_{kind}{i}"
                runs[kind].append(timed_cell(arch, args.scale, n_train, data, cfg, folder))
            (on_s, snapshots), (off_s, _) = min(runs["on"]), min(runs["off"])
            rows.append(
                {
                    "arch": arch,
                    "scale": args.scale,
                    "n_train": n_train,
                    "steps": train.for_rows(n_train).steps,
                    "snapshots": snapshots,
                    "off_s": off_s,
                    "on_s": on_s,
                    "ratio": on_s / off_s,
                }
            )
            print(markdown_table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    lines = [
        *machine_lines(torch.device("cpu")),
        f"config: {args.config} (batch {train.batch_size}, trajectory: up to "
        f"{train.trajectory_points} snapshots of {train.trajectory_samples} samples at NFE "
        f"{train.trajectory_nfe}, at most {train.trajectory_max_share} of the training FLOPs)",
    ]
    table = markdown_table(rows, COLUMNS)
    write_report(args.out / "trajectory_overhead", "Trajectory overhead", lines, table, rows)


if __name__ == "__main__":
    main()

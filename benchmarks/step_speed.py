"""CPU training steps per second before / after the step's operations were cut, and with
``train.compile``, per arch x scale of the CPU table at the default study's batch, in one run.

    python benchmarks/step_speed.py [--baseline REV] [--archs mlp,dit] [--scales tiny] \\
        [--repeats 3] [--rounds 3] [--min-seconds 1] [--out DIR]

Three implementations: ``base`` is ``--baseline``'s trainer (a git worktree; default: landed
main before issue 27), ``eager`` and ``compiled`` this checkout's, the latter with
``train.compile``. Per cell each runs in ``--repeats`` fresh processes, interleaved (base,
eager, compiled, base, ...), so drift of a shared machine falls on all three alike. A process
warms up two steps, then times ``--rounds`` rounds of at least ``--min-seconds`` each; steps/s
is the median over every round of every process. The compiled processes of a cell share one
fresh inductor cache: the first compiles cold (``compile s``: its first step's seconds), the
others load it. Run it alone: it times the CPU. Writes DIR/step_speed.csv and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import RESULTS_DIR, comma_list, machine_lines, markdown_table, write_report

REPO = Path(__file__).resolve().parents[1]
BASELINE = "445b2db"
"""Landed main before issue 27 cut the step's operations."""
BATCH = 64
"""config.yaml's train.batch_size: the default study's."""
WORKER = """
import json, sys, tempfile, time, dataclasses
from pathlib import Path
import torch
from fmscale.config import TrainConfig
from fmscale.data import Dataset
try:  # the trainer's room since issue 28; a baseline before it has fmscale/train.py
    from fmscale.train.loop import CellSpec, Trainer
except ImportError:
    from fmscale.train import CellSpec, Trainer
arch, scale, batch, rounds, min_seconds, compile_ = sys.argv[1:7]
rows = torch.randn(96, 1024, generator=torch.Generator().manual_seed(1))
data = Dataset(rows[:48], rows[48:72], rows[72:], torch.zeros(1024), torch.ones(1024), "s", "r")
cfg = dataclasses.replace(TrainConfig(), batch_size=int(batch), steps=10**9, device="cpu",
                          trajectory_points=0, compile=compile_ == "1")
with tempfile.TemporaryDirectory() as out:
    trainer = Trainer(CellSpec(arch, scale, 48, 0, "cpu"), data, cfg, Path(out))
    step = getattr(trainer, "_train_step", None) or trainer.step  # its name before issue 28
    tick = time.perf_counter(); step(); first = time.perf_counter() - tick
    tick = time.perf_counter(); step(); one = time.perf_counter() - tick
    steps = max(1, int(float(min_seconds) / one))
    rates = []
    for _ in range(int(rounds)):
        tick = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - tick))
print(json.dumps({"first_s": first, "rates": rates}))
"""


def measure(src: Path, arch: str, scale: str, args: argparse.Namespace, cache: str | None) -> dict:
    """One process: ``WORKER`` on the fmscale of ``src``; compiled when given an inductor
    ``cache`` folder."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    if cache is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
    cmd = [sys.executable, "-c", WORKER, arch, scale, str(BATCH), str(args.rounds)]
    cmd += [str(args.min_seconds), "0" if cache is None else "1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell_row(arch: str, scale: str, sources: dict[str, Path], args: argparse.Namespace) -> dict:
    """steps/s of base, eager and compiled for one cell, their ratios and the cold compile."""
    rates: dict[str, list[float]] = {name: [] for name in sources}
    spread: dict[str, list[float]] = {name: [] for name in sources}
    first: dict[str, list[float]] = {name: [] for name in sources}
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(args.repeats):
            for name, src in sources.items():
                got = measure(src, arch, scale, args, cache if name == "compiled" else None)
                rates[name] += got["rates"]
                spread[name].append(statistics.median(got["rates"]))
                first[name].append(got["first_s"])
    row: dict = {"arch": arch, "scale": scale}
    row.update({f"{name} steps/s": statistics.median(r) for name, r in rates.items()})
    # How far apart the processes of one implementation land: the noise a ratio sits in.
    row.update({f"{name} max/min": max(r) / min(r) for name, r in spread.items()})
    for name in ("eager", "compiled"):
        row[f"{name} / base"] = row[f"{name} steps/s"] / row["base steps/s"]
    row["compile s"] = first["compiled"][0]
    row["warm compile s"] = statistics.median(first["compiled"][1:] or [float("nan")])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--archs", type=comma_list(str), default=["mlp", "dit", "unet", "mamba"])
    parser.add_argument("--scales", type=comma_list(str), default=["tiny", "small", "base"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "worktree"]
        subprocess.run(
            [*git, "add", "-q", "--detach", str(tree), args.baseline], cwd=REPO, check=True
        )
        try:
            sources = {"base": tree / "src", "eager": REPO / "src", "compiled": REPO / "src"}
            for arch in args.archs:
                for scale in args.scales:
                    rows.append(cell_row(arch, scale, sources, args))
                    print(rows[-1], flush=True)
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], cwd=REPO, check=True)
    fmt = "{:.2f}"
    columns = {"arch": ("arch", "{}"), "scale": ("scale", "{}")}
    columns.update({k: (k, fmt) for k in rows[0] if k not in columns})
    lines = [*machine_lines(torch.device("cpu")), f"baseline: {args.baseline}, batch {BATCH}"]
    table = markdown_table(rows, columns)
    write_report(args.out / "step_speed", "CPU steps per second", lines, table, rows)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

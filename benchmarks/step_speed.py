"""CPU training steps per second before / after the step's operations were cut, and with
``train.compile``, per arch x scale of the CPU table at the default study's batch, in one run.

    python benchmarks/step_speed.py [--baseline REV] [--archs mlp,dit] [--scales tiny] \\
        [--steps 20] [--rounds 5] [--out DIR]

Each (cell, implementation) runs in its own process: ``base`` is ``--baseline``'s trainer
(a git worktree; default: landed main before issue 27), ``eager`` and ``compiled`` this
checkout's, the latter with ``train.compile`` and a fresh inductor cache, so its first step
is a cold compile (``compile s``: that step's seconds). After two warm-up steps, ``--rounds``
rounds of ``--steps`` steps are timed; the median round gives steps/s. The order of the three
alternates from cell to cell. Run it alone: it times the CPU. Writes DIR/step_speed.csv, .md.
"""

from __future__ import annotations

import argparse
import json
import os
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
import json, statistics, sys, tempfile, time, dataclasses
from pathlib import Path
import torch
from fmscale.config import TrainConfig
from fmscale.data import Dataset
from fmscale.train import CellSpec, Trainer
arch, scale, batch, steps, rounds, compile_ = sys.argv[1:7]
steps, rounds = int(steps), int(rounds)
rows = torch.randn(96, 1024, generator=torch.Generator().manual_seed(1))
data = Dataset(rows[:48], rows[48:72], rows[72:], torch.zeros(1024), torch.ones(1024), "s", "r")
cfg = dataclasses.replace(TrainConfig(), batch_size=int(batch), steps=10**6, device="cpu",
                          trajectory_points=0, compile=compile_ == "1")
with tempfile.TemporaryDirectory() as out:
    trainer = Trainer(CellSpec(arch, scale, 48, 0, "cpu"), data, cfg, Path(out))
    tick = time.perf_counter(); trainer._train_step(); first = time.perf_counter() - tick
    trainer._train_step()
    times = []
    for _ in range(rounds):
        tick = time.perf_counter()
        for _ in range(steps):
            trainer._train_step()
        times.append(time.perf_counter() - tick)
print(json.dumps({"first_s": first, "steps_per_s": steps / statistics.median(times)}))
"""


def measure(src: Path, arch: str, scale: str, args: argparse.Namespace, compiled: bool) -> dict:
    """One process: ``WORKER`` on the fmscale of ``src``."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(src), "TORCHINDUCTOR_CACHE_DIR": cache}
        cmd = [sys.executable, "-c", WORKER, arch, scale, str(BATCH), str(args.steps)]
        cmd += [str(args.rounds), "1" if compiled else "0"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--archs", type=comma_list(str), default=["mlp", "dit", "unet", "mamba"])
    parser.add_argument("--scales", type=comma_list(str), default=["tiny", "small", "base"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
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
            impls = {
                "base": lambda a, s: measure(tree / "src", a, s, args, False),
                "eager": lambda a, s: measure(REPO / "src", a, s, args, False),
                "compiled": lambda a, s: measure(REPO / "src", a, s, args, True),
            }
            for i, (arch, scale) in enumerate((a, s) for a in args.archs for s in args.scales):
                order = list(impls) if i % 2 == 0 else list(reversed(impls))
                got = {name: impls[name](arch, scale) for name in order}
                row = {"arch": arch, "scale": scale}
                row.update({f"{name} steps/s": got[name]["steps_per_s"] for name in impls})
                row["eager / base"] = got["eager"]["steps_per_s"] / got["base"]["steps_per_s"]
                row["compiled / base"] = got["compiled"]["steps_per_s"] / got["base"]["steps_per_s"]
                row["compile s"] = got["compiled"]["first_s"]
                rows.append(row)
                print(row, flush=True)
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

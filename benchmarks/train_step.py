"""fmscale's real training step against a plain PyTorch loop, per arch x scale x batch.

    python benchmarks/train_step.py [--archs mlp,dit] [--scales tiny] [--batches 256,1024] \\
        [--repeat 7] [--steps 10] [--device auto|cpu|cuda] [--no-memory] [--out DIR]

fmscale: ``Trainer.step`` of a real ``fmscale.train.Trainer`` (batches indexed on the
device; on CUDA bf16 autocast, TF32, fused AdamW and torch.compile as the flags say). Plain: the
same model (same table row, same seed) in a textbook loop: a shuffling DataLoader on the CPU,
the batch moved to the device, fp32 (TF32 off), ``loss.item()`` every step, AdamW and
``clip_grad_norm_`` without foreach, EMA by a Python loop over the parameters.

Every cell is warmed up, then ``--repeat`` rounds each time ``--steps`` consecutive steps of
both (which goes first alternates); a slow cell gets fewer steps per round (at least 1) and
rounds (at least 2) so each implementation's timed work stays within ``--max-seconds-per-cell``.
Times are medians over rounds. GFLOP/step: FlopCounterMode around one fmscale step (forward +
backward matmuls, convolutions and attention; elementwise work, e.g. the state updates of
Mamba's pure-PyTorch scan, is not counted). % of matmul peak: fmscale's GFLOP/s over the best
large matmul in the step's precision, measured at the start and at the end (the max). Peak MB:
one fresh process per cell and implementation, see ``_common.peak_growth_mb``. Writes
``<out>/train_step_<device-kind>.csv`` and ``.md`` (default out: benchmarks/results).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import (
    RESULTS_DIR,
    device_kind,
    machine_lines,
    markdown_table,
    matmul_peaks,
    peak_growth_mb,
    tf32,
    timed,
    write_report,
)
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from fmscale.config import TrainConfig
from fmscale.data import DataConfig, Dataset, SyntheticConfig, build_dataset
from fmscale.models import build_model, resolve_row
from fmscale.train.loop import CellSpec, Trainer

N_TRAIN, DIM, SEED = 4096, 1024, 0
IMPLS = ("fmscale", "plain")
GPU_FLAGS = ("bf16", "tf32", "fused_adamw")  # TrainConfig fields that act on CUDA only
COLUMNS = {  # Markdown header -> (row key, format)
    "arch": ("arch", "{}"),
    "scale": ("scale", "{}"),
    "batch": ("batch", "{}"),
    "params": ("params", "{:,}"),
    "GFLOP/step": ("gflop_per_step", "{:.3g}"),
    "fmscale ms/step": ("fmscale_ms", "{:.2f}"),
    "plain ms/step": ("plain_ms", "{:.2f}"),
    "speedup": ("speedup", "{:.2f}x"),
    "fmscale samples/s": ("fmscale_samples_s", "{:,.0f}"),
    "fmscale % of matmul peak": ("fmscale_pct_peak", "{:.1f}"),
    "fmscale peak MB": ("fmscale_peak_mb", "{:.0f}"),
    "plain peak MB": ("plain_peak_mb", "{:.0f}"),
}


def make_dataset() -> Dataset:
    """A synthetic train pool of N_TRAIN x DIM rows (tiny held-out sets: they are not used)."""
    synthetic = SyntheticConfig(dim=DIM, n_rows=N_TRAIN + 128)
    return build_dataset(DataConfig(n_val=64, n_test=64, synthetic=synthetic), N_TRAIN)


def make_trainer(arch: str, scale: str, data: Dataset, cfg: TrainConfig, out: Path) -> Trainer:
    """fmscale's Trainer for one cell (nothing is written to ``out`` unless it checkpoints)."""
    return Trainer(CellSpec(arch, scale, N_TRAIN, seed=SEED), data, cfg, out)


class PlainLoop:
    """A textbook CFM training step on the model the Trainer would build (same row and seed)."""

    def __init__(self, arch: str, scale: str, data: Dataset, cfg: TrainConfig) -> None:
        self.device = torch.device(cfg.device)
        torch.manual_seed(SEED)
        self.model = build_model(arch, resolve_row(arch, scale), data.dim).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            cfg.lr,
            weight_decay=cfg.weight_decay,
            foreach=False,
            fused=False,
        )
        self.grad_clip, self.decay = cfg.grad_clip, cfg.ema_decay
        x_train = TensorDataset(data.train(N_TRAIN))
        loader = DataLoader(x_train, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
        self.batches = itertools.chain.from_iterable(itertools.repeat(loader))

    def step(self) -> float:
        """Batch to the device, loss, backward, clip, AdamW, EMA; returns ``loss.item()``."""
        with tf32(False):  # the Trainer switches TF32 on process-wide; plain stays fp32
            x1 = next(self.batches)[0].to(self.device)
            x0 = torch.randn_like(x1)
            t = torch.rand(len(x1), device=self.device)
            x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
            loss = F.mse_loss(self.model(x_t, t), x1 - x0)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip, foreach=False)
            self.opt.step()
            with torch.no_grad():
                for pe, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                    pe.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
            return loss.item()


@dataclass
class Cell:
    """One arch x scale x batch: both implementations, FLOPs, timing plan and times."""

    arch: str
    scale: str
    batch: int
    trainer: Trainer
    plain: PlainLoop
    gflop: float = 0.0
    per_round: int = 1
    rounds: int = 2
    times: dict[str, list[float]] = field(default_factory=lambda: {i: [] for i in IMPLS})

    @property
    def steps(self) -> dict[str, Callable[[], object]]:
        """Implementation name -> its step function."""
        return {"fmscale": self.trainer.step, "plain": self.plain.step}


def prepare(cell: Cell, args: argparse.Namespace) -> None:
    """Count one fmscale step's FLOPs, warm both up, plan steps per round and rounds."""
    with FlopCounterMode(display=False) as counter:
        cell.trainer.step()
    cell.gflop = counter.get_total_flops() / 1e9
    slowest = 0.0
    for step in cell.steps.values():
        for _ in range(args.warmup - 1):
            step()
        slowest = max(slowest, timed(step, 1, args.device))
    budget = args.max_seconds_per_cell
    cell.per_round = max(1, min(args.steps, int(budget / (args.repeat * slowest))))
    cell.rounds = max(2, min(args.repeat, int(budget / (cell.per_round * slowest))))
    print(
        f"{cell.arch}/{cell.scale}/b{cell.batch}: {cell.gflop:.3g} GFLOP/step, slowest warm-up "
        f"step {slowest * 1e3:.1f} ms -> {cell.rounds} rounds x {cell.per_round} steps",
        file=sys.stderr,
    )


def time_interleaved(cells: list[Cell], device: torch.device) -> None:
    """Round by round, every cell, both implementations (alternating which goes first)."""
    for r in range(max(c.rounds for c in cells)):
        for cell in (c for c in cells if r < c.rounds):
            for impl in IMPLS if r % 2 == 0 else IMPLS[::-1]:
                cell.times[impl].append(timed(cell.steps[impl], cell.per_round, device))


def child_peak_mb(impl: str, arch: str, scale: str, cfg: TrainConfig, threads: int | None) -> float:
    """In a fresh process: build one implementation of one cell, return its 3-step peak MB."""
    if threads:
        torch.set_num_threads(threads)
    data = make_dataset()
    with tempfile.TemporaryDirectory() as tmp:
        if impl == "fmscale":
            step = make_trainer(arch, scale, data, cfg, Path(tmp)).step
        else:
            step = PlainLoop(arch, scale, data, cfg).step
        return peak_growth_mb(step, torch.device(cfg.device))


def measure_memory(grid: list[tuple[str, str, int]], args: argparse.Namespace) -> dict:
    """Peak MB per (arch, scale, batch, impl), each run alone in a spawned process."""
    spawn = get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, max_tasks_per_child=1) as pool:
        jobs = {
            (a, s, b, i): pool.submit(child_peak_mb, i, a, s, train_config(args, b), args.threads)
            for a, s, b in grid
            for i in IMPLS
        }
        return {key: job.result() for key, job in jobs.items()}


def train_config(args: argparse.Namespace, batch: int) -> TrainConfig:
    """fmscale's settings for one batch size; ``steps`` so large the schedule never ends."""
    flags = {f: getattr(args, f) for f in GPU_FLAGS}
    return TrainConfig(10**9, batch, device=args.device.type, compile=args.compile, **flags)


def step_precision(args: argparse.Namespace) -> str:
    """The matmul precision of fmscale's step: bf16 autocast, TF32 or fp32 (always on CPU)."""
    if args.device.type != "cuda":
        return "fp32"
    return "bf16" if args.bf16 else "tf32" if args.tf32 else "fp32"


def result_row(cell: Cell, peak: float, memory: dict) -> dict:
    """The CSV row of one cell (the Markdown table shows the COLUMNS subset)."""
    fm, pl = (statistics.median(cell.times[i]) for i in IMPLS)
    row = {"arch": cell.arch, "scale": cell.scale, "batch": cell.batch}
    row |= {"params": cell.trainer.n_params, "gflop_per_step": cell.gflop}
    row |= {"fmscale_ms": fm * 1e3, "plain_ms": pl * 1e3, "speedup": pl / fm}
    for impl, sec in zip(IMPLS, (fm, pl), strict=True):
        row |= {f"{impl}_steps_s": 1 / sec, f"{impl}_samples_s": cell.batch / sec}
        row[f"{impl}_gflop_s"] = cell.gflop / sec
    row["fmscale_pct_peak"] = 100 * row["fmscale_gflop_s"] / peak
    for impl in IMPLS if memory else ():
        row[f"{impl}_peak_mb"] = memory[cell.arch, cell.scale, cell.batch, impl]
    return row | {"rounds": cell.rounds, "steps_per_round": cell.per_round}


def parse_args() -> argparse.Namespace:
    """The command line; lists split, ``device`` resolved, batches defaulted per device."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--archs", default="mlp,dit,unet,mamba")
    p.add_argument("--scales", default="tiny,small,base")
    p.add_argument("--batches", help="comma-separated (default 256,1024 CPU; 256,4096 CUDA)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    p.add_argument("--steps", type=int, default=10, help="steps per round (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up steps (>= 1, default 3)")
    p.add_argument("--max-seconds-per-cell", type=float, default=20.0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    for flag in GPU_FLAGS:
        p.add_argument(
            f"--{flag.replace('_', '-')}",
            action=argparse.BooleanOptionalAction,
            default=getattr(TrainConfig(), flag),
            help=f"fmscale on CUDA: TrainConfig.{flag}",
        )
    p.add_argument("--compile", action="store_true", help="TrainConfig.compile (default mode)")
    args = p.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.device = torch.device(args.device)
    args.batches = args.batches or ("256,4096" if args.device.type == "cuda" else "256,1024")
    args.archs, args.scales = args.archs.split(","), args.scales.split(",")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.warmup = max(1, args.warmup)
    return args


def main() -> None:
    """Peaks, memory runs, warm-up, interleaved timing, peaks again; print and write tables."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = list(itertools.product(args.archs, args.scales, args.batches))
    first_peaks = matmul_peaks(args.device)
    memory = measure_memory(grid, args) if args.memory else {}
    data = make_dataset()
    with tempfile.TemporaryDirectory() as tmp:
        cells = []
        for a, s, b in grid:
            cfg = train_config(args, b)
            trainer = make_trainer(a, s, data, cfg, Path(tmp) / f"{a}-{s}-{b}")
            cells.append(Cell(a, s, b, trainer, PlainLoop(a, s, data, cfg)))
            prepare(cells[-1], args)
        time_interleaved(cells, args.device)
    peaks = {k: max(v, first_peaks[k]) for k, v in matmul_peaks(args.device).items()}
    rows = [result_row(c, peaks[step_precision(args)], memory) for c in cells]
    gpu = "".join(f"{f} {getattr(args, f)}, " for f in GPU_FLAGS)
    settings = (
        f"fmscale: {gpu if args.device.type == 'cuda' else ''}compile {args.compile}, "
        f"matmuls in {step_precision(args)}; n_train {N_TRAIN}, dim {DIM}"
    )
    lines, table = machine_lines(args.device, peaks) + [settings], markdown_table(rows, COLUMNS)
    print("\n".join(lines) + "\n\n" + table)
    stem = args.out / f"train_step_{device_kind(args.device)}"
    write_report(stem, "Training step: fmscale vs a plain PyTorch loop", lines, table, rows)
    print(f"wrote {stem}.csv and {stem}.md", file=sys.stderr)


if __name__ == "__main__":
    main()

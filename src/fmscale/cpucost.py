"""What each job of a study costs on this CPU, measured with the functions the jobs call.

Every job is a fresh ``python -m fmscale <verb>`` process: its start-up (interpreter, imports,
the first AdamW's import of torch._dynamo, exit) is timed as a subprocess; its work in this
process, at the job's thread count (``resources.train_threads``), on the study's data prepared
and read back as ``fmscale prepare-data`` writes it:

- train: ``train_cell`` of one step (model, EMA, FLOP count, outputs) minus that step, plus
  ``steps`` x the median of ``Trainer.step`` at the study's batch, plus one trajectory
  snapshot and one checkpoint write times how many the cell makes;
- evaluate: ``evaluate_cell`` of that one-step cell (an untrained model samples and scores as
  a trained one does);
- reference: ``reference_rows`` at each n_train; prepare_data: building and saving the data;
  verify_params: fitting and gating the table.

summarize and analyze read finished cells, so they cannot run before the study; their cost is
``TAIL_JOB_S`` per cell and fixed, measured on the 2-core machine (an assumption elsewhere).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .study_config import StudyConfig

TAIL_JOB_S = {"summarize": (5.0, 0.0), "analyze": (4.2, 0.42)}
"""(fixed, per cell) seconds of the jobs that read finished cells, whole process, on the 2-core
machine of docs/decisions/README.md: analyze timed on docs/default_study (36 cells, 19.3 s) and on
8 of its cells (7.5 s) by ``python benchmarks/plan_accuracy.py --tail``
(benchmarks/results/plan_accuracy_tail.json); summarize 5 s, as in the Snakemake log of an
8-cell study on the busy machine (not re-measured quiet)."""
STARTUP_CODE = {
    "train": "import fmscale.cli, fmscale.train.cell, torch; "
    "torch.optim.AdamW([torch.zeros(1, requires_grad=True)])",
    "other": "import fmscale.cli, fmscale.evaluate, fmscale.params, scipy.special",
}
"""What a job's process imports and builds before its work: a train job imports
``fmscale.train.cell`` (and so torch) and its first AdamW imports torch._dynamo (~1 s);
evaluate and reference import ``fmscale.evaluate`` (and so torch) and scipy.special."""
STARTUP_REPEATS = 2
"""Start-up subprocesses per kind; the median is used."""


@dataclass(frozen=True)
class ArchCost:
    """Seconds of one arch x scale's jobs on this CPU, at the job's thread count."""

    step_s: float
    train_fixed_s: float
    snapshot_s: float
    checkpoint_s: float
    evaluate_s: float
    snapshots: dict[int, int]
    """Trajectory snapshots a cell of each n_train scores (as its Trainer picks them)."""


@dataclass(frozen=True)
class CpuCosts:
    """The measured parts every job's seconds are built from (see the module docstring)."""

    threads: int
    startup_s: dict[str, float]
    data_load_s: float
    prepare_s: float
    params_s: float
    reference_s: dict[int, float]
    archs: dict[tuple[str, str], ArchCost]
    tail_s: dict[str, float]

    def train_s(self, arch: str, scale: str, n_train: int, steps: int, ckpt_every: int) -> float:
        """One train job of ``steps`` steps, process start to exit."""
        a = self.archs[arch, scale]
        saves = checkpoints(steps, ckpt_every)
        work = steps * a.step_s + a.snapshots[n_train] * a.snapshot_s + saves * a.checkpoint_s
        return self.startup_s["train"] + self.data_load_s + a.train_fixed_s + work

    def job_s(self, rule: str, arch: str = "", scale: str = "", n_train: int = 0) -> float:
        """One job of a rule other than train, process start to exit."""
        start = self.startup_s["other"] + self.data_load_s
        if rule == "evaluate":
            return start + self.archs[arch, scale].evaluate_s
        if rule == "reference":
            return start + self.reference_s[n_train]
        if rule == "prepare_data":
            return self.startup_s["other"] + self.prepare_s
        if rule == "verify_params":
            return start + self.params_s
        return self.tail_s[rule]


def checkpoints(steps: int, ckpt_every: int) -> int:
    """Checkpoint writes of a cell: every ``ckpt_every`` steps and the last."""
    return steps // ckpt_every + (steps % ckpt_every != 0)


def startup_seconds() -> dict[str, float]:
    """Median wall seconds of ``STARTUP_REPEATS`` fresh processes doing each kind's
    ``STARTUP_CODE``."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = {}
    for kind, code in STARTUP_CODE.items():
        times = []
        for _ in range(STARTUP_REPEATS):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - start)
        out[kind] = statistics.median(times)
    return out


@contextmanager
def _threads(n: int):
    """torch's intra-op threads set to ``n`` for the block, as ``--threads n`` sets them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _timed(run) -> tuple[float, Any]:
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def measure(study: StudyConfig, cpu_steps: int) -> CpuCosts:
    """Time every part of every job of ``study`` on this CPU (``cpu_steps`` timed steps per
    arch x scale, after one warm-up step)."""
    import scipy.special  # noqa: F401  (start-up of evaluate and reference: not timed below)
    import torch

    from .data import Dataset, build_dataset
    from .layout import cells
    from .params import write_table
    from .study import study_grid, study_table

    threads = study.resources.train_threads
    startup = startup_seconds()
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # torch._dynamo: start-up, too
    max_n = max(study.grid.n_train)
    n_cells = len(cells(study_grid(study)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare_s, data = _timed(lambda: build_dataset(study.data, max_n))
        save_s, _ = _timed(lambda: data.save(root / "pool.safetensors"))
        load_s, data = _timed(lambda: Dataset.load(root / "pool.safetensors"))
        params_s, table = _timed(lambda: study_table(study, data.dim))
        write_table(table, root / "table.yaml", "# fmscale plan: the study's table at D")
        with _threads(threads):  # train, evaluate and reference jobs run with --threads
            archs = {
                (arch, scale): _arch_cost(study, data, arch, scale, root, cpu_steps)
                for arch in study.grid.archs
                for scale in study.grid.scales
            }
            references = {n: _reference_s(study, data, n) for n in study.grid.n_train}
    return CpuCosts(
        threads=threads,
        startup_s=startup,
        data_load_s=load_s,
        prepare_s=prepare_s + save_s,
        params_s=params_s,
        reference_s=references,
        archs=archs,
        tail_s={rule: fixed + per_cell * n_cells for rule, (fixed, per_cell) in TAIL_JOB_S.items()},
    )


def _reference_s(study: StudyConfig, data: Any, n_train: int) -> float:
    from .evaluate import reference_rows

    return _timed(lambda: reference_rows(data, n_train, study.evaluate))[0]


def _arch_cost(
    study: StudyConfig, data: Any, arch: str, scale: str, root: Path, cpu_steps: int
) -> ArchCost:
    """One arch x scale: the fixed part of a train job, its steps, snapshot, checkpoint and
    the evaluate job, timed."""
    from .evaluate import evaluate_cell
    from .train.cell import train_cell
    from .train.loop import CellSpec, Trainer
    from .trajectory import TrajectoryScorer, affordable_points, snapshot_steps

    n_train = max(study.grid.n_train)
    spec = CellSpec(arch, scale, n_train, 0, str(root / "table.yaml"))
    one_step = dataclasses.replace(
        study.train, steps=1, epochs=None, trajectory_points=0, device="cpu"
    )
    run = root / "runs" / f"{arch}_{scale}"
    fixed_s, _ = _timed(lambda: train_cell(spec, data, one_step, run, progress=False))
    evaluate_s, _ = _timed(lambda: evaluate_cell(run, data, study.evaluate, device="cpu"))
    trainer = Trainer(spec, data, dataclasses.replace(study.train, device="cpu"), root / "timing")
    trainer.step()  # warm-up: allocations, the optimiser's state
    times = [_timed(trainer.step)[0] for _ in range(cpu_steps)]
    step_s = statistics.median(times)
    snapshot_s, _ = _timed(lambda: trainer.scorer.score(trainer.ema, trainer.steps_done))
    checkpoint_s, _ = _timed(lambda: trainer.store.save(trainer.state(), trainer.steps_done))
    snapshots = {}
    for n in study.grid.n_train:  # as Trainer.__init__ picks them for a cell of n rows
        cfg = study.train.for_rows(n)
        flops = trainer.flops["sampling_flops_per_sample_per_nfe"]
        snapshot = TrajectoryScorer(data, n, cfg).flops(flops)
        points = affordable_points(cfg, snapshot, trainer.flops["train_flops_per_step"])
        snapshots[n] = len(snapshot_steps(cfg.steps, points))
    return ArchCost(
        step_s=step_s,
        train_fixed_s=max(0.0, fixed_s - step_s),
        snapshot_s=snapshot_s,
        checkpoint_s=checkpoint_s,
        evaluate_s=evaluate_s,
        snapshots=snapshots,
    )

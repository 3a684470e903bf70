"""What a study costs before it runs: jobs per rule, FLOPs and operations per step, GPU-hours on
named GPUs with the launch floor, disk, and the wall time of ``snakemake --cores N`` on this CPU.

GPU time of a cell = steps x max(FLOPs per step / (peak x utilisation), kernel operations per
step x per-operation latency) + its sampling, bounded the same way, + one start-up per job
(train and evaluate). FLOPs are counted as the train job counts them (``flops.count_flops``);
operations are counted on one real trainer step (``opcount``); the peak is the GPU's published
dense figure for the study's precision. The utilisation, the per-operation latency and the
start-up are assumptions, named in every output (``assumptions``). A model of a few million
parameters is launch-bound: its kernels take less time than launching them, so FLOPs alone
predict 10-25x too little.

CPU wall time: every job of the workflow timed on this machine (``cpucost``) and scheduled on
N cores as Snakemake schedules them (``schedule``: the median over random orders of ready
jobs), plus Snakemake's own start.

``plan`` returns the plan as a JSON-ready dict (fields: ``docs/plan.md``);
``plan_render.render`` writes it as Markdown.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .cpucost import CpuCosts
from .layout import cells
from .schedule import Job, wall_times
from .study import study_grid, study_table
from .study_config import PlanAssumptions, StudyConfig

GPU_PEAK_TFLOPS = {
    "H100 SXM": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100 SXM": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.05, "tf32": 183.0, "fp32": 91.6},
}
"""Dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets, per precision."""
OP_LATENCY_SOURCE = (
    "eager PyTorch dispatch ~4.5 us per op (dev-discuss.pytorch.org/t/1836); CUDA kernel launch "
    "5-20 us on the CPU side (facebookresearch/HolisticTraceAnalysis, "
    "cuda_kernel_launch_stats.rst)"
)
SNAKEMAKE_START_S = 3.0
"""Seconds from ``snakemake`` starting to its first job (DAG build with the gate); measured on
the 2-core machine (benchmarks/results/plan_accuracy.json)."""
SCHEDULE_ORDERS = 25
"""Random orders of ready jobs simulated (Snakemake's choice among them is its solver's); the
plan gives the median wall time and the range."""
BYTES_PER_VALUE = 4
"""float32 weights, EMA and Adam moments in checkpoints."""
GPU_RULES = ("train", "evaluate")
"""The rules whose jobs run on a GPU in a GPU study (workflow/rules: ``resources: gpu``)."""


def precision(train: TrainConfig) -> str:
    """The precision a CUDA step runs its matmuls in, as the trainer sets it."""
    return "bf16" if train.bf16 else "tf32" if train.tf32 else "fp32"


def evaluation_flops(sampling_per_nfe: int, study: StudyConfig) -> int:
    """Sampling FLOPs of one evaluate job (every NFE of evaluate.nfe) and the train job's
    trajectory snapshots (their samples at trajectory_nfe)."""
    ev, train = study.evaluate, study.train
    samples = ev.n_samples * sum(ev.nfe)
    snapshots = train.trajectory_points * train.trajectory_samples * train.trajectory_nfe
    return sampling_per_nfe * (samples + snapshots)


def evaluation_calls(study: StudyConfig) -> int:
    """Velocity evaluations (batched calls of the model) of one cell's sampling: evaluate's
    batches at every NFE and the trajectory snapshots' (one batch each)."""
    ev, train = study.evaluate, study.train
    batches = math.ceil(ev.n_samples / ev.batch_size)
    return batches * sum(ev.nfe) + train.trajectory_points * train.trajectory_nfe


def jobs_per_rule(study: StudyConfig) -> dict[str, int]:
    """The jobs a fresh run of the study starts, per rule of ``workflow/rules``."""
    n_cells = len(cells(study_grid(study)))
    return {
        "prepare_data": 1,
        "verify_params": 1,
        "train": n_cells,
        "evaluate": n_cells,
        "reference": len(study.grid.n_train),
        "summarize": 1,
        "analyze": 1,
        "all": 1,
    }


def arch_counts(study: StudyConfig, data_dim: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Per arch x scale of the study's table at D: parameters, FLOPs (``count_flops``) and
    operations per step (``opcount.arch_ops``)."""
    from .flops import count_flops
    from .flow import build_field
    from .opcount import arch_ops
    from .params import write_table

    table = study_table(study, data_dim)  # the rows the cells train at D (fitted, gated)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.yaml"
        write_table(table, path, "# fmscale plan: the study's table at D")
        for arch in study.grid.archs:
            for scale in study.grid.scales:
                field = build_field(
                    arch, table.row(arch, scale), data_dim, study.train.parameterisation
                )
                out[arch, scale] = {
                    "n_params": sum(p.numel() for p in field.parameters()),
                    **count_flops(field, data_dim, study.train.batch_size),
                    **arch_ops(arch, scale, path, data_dim, study.train),
                }
    return out


def gpu_cell_seconds(
    info: dict[str, Any], steps: int, calls: int, eval_flops: int, peak: float, assume: dict
) -> dict[str, float]:
    """One cell (one seed) on one GPU of ``peak`` FLOP/s: its steps and its sampling, each bounded
    by FLOPs / (peak x utilisation) and by kernel operations x latency, and its jobs' start-up."""
    rate, latency = peak * assume["utilisation"], assume["op_latency_us"] * 1e-6
    step_compute = info["train_flops_per_step"] / rate
    step_launch = info["kernel_ops"] * latency
    sample_compute, sample_launch = eval_flops / rate, calls * info["sample_kernel_ops"] * latency
    return {
        "step_compute_s": step_compute,
        "step_launch_s": step_launch,
        "flops_only_s": steps * step_compute + sample_compute,
        "with_launch_floor_s": steps * max(step_compute, step_launch)
        + max(sample_compute, sample_launch),
        "startup_s": len(GPU_RULES) * assume["gpu_job_start_s"],
    }


def cpu_jobs(study: StudyConfig, cpu: CpuCosts) -> list[Job]:
    """Every job of a fresh run with its seconds on this CPU and what it waits on."""
    threads = study.resources.train_threads
    dataset = "prepare_data"
    jobs = [
        Job(dataset, "prepare_data", cpu.job_s("prepare_data")),
        Job("verify_params", "verify_params", cpu.job_s("verify_params"), after=(dataset,)),
    ]
    for n in study.grid.n_train:
        jobs.append(
            Job(
                f"reference n{n}",
                "reference",
                cpu.job_s("reference", n_train=n),
                threads,
                (dataset,),
            )
        )
    for c in cells(study_grid(study)):
        name = f"{c['arch']}/{c['scale']} n{c['n_train']} s{c['seed']}"
        steps = study.train.for_rows(c["n_train"]).steps
        train_s = cpu.train_s(c["arch"], c["scale"], c["n_train"], steps, study.train.ckpt_every)
        jobs.append(Job(f"train {name}", "train", train_s, threads, ("verify_params", dataset)))
        jobs.append(
            Job(
                f"evaluate {name}",
                "evaluate",
                cpu.job_s("evaluate", c["arch"], c["scale"]),
                threads,
                (f"train {name}",),
            )
        )
    before = tuple(j.name for j in jobs)
    jobs.append(Job("summarize", "summarize", cpu.job_s("summarize"), after=before))
    jobs.append(Job("analyze", "analyze", cpu.job_s("analyze"), after=("summarize",)))
    return jobs


def cpu_plan(study: StudyConfig, cpu: CpuCosts, cores: int) -> dict[str, Any]:
    """The study's wall time on ``cores`` cores of this CPU, and its parts."""
    jobs = cpu_jobs(study, cpu)
    walls = [SNAKEMAKE_START_S + w for w in wall_times(jobs, cores, SCHEDULE_ORDERS)]
    by_rule: dict[str, float] = {}
    for job in jobs:
        by_rule[job.rule] = by_rule.get(job.rule, 0.0) + job.seconds
    return {
        "cores": cores,
        "threads_per_job": cpu.threads,
        "wall_s": walls[len(walls) // 2],
        "wall_s_range": [walls[0], walls[-1]],
        "one_job_at_a_time_s": SNAKEMAKE_START_S + sum(by_rule.values()),
        "job_seconds_by_rule": by_rule,
        "startup_s": cpu.startup_s,
        "data_load_s": cpu.data_load_s,
        "snakemake_start_s": SNAKEMAKE_START_S,
        "tail_jobs_s": cpu.tail_s,
        "per_arch": [
            {
                "arch": arch,
                "scale": scale,
                "step_s": a.step_s,
                "train_fixed_s": a.train_fixed_s,
                "snapshot_s": a.snapshot_s,
                "checkpoint_s": a.checkpoint_s,
                "evaluate_s": a.evaluate_s,
            }
            for (arch, scale), a in cpu.archs.items()
        ],
        "reference_s": {str(n): s for n, s in cpu.reference_s.items()},
        "jobs": [{"name": job.name, "rule": job.rule, "seconds": job.seconds} for job in jobs],
    }


def plan(
    study: StudyConfig,
    data_shape: tuple[int, int],
    source: str,
    utilisation: float = PlanAssumptions.utilisation,
    op_latency_us: float = PlanAssumptions.op_latency_us,
    gpu_job_start_s: float = PlanAssumptions.gpu_job_start_s,
    cpu: CpuCosts | None = None,
    cores: int = 1,
) -> dict[str, Any]:
    """The plan of ``study`` on data of ``data_shape`` = (rows, D), as a JSON-ready dict
    (``docs/plan.md``); ``cpu``: this machine's measured job costs (None: no CPU prediction)."""
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation={utilisation} must be in (0, 1]")
    assume = {
        "utilisation": utilisation,
        "op_latency_us": op_latency_us,
        "op_latency_source": OP_LATENCY_SOURCE,
        "gpu_job_start_s": gpu_job_start_s,
        "gpu_rules": list(GPU_RULES),
        "notes": ASSUMPTIONS,
    }
    prec = precision(study.train)
    counts = arch_counts(study, data_shape[1])
    calls = evaluation_calls(study)
    out_cells, hours = [], {g: dict.fromkeys(HOUR_KEYS, 0.0) for g in GPU_PEAK_TFLOPS}
    for c in cells({**study_grid(study), "seeds": [0]}):
        info = counts[c["arch"], c["scale"]]
        steps = study.train.for_rows(c["n_train"]).steps
        eval_flops = evaluation_flops(info["sampling_flops_per_sample_per_nfe"], study)
        gpu = {
            name: gpu_cell_seconds(info, steps, calls, eval_flops, peaks[prec] * 1e12, assume)
            for name, peaks in GPU_PEAK_TFLOPS.items()
        }
        seeds = len(study.grid.seeds)
        for name, s in gpu.items():
            hours[name]["flops_only"] += seeds * s["flops_only_s"] / 3600
            hours[name]["with_launch_floor"] += seeds * s["with_launch_floor_s"] / 3600
            hours[name]["with_launch_floor_and_startup"] += (
                seeds * (s["with_launch_floor_s"] + s["startup_s"]) / 3600
            )
        out_cells.append(
            {
                "arch": c["arch"],
                "scale": c["scale"],
                "n_train": c["n_train"],
                "seeds": seeds,
                "steps": steps,
                "train_flops": info["train_flops_per_step"] * steps,
                "eval_flops": eval_flops,
                "gpu_s": gpu,
            }
        )
    return {
        "source": source,
        "grid": {k: list(getattr(study.grid, k)) for k in ("archs", "scales", "n_train", "seeds")},
        "data_dim": data_shape[1],
        "batch_size": study.train.batch_size,
        "precision": prec,
        "assumptions": assume,
        "jobs": jobs_per_rule(study),
        "ops": [
            {"arch": arch, "scale": scale, **{k: info[k] for k in ARCH_KEYS}}
            for (arch, scale), info in counts.items()
        ],
        "cells": out_cells,
        "gpu_peak_tflops": {g: p[prec] for g, p in GPU_PEAK_TFLOPS.items()},
        "gpu_hours": hours,
        "cpu": None if cpu is None else cpu_plan(study, cpu, cores),
        "disk": disk_bytes(counts, study, data_shape),
    }


HOUR_KEYS = ("flops_only", "with_launch_floor", "with_launch_floor_and_startup")
ARCH_KEYS = (
    "n_params",
    "train_flops_per_step",
    "sampling_flops_per_sample_per_nfe",
    "flops_estimated_part",
    "ops",
    "views",
    "total_ops",
    "kernel_ops",
    "sample_ops",
    "sample_kernel_ops",
)
"""The per arch x scale fields of ``ops`` in the plan."""
ASSUMPTIONS = [
    "GPU: a step takes the longer of its FLOPs at the stated utilisation of the dense peak and "
    "its kernel operations (operations minus views) x the per-operation latency; the two do "
    "not overlap in the bound, and nothing hides the latency.",
    "Operations are counted on the CPU on one trainer step with CPU autocast standing in "
    "for CUDA autocast (train.bf16): the eager step, or with train.compile the compiled one "
    "(each inductor kernel and each GEMM one operation; on CUDA its CUDA graphs launch fewer, "
    "so the compiled floor is an upper bound); fused AdamW and foreach clipping / EMA count "
    "one operation each, though a GPU may launch one kernel per chunk of tensors.",
    "Mamba is counted with its pure-PyTorch scan; with mamba-ssm's fused CUDA kernels it "
    "launches fewer operations (not counted).",
    "Sampling: each velocity evaluation of evaluate's batches and of the trajectory snapshots "
    "costs its FLOPs or its kernel operations x the latency; evaluate's metrics on the host "
    "are not in the GPU time.",
    "Every train and evaluate job pays the GPU start-up once; reference, summarize and analyze "
    "run on the CPU and are not in the GPU-hours. Refinement rounds (grid.refine) are not "
    "planned.",
    "CPU: every job's parts timed once on this machine, alone, at the job's threads; the "
    "schedule assumes concurrent jobs do not slow each other; summarize and analyze cost "
    "cpucost.TAIL_JOB_S (fixed + per cell, measured on the 2-core machine).",
]


def disk_bytes(
    counts: dict[tuple[str, str], dict[str, Any]],
    study: StudyConfig,
    data_shape: tuple[int, int],
) -> dict[str, int]:
    """Disk at the end of a run: checkpoints (weights, EMA and two Adam moments each, kept
    ``train.keep_ckpts`` deep) plus the published model per cell, and the prepared dataset
    (every row of the source, float32: ``prepare-data`` splits it, it drops none)."""
    per_params = BYTES_PER_VALUE * (4 * study.train.keep_ckpts + 1)
    n_cells = len(study.grid.n_train) * len(study.grid.seeds)
    cells_bytes = sum(info["n_params"] * per_params * n_cells for info in counts.values())
    rows, dim = data_shape
    return {"cells": cells_bytes, "dataset": rows * dim * BYTES_PER_VALUE}

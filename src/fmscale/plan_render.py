"""The plan (``plan.plan``'s dict) as Markdown: the same figures as ``fmscale plan --json``."""

from __future__ import annotations

from typing import Any

REFERENCE_GPU = "H100 SXM"
"""The GPU whose per-step times the per arch x scale table shows."""


def _same_cost_rows(cells: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """One row per arch x scale x steps, its n_train values joined (an iso-step study costs the
    same at every n_train)."""
    rows: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for c in cells:
        rows.setdefault((c["arch"], c["scale"], c["steps"]), []).append(c)
    return [(g[0], ", ".join(str(c["n_train"]) for c in g)) for g in rows.values()]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def render(p: dict[str, Any]) -> str:
    """The plan as Markdown."""
    a, grid, prec = p["assumptions"], p["grid"], p["precision"]
    jobs = p["jobs"]
    phases = list(p["ops"][0]["ops"]) if p["ops"] else []  # fmscale.opcount's, in order
    lines = [
        f"# Plan: {p['source']}",
        "",
        f"Grid: {len(grid['archs'])} archs x {len(grid['scales'])} scales x "
        f"{len(grid['n_train'])} n_train x {len(grid['seeds'])} seeds; D = {p['data_dim']}; "
        f"batch {p['batch_size']}; CUDA precision {prec}.",
        "",
        "| rule | jobs |",
        "|---|---:|",
        *(f"| {rule} | {n} |" for rule, n in jobs.items()),
        f"| total | {sum(jobs.values())} |",
        "",
        "## Operations per training step",
        "",
        "aten operations one eager trainer step dispatches (fmscale.opcount: batch draw, forward"
        " + loss, backward, gradient clipping, fused AdamW, EMA), by phase; views launch no"
        " kernel; kernels = operations - views; sample = one velocity evaluation of sampling."
        f" {REFERENCE_GPU} per step: FLOPs at {a['utilisation']:.0%} of the {prec} peak vs"
        f" kernels x {a['op_latency_us']:g} us.",
        "",
        "| arch | scale | params | " + " | ".join(phases) + " | ops | views | kernels | sample"
        " kernels | FLOPs/step | compute us | launch us | bound |",
        "|---|---|" + "---:|" * (len(phases) + 10),
    ]
    peak = p["gpu_peak_tflops"][REFERENCE_GPU] * 1e12 * a["utilisation"]
    for o in p["ops"]:
        compute = o["train_flops_per_step"] / peak * 1e6
        launch = o["kernel_ops"] * a["op_latency_us"]
        by_phase = " | ".join(str(o["ops"][ph]) for ph in phases)
        lines.append(
            f"| {o['arch']} | {o['scale']} | {o['n_params']:,} | {by_phase} | {o['total_ops']} | "
            f"{sum(o['views'].values())} | {o['kernel_ops']} | {o['sample_kernel_ops']} | "
            f"{o['train_flops_per_step']:.3g} | {compute:.3g} | {launch:.3g} | "
            f"{'launch' if launch > compute else 'FLOPs'} |"
        )
    estimated = sorted({o["flops_estimated_part"] for o in p["ops"] if o["flops_estimated_part"]})
    if estimated:
        lines += ["", f"FLOPs estimated, not counted: {'; '.join(estimated)}."]
    lines += [
        "",
        "## GPU-hours",
        "",
        "Per cell (one seed), on the "
        f"{REFERENCE_GPU}: train FLOPs = one counted step x steps; eval FLOPs = evaluate's samples"
        " at every NFE plus the trajectory snapshots; hours with the launch floor = steps x"
        " max(compute, launch) + sampling bounded alike.",
        "",
        "| arch | scale | n_train | steps | train FLOPs | eval FLOPs | FLOPs-only s |"
        " with launch floor s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c, sizes in _same_cost_rows(p["cells"]):
        g = c["gpu_s"][REFERENCE_GPU]
        lines.append(
            f"| {c['arch']} | {c['scale']} | {sizes} | {c['steps']:,} | {c['train_flops']:.3g} | "
            f"{c['eval_flops']:.3g} | {g['flops_only_s']:.3g} | {g['with_launch_floor_s']:.3g} |"
        )
    lines += [
        "",
        f"Whole study ({len(grid['seeds'])} seeds), GPU-hours at {a['utilisation']:.0%} of the"
        f" dense {prec} peak; launch floor at {a['op_latency_us']:g} us per kernel operation;"
        f" start-up {a['gpu_job_start_s']:g} s per {' and '.join(a['gpu_rules'])} job:",
        "",
        f"| GPU | {prec} peak TFLOP/s | FLOPs only | with launch floor | + job start-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for gpu, h in p["gpu_hours"].items():
        lines.append(
            f"| {gpu} | {p['gpu_peak_tflops'][gpu]:g} | {h['flops_only']:.3g} | "
            f"{h['with_launch_floor']:.3g} | {h['with_launch_floor_and_startup']:.3g} |"
        )
    lines += _cpu_lines(p["cpu"])
    lines += [
        "",
        f"Disk: {p['disk']['cells'] / 1e9:.3g} GB of checkpoints and models, "
        f"{p['disk']['dataset'] / 1e9:.3g} GB of prepared data.",
        "",
        "## Assumptions",
        "",
        f"- Utilisation {a['utilisation']:.0%} of the dense peak (`--utilisation`).",
        f"- {a['op_latency_us']:g} us per kernel operation (`--op-latency-us`): "
        f"{a['op_latency_source']}.",
        f"- {a['gpu_job_start_s']:g} s start-up per GPU job (`--gpu-job-start-s`).",
        *(f"- {note}" for note in a["notes"]),
    ]
    return "\n".join(lines) + "\n"


def _cpu_lines(cpu: dict[str, Any] | None) -> list[str]:
    if cpu is None:
        return ["", "CPU wall time: not measured (`--cpu-steps 0`)."]
    lines = [
        "",
        "## This CPU",
        "",
        f"Predicted wall time of `snakemake --cores {cpu['cores']}`: "
        f"**{_minutes(cpu['wall_s'])}** (median over orders of ready jobs; range"
        f" {cpu['wall_s_range'][0]:.0f}-{cpu['wall_s_range'][1]:.0f} s; {cpu['threads_per_job']}"
        f" thread(s) per job; one job at a time: {_minutes(cpu['one_job_at_a_time_s'])})."
        f" Job start-up measured: train {cpu['startup_s']['train']:.2f} s, others"
        f" {cpu['startup_s']['other']:.2f} s; Snakemake start {cpu['snakemake_start_s']:g} s.",
        "",
        "| rule | job-seconds |",
        "|---|---:|",
        *(f"| {rule} | {s:.0f} |" for rule, s in cpu["job_seconds_by_rule"].items()),
        "",
        "| arch | scale | s/step | train fixed s | snapshot s | evaluate s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for a in cpu["per_arch"]:
        lines.append(
            f"| {a['arch']} | {a['scale']} | {a['step_s']:.4f} | {a['train_fixed_s']:.2f} | "
            f"{a['snapshot_s']:.2f} | {a['evaluate_s']:.2f} |"
        )
    return lines

"""Command line: ``fmscale params | table | prepare-data | train | evaluate | reference |
summarize | analyze | migrate | plan``."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from . import __version__
from .config import (
    DEVICES,
    PARAMETERISATIONS,
    SOLVERS,
    AnalysisConfig,
    PlanAssumptions,
    SyntheticConfig,
    TrainConfig,
)
from .errors import (
    CannotWrite,
    CellBusy,
    ConfigError,
    DataError,
    NonFiniteLoss,
    OutOfMemory,
    Preempted,
    RequiresFused,
)
from .record import ANALYSIS_N_SAMPLES


def _cmd_params(args: argparse.Namespace) -> int:
    from .params import check_gate

    data_dim = args.data_dim
    if args.dataset:
        from .data import Dataset

        data_dim = Dataset.peek_dim(args.dataset)
    gate = check_gate(
        args.table,
        data_dim,
        args.allow_off_ratio,
        args.archs,
        args.parameterisation,
        args.fit,
    )
    gate.record(args.out_csv, args.out_md, args.out_table)
    if gate.error:
        print(gate.error, file=sys.stderr)
        return 1
    print(gate.markdown, end="")
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    from .params import check_gate

    gate = check_gate(
        args.source, args.data_dim, False, args.archs, args.parameterisation, True, args.targets
    )
    if gate.error:
        print(gate.error, file=sys.stderr)
        return 1
    print(gate.markdown, end="")
    if args.out:
        import dataclasses
        import shlex

        command = shlex.join(["fmscale", *args.argv])
        gate = dataclasses.replace(gate, header=f"{gate.header}\nWritten by: {command}")
        gate.record(out_table=args.out)
        print(f"\n{args.out}: the fitted table; use it with scaling_table: {args.out}")
    return 0


def _targets(text: str) -> dict[str, int]:
    """An argparse type: ``scale=params,...``."""
    try:
        pairs = [item.split("=") for item in text.split(",")]
        return {scale.strip(): int(float(n)) for scale, n in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give scale=params pairs, e.g. tiny=130000,small=520000,base=2100000"
        ) from None


def _settings(args: argparse.Namespace) -> dict:
    """The sections (data, train, evaluate, grid) of ``--config`` or ``--settings``, checked."""
    import json

    from .config import ConfigError, check_sections, read_yaml

    raw, where = {}, None
    if getattr(args, "settings", None):
        where = "--settings"
        try:
            raw = json.loads(args.settings)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings is not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError("--settings must be a JSON object of config sections")
    elif getattr(args, "config", None):
        where = args.config
        raw = read_yaml(args.config)
    if where:
        check_sections(raw, where)
    return {k: dict(raw.get(k) or {}) for k in ("data", "train", "evaluate", "grid")}


def _dataset(args: argparse.Namespace, data_section: dict, max_n_train: int):
    from .data import DataConfig, DataError, Dataset, build_dataset

    if getattr(args, "dataset", None):
        if getattr(args, "data", None):
            raise DataError("give --data (raw embeddings) or --dataset (prepared), not both")
        return Dataset.load(args.dataset)
    if getattr(args, "data", None):
        data_section = {**data_section, "source": "file", "path": args.data}
    return build_dataset(DataConfig.from_dict(data_section), max_n_train)


def _cmd_prepare_data(args: argparse.Namespace) -> int:
    data = _dataset(args, _settings(args)["data"], args.max_n_train)
    data.save(args.out)
    print(
        f"{args.out}: {data.source}, train pool {tuple(data.train_pool.shape)}, "
        f"val {len(data.val)}, test {len(data.test)}, fingerprint {data.fingerprint}, "
        f"{data.constant_dims} (near-)constant dimension(s)"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig, from_section
    from .train import CellSpec, train_cell

    settings = _settings(args)
    flags = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "ckpt_every": args.ckpt_every,
        "device": args.device,
        "parameterisation": args.parameterisation,
    }
    if args.ot:
        flags["ot_pairing"] = True
    settings["train"].update({k: v for k, v in flags.items() if v is not None})
    if args.steps is not None or args.epochs is not None:  # a budget flag replaces the config's
        settings["train"].update(steps=args.steps, epochs=args.epochs)
    cfg = from_section(TrainConfig, settings["train"], "train")
    data = _dataset(args, settings["data"], args.n_train)
    if args.data:
        settings["data"].update(source="file", path=args.data)
    spec = CellSpec(args.arch, args.scale, args.n_train, args.seed, args.table)
    cell = train_cell(
        spec, data, cfg, args.out, extra_config=settings, progress=not args.no_progress
    )
    print(
        f"{args.out}: {cell['steps']} steps, {cell['steps_per_s']} steps/s, "
        f"{cell['n_params']:,} params"
    )
    return 0


def _eval_config(args: argparse.Namespace, section: dict):
    from .config import EvalConfig, from_section

    if args.nfe:
        section["nfe"] = args.nfe
    if args.solver:
        section["solver"] = args.solver
    return from_section(EvalConfig, section, "evaluate")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_cell, read_cell

    if args.out:  # a bad output folder fails now, not after sampling
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if not os.access(Path(args.out).parent, os.W_OK):
            raise PermissionError(13, "Permission denied", str(Path(args.out).parent))
    cell = read_cell(args.run)
    stored = cell.get("config", {})
    given = args.config or args.settings
    settings = (
        _settings(args) if given else {k: dict(stored.get(k) or {}) for k in ("data", "evaluate")}
    )
    cfg = _eval_config(args, settings["evaluate"])
    data = _dataset(args, settings["data"], cell["n_train"])
    result = evaluate_cell(
        args.run, data, cfg, args.device, references=args.references, out=args.out
    )
    m = result["metrics"]
    print(
        f"val_loss {result['val_loss']:.4f} (v=0: {result['val_loss_zero_velocity']:.4f}); "
        f"nfe {result['headline_nfe']}: mmd2_pca {m['mmd2_pca']:.4g}, "
        f"precision_pca {m['precision_pca']:.3f}"
    )
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    import json

    from .evaluate import reference_rows
    from .files import atomic_write

    settings = _settings(args)
    cfg = _eval_config(args, settings["evaluate"])
    data = _dataset(args, settings["data"], args.n_train)
    rows = reference_rows(data, args.n_train, cfg)
    out = {
        "n_train": args.n_train,
        "n_samples": min(cfg.n_samples, len(data.test)),
        "solver": cfg.solver,
        "headline_nfe": max(cfg.nfe),
        "references": rows,
    }
    atomic_write(args.out, json.dumps(out, indent=2))
    return 0


def _cmd_summarize(args: argparse.Namespace) -> int:
    from .config import DataConfig
    from .summary import summarize

    settings = _settings(args)
    grid, synthetic = None, None
    if settings["grid"]:
        data = DataConfig.from_dict(settings["data"])
        grid = {"datasets": [data.name], **settings["grid"]}
        synthetic = data.source == "synthetic"
    frame = summarize(args.results, grid, synthetic)
    counts = frame[frame.kind == "model"].status.value_counts()
    print(
        f"{args.results}/summary.md: {int(counts.sum())} cells, "
        f"{counts.get('failed', 0)} failed, {counts.get('stale', 0)} stale"
    )
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from .migrate import migrate_results

    moved = migrate_results(args.results, args.dataset)
    for src, dst in moved:
        print(f"{src} -> {dst}")
    print(f"{args.results}: {len(moved)} file(s) and folder(s) moved; nothing retrained")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis import Settings, analyze

    AnalysisConfig(tuple(args.levels), args.resamples, args.seed).check()  # names the flag's key
    settings = Settings(
        levels=tuple(args.levels),
        resamples=args.resamples,
        seed=args.seed,
        n_samples=args.n_samples,
    )
    report = analyze(args.results, settings, args.data_name)
    verdicts = [fit["verdict"] for fits in report["fits"].values() for fit in fits.values()]
    print(
        f"{args.results}/analysis.md: {verdicts.count('ok')} of {len(verdicts)} fits ok, "
        f"{len(report['checks'])} result check violation(s)"
    )
    return 0


def _cmd_refine(args: argparse.Namespace) -> int:
    import json

    from .config import ConfigError, DataConfig, RefineConfig, from_section
    from .files import atomic_write
    from .refine import propose, refined_cells, round_document

    AnalysisConfig(tuple(args.levels)).check()  # names the flag's key
    settings = _settings(args)
    if settings["grid"]:  # the study's cells from their run folders (the workflow's rounds)
        from .study import cells
        from .summary import cell_rows

        grid = settings["grid"]
        dataset = DataConfig.from_dict(settings["data"]).name
        round_ = args.round or 1
        listed = cells({**grid, "datasets": [dataset]})
        rows = cell_rows(args.results, listed + refined_cells(args.results, dataset, round_ - 1))
        seeds = grid["seeds"]
        refine = from_section(RefineConfig, grid.get("refine"), "grid.refine")
        points = args.points or refine.points
        min_n = refine.min_n if args.min_n is None else args.min_n
    else:  # every finished cell of summary.csv
        if args.round is not None:
            raise ConfigError("--round reads a study's run folders: give --config or --settings")
        from .analysis.rows import one_dataset, read_summary

        path = Path(args.results) / "summary.csv"
        rows, dataset = one_dataset(read_summary(path), args.data_name, path)
        models = rows[rows.kind == "model"]
        seeds = sorted(int(s) for s in models.seed.dropna().unique())
        points, round_ = args.points or RefineConfig.points, None
        min_n = RefineConfig.min_n if args.min_n is None else args.min_n
    proposals = propose(rows, tuple(args.levels), points, min_n)
    for proposal in proposals:
        print(proposal.describe())
    document = round_document(proposals, seeds, dataset, args.levels, points, round_)
    print(f"{len(document['cells'])} new cell(s) ({len(seeds)} seed(s) each n_train)")
    if args.out:
        atomic_write(args.out, json.dumps(document, indent=2) + "\n")
    return 0


def _fraction(one: bool = False):
    """An argparse type: a number in (0, 1), or (0, 1] when ``one`` is allowed."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (0 < value <= 1 if one else 0 < value < 1):
            span = "in (0, 1]" if one else "strictly between 0 and 1"
            raise argparse.ArgumentTypeError(f"{value} must lie {span}")
        return value

    return parse


def _levels_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--levels``, shared by analyze and refine: defaults from ``AnalysisConfig``."""
    levels = AnalysisConfig.levels
    parser.add_argument(
        "--levels",
        type=_fraction(),
        nargs="+",
        default=list(levels),
        help=f"{what}, increasing (default {' '.join(map(str, levels))}; config: analysis.levels)",
    )


def _count(low: int):
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
        return value

    return parse


def _seconds(text: str) -> float:
    """An argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    from .config import merge_configs, read_yaml
    from .cpucost import measure
    from .files import atomic_write
    from .plan import plan
    from .plan_render import render
    from .study import data_shape, load_study

    files = [f for f in [args.base, *args.configfile] if f]
    raw: dict = {}
    for path in files:
        raw = merge_configs(raw, read_yaml(path))
    study = load_study(raw)
    shape = data_shape(study.data)  # the file's rows and D, from its header
    cpu = measure(study, args.cpu_steps) if args.cpu_steps else None
    result = plan(
        study,
        shape,
        " + ".join(map(str, files)),
        args.utilisation,
        args.op_latency_us,
        args.gpu_job_start_s,
        cpu,
        args.cores,
    )
    text = json.dumps(result, indent=2) + "\n" if args.json else render(result)
    if args.out:
        atomic_write(Path(args.out), text.encode())
    print(text, end="")
    return 0


def _device(text: str) -> str:
    """An argparse type: one of DEVICES or cuda:N."""
    if text in DEVICES or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(DEVICES)} or cuda:N")


def _nfe_list(text: str) -> list[int]:
    """An argparse type: comma-separated positive integers, e.g. ``1,4,16``."""
    parse = _count(1)
    return [parse(part.strip()) for part in text.split(",")]


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", help="YAML with data:, train:, evaluate: sections (the workflow's keys)"
    )
    p.add_argument("--settings", help="the same sections as one JSON string (used by the workflow)")
    p.add_argument(
        "--data", help="embeddings file (.npy, .pt, .safetensors, .parquet); default synthetic"
    )
    p.add_argument("--dataset", help="a dataset written by `fmscale prepare-data` (skips building)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmscale", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"fmscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="count parameters per arch x scale and check the ratio gate")
    p.add_argument("--table", help="scaling table YAML (default: the packaged table)")
    p.add_argument(
        "--data-dim",
        type=_count(1),
        default=SyntheticConfig.dim,
        help=f"vector dimension D (default {SyntheticConfig.dim})",
    )
    p.add_argument("--dataset", help="a prepared dataset: take D from it (overrides --data-dim)")
    p.add_argument(
        "--archs", type=lambda text: text.split(","), help="comma-separated archs to gate"
    )
    p.add_argument(
        "--parameterisation",
        choices=PARAMETERISATIONS,
        default=TrainConfig.parameterisation,
        help="the cells' parameterisation (its parameters count)",
    )
    p.add_argument("--out-csv", help="write the table as CSV here")
    p.add_argument("--out-md", help="write the table as Markdown here")
    p.add_argument("--out-table", help="write the table the cells train (YAML) here")
    p.add_argument(
        "--fit", action="store_true", help="fit the table to its capacity targets at D first"
    )
    p.add_argument(
        "--allow-off-ratio", action="store_true", help="record off-ratio verdicts and exit 0"
    )
    p.set_defaults(func=_cmd_params)

    p = sub.add_parser(
        "table", help="fit a scaling table to its capacity targets at a data dimension D"
    )
    p.add_argument("--data-dim", type=_count(1), required=True, help="vector dimension D")
    p.add_argument(
        "--from",
        dest="source",
        default="cpu",
        help="the table: cpu (default), default, original or a YAML file",
    )
    p.add_argument(
        "--parameterisation",
        choices=PARAMETERISATIONS,
        default=TrainConfig.parameterisation,
        help="the cells' parameterisation (its parameters count)",
    )
    p.add_argument(
        "--archs", type=lambda text: text.split(","), help="comma-separated archs to fit"
    )
    p.add_argument(
        "--targets",
        type=_targets,
        help="capacity targets replacing the table's, e.g. tiny=130000,small=520000,base=2.1e6",
    )
    p.add_argument("-o", "--out", help="write the fitted table (YAML) here")
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("prepare-data", help="build, split and standardise a dataset once")
    _add_data_flags(p)
    p.add_argument("--max-n-train", type=_count(1), required=True, help="largest n_train")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.set_defaults(func=_cmd_prepare_data)

    p = sub.add_parser("train", help="train (or resume) one cell")
    p.add_argument("--arch", required=True)
    p.add_argument("--scale", help="scale name (default: the table's default)")
    p.add_argument("--n-train", type=_count(1), required=True)
    p.add_argument("--seed", type=_count(0), default=0)
    p.add_argument("--table", help="scaling table YAML (default: packaged)")
    p.add_argument("--out", required=True, help="run folder (checkpoints in <out>/ckpt)")
    _add_data_flags(p)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_count(1), help="budget: optimizer steps")
    budget.add_argument("--epochs", type=float, help="budget: passes over the cell's rows")
    p.add_argument("--batch-size", type=_count(1))
    p.add_argument("--lr", type=float)
    p.add_argument("--ckpt-every", type=_count(1))
    p.add_argument("--device", type=_device)
    p.add_argument("--parameterisation", choices=PARAMETERISATIONS)
    p.add_argument("--ot", action="store_true", help="minibatch OT pairing of noise and data")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=_count(1), help="CPU threads for torch")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "summarize", help="summary tables and plots from finished cells (no training)"
    )
    p.add_argument("results", help="results folder of a study")
    p.add_argument("--config", help="study config (its grid: lists missing cells as failed)")
    p.add_argument("--settings", help="the same as one JSON string")
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser(
        "analyze", help="scaling-law fits, memorisation onset, comparisons, result checks"
    )
    p.add_argument("results", help="results folder holding summary.csv (and trajectories.csv)")
    defaults = AnalysisConfig()
    _levels_argument(p, "memorised_fraction levels of n* and tau_mem")
    p.add_argument(
        "--resamples",
        type=_count(10),
        default=defaults.resamples,
        help=f"bootstrap resamples (default {defaults.resamples}; config: analysis.resamples)",
    )
    p.add_argument(
        "--seed",
        type=_count(0),
        default=defaults.seed,
        help=f"bootstrap seed (default {defaults.seed}; config: analysis.seed)",
    )
    p.add_argument(
        "--n-samples",
        type=_count(1),
        default=ANALYSIS_N_SAMPLES,
        help="samples behind each memorised_fraction of a summary.csv written before its "
        f"n_samples column (default {ANALYSIS_N_SAMPLES})",
    )
    p.add_argument(
        "--data-name",
        help="the dataset to analyse, when summary.csv holds several (its data.name)",
    )
    p.set_defaults(func=_cmd_analyze)

    from .config import RefineConfig

    p = sub.add_parser(
        "refine",
        help="n_train values to add where memorised_fraction crosses its levels (docs/refine.md)",
    )
    p.add_argument("results", help="results folder holding summary.csv")
    _levels_argument(p, "memorised_fraction levels bracketed")
    p.add_argument(
        "--points",
        type=_count(1),
        help=f"n_train values per bracket (default {RefineConfig.points}; "
        "config: grid.refine.points)",
    )
    p.add_argument(
        "--min-n",
        type=_count(0),
        help="look below the grid for a crossing there, down to this n_train (default "
        f"{RefineConfig.min_n}: never; config: grid.refine.min_n)",
    )
    p.add_argument(
        "--data-name", help="the dataset, when summary.csv holds several (its data.name)"
    )
    p.add_argument("-o", "--out", help="write the proposals and new cells (JSON) here")
    p.add_argument(
        "--config",
        help="study config: read its grid's cells (and earlier rounds') from their run folders, "
        "not summary.csv",
    )
    p.add_argument("--settings", help="the same as one JSON string (the workflow's)")
    p.add_argument(
        "--round",
        type=_count(1),
        help="with --config / --settings: the round, reading the cells of rounds before it "
        "(default 1)",
    )
    p.set_defaults(func=_cmd_refine)

    p = sub.add_parser(
        "migrate",
        help="move a results folder of the old layout (runs/<arch>/...) under dataset names",
    )
    p.add_argument("results", help="results folder")
    p.add_argument(
        "--dataset", help="dataset name for every old cell (default: what its cell.json recorded)"
    )
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser(
        "plan",
        help="what a study costs before it runs (jobs, FLOPs, operations, GPU-hours, CPU time)",
    )
    p.add_argument(
        "--configfile",
        action="append",
        default=[],
        help="study config merged over --base, as snakemake --configfile (repeatable)",
    )
    p.add_argument(
        "--base", default="config.yaml", help="the Snakefile's config (default config.yaml)"
    )
    p.add_argument(
        "--utilisation",
        type=_fraction(one=True),
        default=PlanAssumptions.utilisation,
        help=f"assumed share of the GPU's peak FLOP/s (default {PlanAssumptions.utilisation})",
    )
    p.add_argument(
        "--op-latency-us",
        type=_seconds,
        default=PlanAssumptions.op_latency_us,
        help="assumed microseconds per kernel operation on a GPU, the launch floor "
        f"(default {PlanAssumptions.op_latency_us:g})",
    )
    p.add_argument(
        "--gpu-job-start-s",
        type=_seconds,
        default=PlanAssumptions.gpu_job_start_s,
        help=f"assumed start-up seconds per GPU job (default {PlanAssumptions.gpu_job_start_s:g})",
    )
    p.add_argument(
        "--cpu-steps",
        type=_count(0),
        default=PlanAssumptions.cpu_steps,
        help="timed training steps per arch x scale on this CPU; 0: no CPU timing and no wall "
        f"time (default {PlanAssumptions.cpu_steps})",
    )
    p.add_argument(
        "--cores",
        type=_count(1),
        default=os.cpu_count() or 1,
        help="cores of the snakemake --cores N run whose wall time is predicted "
        "(default: this machine's)",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON (docs/plan.md)")
    p.add_argument("--out", help="also write the plan (Markdown, or JSON with --json) here")
    p.set_defaults(func=_cmd_plan)

    for name, func, help_ in [
        ("evaluate", _cmd_evaluate, "score a trained cell"),
        ("reference", _cmd_reference, "score the reference rows for one n_train"),
    ]:
        p = sub.add_parser(name, help=help_)
        if name == "evaluate":
            p.add_argument("run", help="run folder written by `fmscale train`")
            p.add_argument("--references", action="store_true", help="add the reference rows")
            p.add_argument("--device", default="auto", type=_device)
            p.add_argument("--out", help="metrics file (default: <run>/metrics.json)")
        else:
            p.add_argument("--n-train", type=_count(1), required=True)
            p.add_argument("--out", required=True)
        p.add_argument("--threads", type=_count(1), help="CPU threads for torch")
        _add_data_flags(p)
        p.add_argument("--nfe", type=_nfe_list, help="comma-separated NFEs, e.g. 1,4,16,64")
        p.add_argument("--solver", choices=list(SOLVERS))
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # what a written file says made it
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except Preempted as exc:
        print(f"preempted: {exc}", file=sys.stderr)
        return 143
    except NonFiniteLoss as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except CellBusy as exc:  # another process trains into the same --out
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except OutOfMemory as exc:  # names the estimated sizes and what to lower
        print(f"error: {exc}", file=sys.stderr)
        return 6
    except CannotWrite as exc:  # read-only folder, full disk: names the path
        print(f"error: {exc}", file=sys.stderr)
        return 74  # EX_IOERR
    except (ConfigError, DataError, ValueError, RequiresFused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: cannot write or read {where}{exc.strerror or exc}", file=sys.stderr)
        return 74  # EX_IOERR


if __name__ == "__main__":
    sys.exit(main())

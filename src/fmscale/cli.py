"""Command line: ``fmscale params | table | prepare-data | train | evaluate | reference |
summarize | analyze | migrate | plan | export``."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from . import __version__, commands
from .config import DEVICES, PARAMETERISATIONS, SOLVERS, SyntheticConfig, TrainConfig
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
from .study_config import AnalysisConfig, PlanAssumptions


def _targets(text: str) -> dict[str, int]:
    """An argparse type: ``scale=params,...``."""
    try:
        pairs = [item.split("=") for item in text.split(",")]
        return {scale.strip(): int(float(n)) for scale, n in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give scale=params pairs, e.g. tiny=130000,small=520000,base=2100000"
        ) from None


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
    p.set_defaults(func=commands.cmd_params)

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
    p.set_defaults(func=commands.cmd_table)

    p = sub.add_parser("prepare-data", help="build, split and standardise a dataset once")
    _add_data_flags(p)
    p.add_argument("--max-n-train", type=_count(1), required=True, help="largest n_train")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.set_defaults(func=commands.cmd_prepare_data)

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
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser(
        "summarize", help="summary tables and plots from finished cells (no training)"
    )
    p.add_argument("results", help="results folder of a study")
    p.add_argument("--config", help="study config (its grid: lists missing cells as failed)")
    p.add_argument("--settings", help="the same as one JSON string")
    p.set_defaults(func=commands.cmd_summarize)

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
    p.set_defaults(func=commands.cmd_analyze)

    from .study_config import RefineConfig

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
    p.set_defaults(func=commands.cmd_refine)

    p = sub.add_parser(
        "migrate",
        help="move a results folder of the old layout (runs/<arch>/...) under dataset names",
    )
    p.add_argument("results", help="results folder")
    p.add_argument(
        "--dataset", help="dataset name for every old cell (default: what its cell.json recorded)"
    )
    p.set_defaults(func=commands.cmd_migrate)

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
    p.set_defaults(func=commands.cmd_plan)

    from .export import TRACKERS  # torch-free

    p = sub.add_parser(
        "export", help="a study's trained cells as TensorBoard or MLflow runs (docs/export.md)"
    )
    p.add_argument("results", help="results folder of a study (finished or partial)")
    p.add_argument("--to", required=True, choices=TRACKERS, help="the tracker")
    p.add_argument("--out", help="tensorboard: the log folder (default <results>/tensorboard)")
    p.add_argument(
        "--tracking-uri", help="mlflow: the tracking store (default sqlite:///<results>/mlflow.db)"
    )
    p.add_argument(
        "--experiment", help="mlflow: the experiment (default: the results folder's name)"
    )
    p.set_defaults(func=commands.cmd_export)

    for name, func, help_ in [
        ("evaluate", commands.cmd_evaluate, "score a trained cell"),
        ("reference", commands.cmd_reference, "score the reference rows for one n_train"),
    ]:
        p = sub.add_parser(name, help=help_)
        if name == "evaluate":
            p.add_argument("run", help="run folder written by `fmscale train`")
            p.add_argument("--references", action="store_true", help="add the reference rows")
            p.add_argument("--device", default=TrainConfig.device, type=_device)
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

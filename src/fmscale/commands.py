"""What each ``fmscale`` subcommand does with its parsed arguments (``fmscale.cli`` parses them).

Each command imports what it needs when it runs, so ``fmscale summarize`` / ``analyze`` start
without torch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import TrainConfig
from .errors import (
    ConfigError,
)
from .study_config import AnalysisConfig


def cmd_params(args: argparse.Namespace) -> int:
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


def cmd_table(args: argparse.Namespace) -> int:
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


def _settings(args: argparse.Namespace) -> dict:
    """The sections (data, train, evaluate, grid) of ``--config`` or ``--settings``, checked."""
    import json

    from .configfiles import read_yaml
    from .study_config import check_sections

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


def cmd_prepare_data(args: argparse.Namespace) -> int:
    data = _dataset(args, _settings(args)["data"], args.max_n_train)
    data.save(args.out)
    print(
        f"{args.out}: {data.source}, train pool {tuple(data.train_pool.shape)}, "
        f"val {len(data.val)}, test {len(data.test)}, fingerprint {data.fingerprint}, "
        f"{data.constant_dims} (near-)constant dimension(s)"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import from_section
    from .train.cell import train_cell
    from .train.loop import CellSpec

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


def cmd_evaluate(args: argparse.Namespace) -> int:
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


def cmd_reference(args: argparse.Namespace) -> int:
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


def cmd_summarize(args: argparse.Namespace) -> int:
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


def cmd_migrate(args: argparse.Namespace) -> int:
    from .migrate import migrate_results

    moved = migrate_results(args.results, args.dataset)
    for src, dst in moved:
        print(f"{src} -> {dst}")
    print(f"{args.results}: {len(moved)} file(s) and folder(s) moved; nothing retrained")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis.rows import Settings
    from .analysis.run import analyze

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


def cmd_refine(args: argparse.Namespace) -> int:
    import json

    from .config import DataConfig, from_section
    from .files import atomic_write
    from .refine import propose, refined_cells, round_document
    from .study_config import RefineConfig

    AnalysisConfig(tuple(args.levels)).check()  # names the flag's key
    settings = _settings(args)
    if settings["grid"]:  # the study's cells from their run folders (the workflow's rounds)
        from .layout import cells
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


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from .configfiles import merge_configs, read_yaml
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    for line in export(args.results, args.to, args.out, args.tracking_uri, args.experiment):
        print(line)
    return 0

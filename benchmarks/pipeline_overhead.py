"""Fixed costs of the fmscale pipeline: DAG building, imports on the DAG path, per-job overhead.

    python benchmarks/pipeline_overhead.py [--repeat 5] [--cells mlp/small,dit/tiny] [--out DIR]

Measures, in fresh temporary folders (nothing in the repository is written but the results):

1. ``snakemake -n --cores 1`` on the default grid (config.yaml) and on a 4 x 3 x 5 x 3 = 180-cell
   grid: median and min wall time of --repeat runs and the number of jobs planned (target: 180
   cells in <= 5 s). Each is timed as installed and with ``scontrol`` stubbed out, because
   snakemake-executor-plugin-slurm runs ``scontrol show config`` whenever snakemake starts.
2. Which heavy modules the dry-run process imports, and who imported each first (the Python stack
   at that import: snakemake itself, or the Snakefile / fmscale code); the import time of torch,
   fmscale.study, fmscale.cli and fmscale.train.cell in fresh interpreters.
3. One ``fmscale train`` job per --cells entry, invoked as workflow/rules/train.smk does at the
   default config (after ``fmscale prepare-data``): process wall time, the training time recorded
   in cell.json (``wall_time_s``), the fixed cost between them and its parts, timed in the same
   process by wrapping the package's functions (imports, data load, AdamW and model build,
   checkpoint and weight writing).

Run it with the project's environment active (snakemake and fmscale are taken from the folder of
this Python). Prints a Markdown table and writes it to DIR/pipeline_overhead.md and .csv (default
benchmarks/results). About 5 minutes on a 2-core CPU at the defaults.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    cpu_model,
    markdown_table,
    report_head,
    run_lines,
    versions_line,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
TITLE = "fmscale pipeline overhead"
BIN = Path(sys.executable).parent
HEAVY = ("torch", "pandas", "matplotlib", "scipy", "numpy")
BIG_GRID = {
    "archs": ["mlp", "dit", "unet", "mamba"],
    "scales": ["tiny", "small", "base"],
    "n_train": [250, 500, 1000, 2000, 4000],
    "seeds": [0, 1, 2],
}
DAG_TARGET_S = 5.0
DRY_RUN = ("-n", "--cores", "1", "--quiet", "rules")
PARSE_ONLY = ("--list-rules",)


@dataclass
class Row:
    """One line of the result table; ``value`` is the median where ``min`` is given."""

    section: str
    measurement: str
    value: str
    min: str
    unit: str
    detail: str


def seconds(x: float) -> str:
    """Seconds as the table prints them."""
    return f"{x:.3f}"


def timed_run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd`` to completion; return its wall time and the finished process. Fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return wall, proc


def repo_config() -> dict[str, Any]:
    """The repository's config.yaml, as written (no schema defaults)."""
    import yaml

    return yaml.safe_load((REPO / "config.yaml").read_text())


def write_config(config: dict[str, Any], grid: dict[str, list], folder: Path) -> Path:
    """The repo's config with ``grid`` and results inside ``folder``; returns the YAML's path."""
    import yaml

    cfg = {**copy.deepcopy(config), "grid": grid, "results": str(folder / "results")}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def stubbed_env(folder: Path) -> dict[str, str]:
    """os.environ with, first on PATH, a ``scontrol`` that fails at once.

    The SLURM executor plugin asks ``scontrol show config`` for MinJobAge when it is imported,
    which is on every snakemake start; with SLURM's client installed and no controller reachable
    that call waits for its connection timeout.
    """
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def snakemake_cmd(config_path: Path, workdir: Path, mode: tuple[str, ...]) -> list[str]:
    """snakemake on the repository's Snakefile, run in ``workdir`` with ``config_path``."""
    return [
        str(BIN / "snakemake"),
        *mode,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
    ]


def planned_jobs(output: str) -> int:
    """The ``total`` line of snakemake's job stats."""
    match = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no job stats in the dry run's output:\n{output[-2000:]}")
    return int(match.group(1))


def time_snakemake(
    config: dict[str, Any],
    grid: dict[str, list],
    mode: tuple[str, ...],
    repeat: int,
    env: dict[str, str],
    tmp: Path,
) -> tuple[list[float], list[str]]:
    """Wall times and outputs of ``repeat`` snakemake runs, each in a fresh working folder."""
    times, outputs = [], []
    for i in range(repeat):
        folder = Path(tempfile.mkdtemp(prefix=f"dag{i}-", dir=tmp))
        cmd = snakemake_cmd(write_config(config, grid, folder), folder, mode)
        wall, proc = timed_run(cmd, folder, env)
        times.append(wall)
        outputs.append(proc.stdout + proc.stderr)
    return times, outputs


def n_cells(grid: dict[str, list]) -> int:
    """arch x scale x n_train x seed."""
    return len(grid["archs"]) * len(grid["scales"]) * len(grid["n_train"]) * len(grid["seeds"])


def timing_row(section: str, measurement: str, times: list[float], detail: str) -> Row:
    """Median and min of ``times`` in seconds."""
    return Row(
        section,
        measurement,
        seconds(statistics.median(times)),
        seconds(min(times)),
        "s",
        f"{detail}; n={len(times)}",
    )


def bench_dag(config: dict[str, Any], repeat: int, tmp: Path) -> list[Row]:
    """Startup floor, Snakefile parse and dry runs, as installed and with scontrol stubbed."""
    variants = {"as installed": dict(os.environ), "scontrol stubbed": stubbed_env(tmp)}
    rows = []
    for variant, env in variants.items():
        times = [
            timed_run([str(BIN / "snakemake"), "--version"], tmp, env)[0] for _ in range(repeat)
        ]
        rows.append(
            timing_row(
                "dag", f"snakemake --version, {variant}", times, "startup floor of every call"
            )
        )
    stubbed = variants["scontrol stubbed"]
    times, _ = time_snakemake(config, BIG_GRID, PARSE_ONLY, repeat, stubbed, tmp)
    rows.append(
        timing_row(
            "dag",
            f"snakemake --list-rules, {n_cells(BIG_GRID)} cells, scontrol stubbed",
            times,
            "startup + Snakefile parse, no DAG",
        )
    )
    for name, grid in [("default grid", config["grid"]), ("4x3x5x3 grid", BIG_GRID)]:
        for variant, env in variants.items():
            times, outputs = time_snakemake(config, grid, DRY_RUN, repeat, env, tmp)
            jobs = {planned_jobs(out) for out in outputs}
            if len(jobs) != 1:
                raise RuntimeError(f"dry runs planned different job counts: {sorted(jobs)}")
            detail = f"{jobs.pop()} jobs planned"
            if grid is BIG_GRID:
                verdict = "PASS" if statistics.median(times) <= DAG_TARGET_S else "FAIL"
                detail += f"; target <= {DAG_TARGET_S:g} s: {verdict}"
            rows.append(
                timing_row(
                    "dag", f"snakemake -n, {name} ({n_cells(grid)} cells), {variant}", times, detail
                )
            )
    return rows


def assert_not_imported(modules: tuple[str, ...]) -> None:
    """Fail if any of ``modules`` is already loaded: a probe would then miss or mistime it."""
    loaded = [name for name in modules if name in sys.modules]
    if loaded:
        raise RuntimeError(f"imported before the probe started: {', '.join(loaded)}")


def probe_imports(out: str, argv: list[str]) -> None:
    """Run snakemake's CLI in this process, recording the stack of each heavy module's import.

    Called in a child process by ``heavy_imports``; writes {module: record} as JSON to ``out``.
    """
    import importlib.abc

    assert_not_imported(HEAVY)
    found: dict[str, Any] = {}
    workflow_files = (
        str(REPO / "Snakefile"),
        str(REPO / "workflow"),
        str(REPO / "src" / "fmscale"),
    )

    class Recorder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
            root = fullname.partition(".")[0]
            if root in HEAVY and root not in found:
                stack = _stack_files()
                callers = [
                    f
                    for f in stack
                    if not f.startswith("<frozen")
                    and "/importlib/" not in f
                    and f"/{root}/" not in f
                ]
                found[root] = {
                    "importer": callers[0] if callers else "?",
                    "via_workflow": any(f.startswith(workflow_files) for f in stack),
                }
            return None

    sys.meta_path.insert(0, Recorder())
    from snakemake.cli import main

    sys.argv = ["snakemake", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        Path(out).write_text(json.dumps(found))


def _stack_files() -> list[str]:
    """File names of the calling frames, innermost first, without this helper and its caller."""
    frame = sys._getframe(2)
    files = []
    while frame is not None:
        files.append(frame.f_code.co_filename)
        frame = frame.f_back
    return files


def short_path(path: str) -> str:
    """A file path from site-packages or the repository on."""
    for marker in ("site-packages/", f"{REPO}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def heavy_imports(config: dict[str, Any], tmp: Path) -> list[Row]:
    """Heavy modules imported by one dry run of the default grid, and by whom.

    Only a module's first import is seen: one the Snakefile repeats after snakemake loaded it is
    a cache hit. ``bench_imports`` lists what fmscale.study loads in a fresh interpreter.
    """
    folder = Path(tempfile.mkdtemp(prefix="imports-", dir=tmp))
    argv = snakemake_cmd(write_config(config, config["grid"], folder), folder, DRY_RUN)[1:]
    out = folder / "imports.json"
    code = (
        f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); "
        f"from pipeline_overhead import probe_imports; probe_imports({str(out)!r}, {argv!r})"
    )
    timed_run([sys.executable, "-c", code], folder)
    found = json.loads(out.read_text())
    rows = []
    for name in HEAVY:
        record = found.get(name)
        if record is None:
            rows.append(Row("imports", f"dry run imports {name}", "no", "", "", ""))
            continue
        via = "yes" if record["via_workflow"] else "no"
        detail = f"first by {short_path(record['importer'])}; Snakefile/fmscale on the stack: {via}"
        rows.append(Row("imports", f"dry run imports {name}", "yes", "", "", detail))
    return rows


def import_times(module: str, repeat: int, tmp: Path, after: str = "") -> list[float]:
    """Seconds to import ``module`` in ``repeat`` fresh interpreters, each after ``after``.

    Interpreter startup, the ``after`` import and exit are excluded.
    """
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    if after:
        code = f"import {after}; {code}"
    return [float(timed_run([sys.executable, "-c", code], tmp)[1].stdout) for _ in range(repeat)]


def third_party_imports(module: str, tmp: Path) -> list[str]:
    """Top-level non-stdlib packages that a fresh ``import module`` adds to sys.modules."""
    code = (
        "import json, sys; before = set(sys.modules); "
        f"import {module}; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    loaded = json.loads(timed_run([sys.executable, "-c", code], tmp)[1].stdout)
    own = module.partition(".")[0]
    roots = {name.partition(".")[0] for name in loaded}
    return sorted(
        r for r in roots if r not in sys.stdlib_module_names and r != own and not r.startswith("_")
    )


def describe_packages(packages: list[str]) -> str:
    """All names when few, else the heavy ones and a count."""
    if len(packages) <= 6:
        return f"third-party: {', '.join(packages) or 'none'}"
    heavy = ", ".join(p for p in packages if p in HEAVY) or "none"
    return f"heavy: {heavy}; third-party: {len(packages)} packages"


def bench_imports(repeat: int, tmp: Path) -> list[Row]:
    """Interpreter start and exit, and fresh-interpreter import times of torch and fmscale."""
    rows = []
    for code, what in [
        ("pass", "interpreter start + exit"),
        ("import torch", "start + import + exit: exit is slow once torch is loaded"),
    ]:
        times = [timed_run([sys.executable, "-c", code], tmp)[0] for _ in range(repeat)]
        rows.append(timing_row("imports", f"python -c '{code}', process wall", times, what))
    times = import_times("torch._dynamo", repeat, tmp, after="torch")
    rows.append(
        timing_row(
            "imports",
            "import torch._dynamo, torch already imported",
            times,
            "torch.optim.Optimizer.__init__ imports it on first use",
        )
    )
    for module in ("torch", "fmscale.study", "fmscale.cli", "fmscale.train.cell"):
        times = import_times(module, repeat, tmp)
        detail = describe_packages(third_party_imports(module, tmp))
        rows.append(timing_row("imports", f"import {module}", times, detail))
    return rows


def _wrap(owner: Any, name: str, label: str, times: dict[str, list[float]]) -> None:
    """Replace ``owner.name`` by a wrapper that appends each call's duration to times[label]."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times.setdefault(label, []).append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def probe_train(t0: float, out: str, argv: list[str]) -> None:
    """Run ``fmscale <argv>`` in this process with its stages timed; write them as JSON to ``out``.

    ``t0`` is perf_counter() at the first statement of the child, before any import.
    """
    assert_not_imported(("torch", "fmscale"))
    times: dict[str, list[float]] = {}
    start = time.perf_counter()
    import torch

    import fmscale.cli
    import fmscale.config  # cmd_train imports .config, .data and .train.cell before it trains
    import fmscale.data
    import fmscale.train.cell
    from fmscale.checkpoint import CheckpointStore
    from fmscale.train.loop import Trainer

    times["imports"] = [time.perf_counter() - start]
    _wrap(fmscale.data.Dataset, "load", "data_load", times)
    _wrap(Trainer, "__init__", "model_build", times)
    _wrap(torch.optim.AdamW, "__init__", "adamw", times)
    _wrap(Trainer, "run", "train_run", times)
    _wrap(fmscale.train.cell, "save_weights", "save_weights", times)  # train_cell's names
    _wrap(fmscale.train.cell, "git_revision", "git_revision", times)
    _wrap(CheckpointStore, "save", "checkpoint_save", times)
    code = fmscale.cli.main(argv)
    times["inside"] = [time.perf_counter() - t0]
    Path(out).write_text(json.dumps({"code": code, "times": times}))


def settings_json(config: dict[str, Any], *sections: str) -> str:
    """``--settings`` as the workflow passes it: the resolved sections of the study config."""
    from fmscale.study import load_study, settings

    return settings(load_study(config), *sections)


def prepare_data(config: dict[str, Any], folder: Path) -> tuple[Path, float]:
    """``fmscale prepare-data`` as workflow/rules/data.smk runs it; returns (dataset, seconds)."""
    dataset = folder / "results" / "data" / config["data"]["name"] / "pool.safetensors"
    cmd = [
        str(BIN / "fmscale"),
        "prepare-data",
        "--settings",
        settings_json(config, "data"),
        "--max-n-train",
        str(max(config["grid"]["n_train"])),
        "--out",
        str(dataset),
    ]
    wall, _ = timed_run(cmd, folder)
    return dataset, wall


def train_argv(
    config: dict[str, Any], arch: str, scale: str, n_train: int, dataset: Path, out: Path
) -> list[str]:
    """The arguments workflow/rules/train.smk gives ``fmscale`` for one cell (seed 0)."""
    table = ["--table", config["scaling_table"]] if config.get("scaling_table") else []
    threads = (config.get("resources") or {}).get("train_threads", 1)
    return [
        "train",
        "--arch",
        arch,
        "--scale",
        scale,
        "--n-train",
        str(n_train),
        "--seed",
        "0",
        *table,
        "--dataset",
        str(dataset),
        "--settings",
        settings_json(config, "data", "train"),
        "--threads",
        str(threads),
        "--out",
        str(out),
        "--no-progress",
    ]


def bench_train_cell(
    config: dict[str, Any], cell: str, n_train: int, dataset: Path, folder: Path
) -> list[Row]:
    """One train job with its stages timed: total, training, fixed cost and its parts."""
    arch, scale = cell.split("/")
    run_dir = folder / "results" / "runs" / arch / scale / f"n{n_train}" / "seed0"
    argv = train_argv(config, arch, scale, n_train, dataset, run_dir)
    probe_out = folder / f"probe_{arch}_{scale}.json"
    code = (
        "import time; t0 = time.perf_counter(); import sys; "
        f"sys.path.insert(0, {str(BENCH_DIR)!r}); from pipeline_overhead import probe_train; "
        f"probe_train(t0, {str(probe_out)!r}, {argv!r})"
    )
    total, _ = timed_run([sys.executable, "-c", code], folder)
    probe = json.loads(probe_out.read_text())
    if probe["code"] != 0:
        raise RuntimeError(f"fmscale train {cell} returned {probe['code']}")
    t = {k: sum(v) for k, v in probe["times"].items()}
    n_ckpt = len(probe["times"]["checkpoint_save"])
    cell_json = json.loads((run_dir / "cell.json").read_text())
    training = cell_json["wall_time_s"]
    fixed = total - training
    parts = {
        "interpreter start + exit": total - t["inside"],
        "imports (fmscale.cli, .config, .data, .train -> torch)": t["imports"],
        "data load (Dataset.load)": t["data_load"],
        "AdamW construction (the first one imports torch._dynamo)": t["adamw"],
        "rest of Trainer.__init__ (model, EMA copy, train rows)": t["model_build"] - t["adamw"],
        "Trainer.run beyond wall_time_s (checkpoint writes, setup)": t["train_run"] - training,
        "save EMA weights (model.safetensors)": t["save_weights"],
        "git revision (subprocess)": t["git_revision"],
    }
    parts["other (arguments, settings, cell.json, data stats, probe)"] = fixed - sum(parts.values())
    name = f"train {arch}/{scale} n{n_train}"
    steps = f"{cell_json['steps']} steps, {cell_json['steps_per_s']} steps/s"
    rows = [
        single_row(f"{name}: process wall", total, shlex.join(["fmscale", *argv[:9]])),
        single_row(f"{name}: training (cell.json wall_time_s)", training, steps),
        single_row(
            f"{name}: fixed cost = process - training", fixed, f"{100 * fixed / total:.0f}% of job"
        ),
    ]
    rows += [single_row(f"{name}: - {k}", v) for k, v in parts.items()]
    rows.append(
        single_row(
            f"{name}: checkpoint writes",
            t["checkpoint_save"],
            f"{n_ckpt} writes, inside the line above (wall_time_s leaves them out)",
        )
    )
    return rows


def single_row(measurement: str, value: float, detail: str = "") -> Row:
    """A one-off measurement of the train section, in seconds."""
    return Row("train", measurement, seconds(value), "", "s", detail)


def bench_train(config: dict[str, Any], cells: list[str], n_train: int, tmp: Path) -> list[Row]:
    """Prepare the default dataset once, then time one train job per cell."""
    folder = Path(tempfile.mkdtemp(prefix="train-", dir=tmp))
    dataset, wall = prepare_data(config, folder)
    rows = [
        single_row(
            "fmscale prepare-data (once per study)",
            wall,
            f"max n_train {max(config['grid']['n_train'])}",
        )
    ]
    for cell in cells:
        rows += bench_train_cell(config, cell, n_train, dataset, folder)
    return rows


def header() -> list[str]:
    """Machine, versions, the command and the date (without importing torch)."""
    return [
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        versions_line("snakemake", "torch"),
        *run_lines(),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--cells", default="mlp/small,dit/tiny", help="arch/scale train jobs")
    parser.add_argument("--n-train", type=int, help="n_train of the train jobs (default: middle)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args()
    config = repo_config()
    grid_n = config["grid"]["n_train"]
    n_train = args.n_train or sorted(grid_n)[len(grid_n) // 2]
    head = header()
    print(report_head(TITLE, head), end="", flush=True)
    with tempfile.TemporaryDirectory(prefix="fmscale-overhead-") as name:
        tmp = Path(name)
        rows = bench_dag(config, args.repeat, tmp)
        rows += heavy_imports(config, tmp)
        rows += bench_imports(args.repeat, tmp)
        rows += bench_train(config, args.cells.split(","), n_train, tmp)
    records = [asdict(row) for row in rows]
    table = markdown_table(records)
    print(table)
    write_report(args.out / "pipeline_overhead", TITLE, head, table, records)
    print(f"wrote {args.out}/pipeline_overhead.md and .csv")


if __name__ == "__main__":
    main()

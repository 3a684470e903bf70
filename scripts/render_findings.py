"""Write the numbers README.md and the studies' READMEs quote, so none is retyped.

Each block between ``<!-- findings:NAME -->`` and ``<!-- /findings:NAME -->`` in the files of
``BLOCKS`` is generated here from ``docs/<study>/summary.csv`` and ``docs/<study>/analysis.json``,
every number formatted once from the stored value. ``--check`` writes nothing and exits 1 when
a block differs from what the files give (the test suite runs it).

    python scripts/render_findings.py [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
ARCH_NAMES = {"mlp": "MLP", "unet": "U-Net", "dit": "DiT", "mamba": "Mamba"}
ARCH_ORDER = ("mlp", "dit", "unet", "mamba")


def _study(name: str) -> tuple[pd.DataFrame, dict]:
    folder = ROOT / "docs" / name
    return pd.read_csv(folder / "summary.csv"), json.loads((folder / "analysis.json").read_text())


def _ci(entry: dict, fmt: str = "{:.3g}") -> str:
    """``estimate [low, high]``; an open end (an n* beyond the grid) named as such."""
    text = fmt.format(entry["estimate"])
    if entry.get("ci"):
        low, high = entry["ci"]
        low = "below the grid" if low is None else fmt.format(low)
        high = "above the grid" if high is None else fmt.format(high)
        text += f" [{low}, {high}]"
    return text


def default_study_table() -> str:
    """The default study's table: memorised and gap at the smallest n with CIs, then the
    largest n's loss ratio and sample quality, per arch x scale and for the reference rows."""
    summary, report = _study("default_study")
    found = report["interaction"]
    small, large = found["n_train"][0], found["n_train"][-1]
    cells = {
        metric: {
            (c["arch"], c["scale"]): c for c in found[metric]["cells"] if c["n_train"] == small
        }
        for metric in ("memorised_fraction", "gap")
    }
    at_large = summary[summary.n_train == large]
    header = (
        f"| arch / scale (params) | memorised at n={small} [95% CI] | gap at n={small} [95% CI] "
        f"| val_loss_ratio at n={large} | precision_pca | mode_kl | modes |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for arch in ARCH_ORDER:
        for scale in found["scales"]:
            row = at_large[(at_large.kind == "model") & (at_large.arch == arch)]
            row = row[row.scale == scale].iloc[0]
            lines.append(
                f"| {arch} / {scale} ({row.n_params / 1e6:.2f}M) "
                f"| {_ci(cells['memorised_fraction'][(arch, scale)], '{:.3f}')} "
                f"| {_ci(cells['gap'][(arch, scale)], '{:.3f}')} "
                f"| {row.val_loss_ratio:.3f} | {row.precision_pca:.2f} | {row.mode_kl:.3f} "
                f"| {row.modes_covered:.0f}/{row.modes_total:.0f} |"
            )
    refs = at_large[at_large.kind == "reference"].set_index("arch")
    for name in ("real_holdout", "gaussian_fit", "exact_field"):
        ref = refs.loc[name]
        ratio = "-" if pd.isna(ref.val_loss_ratio) else f"{ref.val_loss_ratio:.3f}"
        lines.append(
            f"| ref: {name} | | | {ratio} | {ref.precision_pca:.2f} | {ref.mode_kl:.3f} "
            f"| {ref.modes_covered:.0f}/{ref.modes_total:.0f} |"
        )
    return header + "\n".join(lines) + "\n"


def default_study_steps() -> str:
    """The default study's last step up in scale of val_loss_ratio at the largest n, per arch."""
    _, report = _study("default_study")
    capacity = report["interaction"]["val_loss_ratio"]
    steps = capacity["steps"]
    parts = [f"{ARCH_NAMES[arch]} {steps[arch][-1]['estimate']:.3g}" for arch in ARCH_ORDER]
    last = steps[ARCH_ORDER[0]][-1]
    return (
        f"(n_train = {capacity['n_train']}, {last['a']} - {last['b']}: {', '.join(parts)}; "
        "one seed, so no CI)\n"
    )


def real_study_table() -> str:
    """The real-data study's readings with their CIs: at the smallest n, largest - smallest
    scale of the gap and the memorised fraction; at the largest n, each step of the loss."""
    _, report = _study("real_study")
    found = report["interaction"]
    small = found["n_train"][0]
    capacity = found["val_loss_ratio"]
    steps_header = " ; ".join(f"{e['a']} - {e['b']}" for e in capacity["steps"][ARCH_ORDER[0]])
    header = (
        f"| arch | gap at n={small}, base - tiny | memorised at n={small}, base - tiny "
        f"| val_loss_ratio at n={capacity['n_train']}: {steps_header} |\n|---|---:|---:|---:|\n"
    )
    lines = []
    for arch in ARCH_ORDER:
        gap = found["gap"]["largest_minus_smallest_scale"][arch]
        memorised = found["memorised_fraction"]["largest_minus_smallest_scale"][arch]
        steps = " ; ".join(_ci(e) for e in capacity["steps"][arch])
        lines.append(f"| {ARCH_NAMES[arch]} | {_ci(gap)} | {_ci(memorised)} | {steps} |")
    return header + "\n".join(lines) + "\n"


def cpu_validation_n_star() -> str:
    """n* per arch x scale at each level of the CPU validation study: estimate [95% CI] where
    its verdict is ok, else the verdict; the bracketing sizes beside it."""
    _, report = _study("cpu_validation")
    before = json.loads((ROOT / "docs/cpu_validation/refine/n_star_before.json").read_text())
    levels = list(report["n_star"])
    header = (
        "| arch / scale | "
        + " | ".join(f"n* at {level} [95% CI] | bracket | grid only" for level in levels)
        + " |\n|---|"
        + "---:|---|---:|" * len(levels)
        + "\n"
    )
    lines = []
    for arch in ARCH_ORDER:
        for scale in ("tiny", "small", "base"):
            cells = []
            for level in levels:
                entry = report["n_star"][level][arch][scale]
                ok = entry["verdict"] == "ok"
                bracket = entry.get("bracket")
                cells.append(_ci(entry) if ok else entry["verdict"])
                cells.append(f"{bracket[0]}-{bracket[1]}" if bracket else "")
                old = before["n_star"][level][arch][scale]
                cells.append(_ci(old) if old["verdict"] == "ok" else old["verdict"])
            lines.append(f"| {arch} / {scale} | " + " | ".join(cells) + " |")
    counts = ", ".join(
        f"{sum(e['verdict'] == 'ok' for a in report['n_star'][level].values() for e in a.values())}"
        f" of 12 at {level}"
        for level in levels
    )
    return header + "\n".join(lines) + f"\n\nn* with a CI: {counts}.\n"


def cpu_validation_trends() -> str:
    """The known trends, one row each, with the CIs that say whether the study reproduces
    them (all from analysis.json's interaction and n_laws)."""
    summary, report = _study("cpu_validation")
    found = report["interaction"]
    small, large = found["n_train"][0], found["n_train"][-1]
    memorised, gap = found["memorised_fraction"], found["gap"]

    def by_arch(entries: dict) -> str:
        return ", ".join(f"{ARCH_NAMES[a]} {_ci(entries[a], '{:.3f}')}" for a in ARCH_ORDER)

    pairs = len({(c["arch"], c["scale"]) for c in memorised["cells"]})

    laws = [
        (arch, scale, entry["beta"])
        for arch, scales in report["n_laws"].items()
        for scale, entry in scales.items()
        if entry["verdict"] == "ok"
    ]
    low, high = min(laws, key=lambda e: e[2]["estimate"]), max(laws, key=lambda e: e[2]["estimate"])
    n_cells = sum(len(scales) for scales in report["n_laws"].values())
    rises = [
        a
        for a in ARCH_ORDER
        if report["n_laws"][a]["base"]["verdict"] == "ok"
        and report["n_laws"][a]["tiny"]["verdict"] == "ok"
        and report["n_laws"][a]["base"]["beta"]["estimate"]
        > report["n_laws"][a]["tiny"]["beta"]["estimate"]
    ]
    steps = found["val_loss_ratio"]["steps"]
    resolved = {
        f"{e['a']} - {e['b']}": [
            ARCH_NAMES[a] for a in ARCH_ORDER if _step(steps[a], e)["resolved"]
        ]
        for e in steps[ARCH_ORDER[0]]
    }
    at_large = summary[(summary.kind == "model") & (summary.n_train == large)]
    means = at_large.groupby(["arch", "scale"]).val_loss_ratio.mean()
    ratios = "; ".join(
        f"{a} " + " / ".join(f"{means[(a, s)]:.4f}" for s in found["scales"]) for a in ARCH_ORDER
    )
    rows = [
        (
            "memorised fraction falls with n_train",
            f"n = {small} -> {large}, CI above 0, at {len(memorised['shrinks_with_n'])} of "
            f"{pairs} arch x scale pairs",
        ),
        (
            f"memorised fraction rises with capacity at n = {small}",
            f"base - tiny: {by_arch(memorised['largest_minus_smallest_scale'])}; CI above 0 for "
            + (", ".join(ARCH_NAMES[a] for a in memorised["grows_with_scale"]) or "none"),
        ),
        (
            f"the generalisation gap rises with capacity at n = {small}, falls with n",
            f"base - tiny: {by_arch(gap['largest_minus_smallest_scale'])}; CI above 0 for "
            + (", ".join(ARCH_NAMES[a] for a in gap["grows_with_scale"]) or "none")
            + f"; it shrinks from n = {small} to {large}, CI above 0, at "
            f"{len(gap['shrinks_with_n'])} of {pairs} pairs",
        ),
        (
            "validation loss falls with n as a power law",
            f"L = E + B / n^beta per arch x scale, {len(laws)} of {n_cells} fits `ok`: beta "
            f"{_ci(low[2])} ({low[0]}/{low[1]}) to {_ci(high[2])} ({high[0]}/{high[1]}); higher "
            f"at base than at tiny for {', '.join(ARCH_NAMES[a] for a in rises) or 'none'}",
        ),
        (
            f"capacity helps at n = {large}",
            f"val_loss_ratio, {' / '.join(found['scales'])}: {ratios}. Seed-paired steps, CI "
            "below 0: "
            + "; ".join(f"{step}: {', '.join(a) or 'none'}" for step, a in resolved.items()),
        ),
    ]
    return (
        "| trend | evidence |\n|---|---|\n"
        + "\n".join(f"| {trend} | {evidence} |" for trend, evidence in rows)
        + "\n"
    )


def _step(entries: list[dict], like: dict) -> dict:
    """The step of ``entries`` between the same two scales as ``like``."""
    return next(e for e in entries if (e["a"], e["b"]) == (like["a"], like["b"]))


def cpu_validation_below_grid() -> str:
    """Rows the model never saw (real_holdout) scored by the memorisation criterion below the
    grid and at its smallest sizes: the level a crossing there would have to clear."""
    summary, _ = _study("cpu_validation")
    holdout = summary[(summary.kind == "reference") & (summary.arch == "real_holdout")]
    scores = {}
    for path in sorted((ROOT / "docs/cpu_validation/refine").glob("reference_n*.json")):
        found = json.loads(path.read_text())
        scores[found["n_train"]] = found["references"]["real_holdout"]["memorised_fraction"]
    scores |= dict(zip(holdout.n_train, holdout.memorised_fraction, strict=True))
    return ", ".join(f"{v:.3f} at n = {n}" for n, v in sorted(scores.items())) + "\n"


def cpu_validation_collapse() -> str:
    """z of the collapse memorised_fraction ~ F(n / N^z) per arch, or its verdict."""
    _, report = _study("cpu_validation")
    parts = []
    for arch in ARCH_ORDER:
        entry = report["collapse"][arch]
        shown = _ci(entry, "{:.2f}") if entry["verdict"] == "ok" else entry["verdict"]
        parts.append(f"{ARCH_NAMES[arch]}: {shown}")
    return "; ".join(parts) + "\n"


def cpu_validation_cost() -> str:
    """What refinement cost against grids of the same resolution, in cells and in the train
    jobs' own seconds (each arch x scale's mean cell time times the cells a grid would add)."""
    summary, _ = _study("cpu_validation")
    models = summary[(summary.kind == "model") & (summary.status == "ok")]
    seeds = models.seed.nunique()
    sizes = sorted(models.n_train.unique())
    pairs = models.groupby(["arch", "scale"])
    per_cell = pairs.train_time_s.mean()
    finest = min(float(np.diff(np.log(sorted(part.n_train.unique()))).min()) for _, part in pairs)
    finest = math.exp(finest)
    uniform = 1 + math.ceil(math.log(max(sizes) / min(sizes)) / math.log(finest) - 1e-9)
    rows = [
        ("this study (grid + refinement)", len(models), models.train_time_s.sum()),
        (
            f"every size used here ({len(sizes)}) at every arch x scale",
            len(sizes) * seeds * len(per_cell),
            (per_cell * len(sizes) * seeds).sum(),
        ),
        (
            f"log-uniform from n = {min(sizes)} to {max(sizes)} at the finest step here "
            f"({finest:.2f}x): {uniform} sizes",
            uniform * seeds * len(per_cell),
            (per_cell * uniform * seeds).sum(),
        ),
    ]
    base = rows[0][2]
    lines = [
        f"| {name} | {cells} | {seconds / 3600:.2f} | {seconds / base:.2f}x |"
        for name, cells, seconds in rows
    ]
    return (
        "| grid | cells | train hours (measured / estimated) | cost vs this study |\n"
        "|---|---:|---:|---:|\n" + "\n".join(lines) + "\n"
    )


BLOCKS = {
    "README.md": {
        "default_study_table": default_study_table,
        "default_study_steps": default_study_steps,
    },
    "docs/real_study/README.md": {
        "real_study_table": real_study_table,
    },
    "docs/cpu_validation/README.md": {
        "cpu_validation_trends": cpu_validation_trends,
        "cpu_validation_n_star": cpu_validation_n_star,
        "cpu_validation_below_grid": cpu_validation_below_grid,
        "cpu_validation_collapse": cpu_validation_collapse,
        "cpu_validation_cost": cpu_validation_cost,
    },
}
"""File (from the repository root) -> its blocks and what writes each."""


def render(text: str, blocks: dict, where: str = "README.md") -> str:
    """``text`` with every block of ``blocks`` regenerated; ValueError naming a missing block."""
    for name, make in blocks.items():
        pattern = re.compile(
            rf"(<!-- findings:{name} -->\n).*?(<!-- /findings:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(
                f"{where}: no block <!-- findings:{name} --> ... <!-- /findings:{name} -->"
            )
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is current")
    args = parser.parse_args()
    stale = []
    for name, blocks in BLOCKS.items():
        path = ROOT / name
        current = path.read_text()
        fresh = render(current, blocks, name)
        if fresh != current:
            stale.append(name)
            if not args.check:
                path.write_text(fresh)
    if args.check and stale:
        print(f"{', '.join(stale)}: findings out of date; run python scripts/render_findings.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the numbers README.md quotes from the committed studies, so none is retyped.

Each block between ``<!-- findings:NAME -->`` and ``<!-- /findings:NAME -->`` in README.md is
generated here from ``docs/<study>/summary.csv`` and ``docs/<study>/analysis.json``, every
number formatted once from the stored value. ``--check`` writes nothing and exits 1 when a
block differs from what the files give (the test suite runs it).

    python scripts/render_findings.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ARCH_NAMES = {"mlp": "MLP", "unet": "U-Net", "dit": "DiT", "mamba": "Mamba"}
ARCH_ORDER = ("mlp", "dit", "unet", "mamba")


def _study(name: str) -> tuple[pd.DataFrame, dict]:
    folder = ROOT / "docs" / name
    return pd.read_csv(folder / "summary.csv"), json.loads((folder / "analysis.json").read_text())


def _ci(entry: dict, fmt: str = "{:.3g}") -> str:
    text = fmt.format(entry["estimate"])
    if entry.get("ci"):
        low, high = entry["ci"]
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
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


BLOCKS = {
    "default_study_table": default_study_table,
    "default_study_steps": default_study_steps,
    "real_study_table": real_study_table,
}


def render(text: str) -> str:
    """``text`` with every findings block regenerated; ValueError naming a missing block."""
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- findings:{name} -->\n).*?(<!-- /findings:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(
                f"README.md: no block <!-- findings:{name} --> ... <!-- /findings:{name} -->"
            )
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is current")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md: findings out of date; run python scripts/render_findings.py")
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())

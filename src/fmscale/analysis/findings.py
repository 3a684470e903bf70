"""The capacity x data interaction and the capacity steps, in words and tables for analysis.md."""

from __future__ import annotations

from typing import Any

from .interaction import CAPACITY_METRIC
from .numbers import ci_text, table

INTERACTION_WORDS = {
    "gap": "the generalisation gap (val_loss - train_loss on the same noise draws)",
    "memorised_fraction": "memorised_fraction (samples that copy a training row)",
}


def _finding(metric: str, found: dict[str, Any], archs: list[str], small: int, large: int) -> str:
    grows, shrinks = found["grows_with_scale"], found["shrinks_with_n"]
    pairs = len({(c["arch"], c["scale"]) for c in found["cells"]})
    return (
        f"**Finding ({metric})**: at n_train = {small}, {INTERACTION_WORDS[metric]} grows from "
        f"the smallest to the largest scale, CI above 0, for {len(grows)} of {len(archs)} archs"
        f" ({', '.join(grows) or 'none'}); it shrinks from n_train = {small} to {large}, CI "
        f"above 0, for {len(shrinks)} of {pairs} arch x scale pairs"
        f" ({', '.join(shrinks) or 'none'})."
    )


def capacity_lines(found: dict[str, Any]) -> list[str]:
    """The val_loss_ratio steps up in scale at the largest n_train: finding and table."""
    steps, n_train = found["steps"], found["n_train"]
    archs = sorted(steps)
    falls = found["falls_with_scale"]
    seeds_short = any(e["method"] == "none" for entries in steps.values() for e in entries)
    finding = (
        f"**Finding (capacity at n_train = {n_train})**: val_loss_ratio falls at every step "
        f"up in scale, CI below 0, for {len(falls)} of {len(archs)} archs"
        f" ({', '.join(falls) or 'none'})."
    )
    if seeds_short:
        finding += (
            " A step's CI needs two or more seeds (the seed-to-seed variation is what "
            "decides it): a step with one seed has none and is never resolved."
        )
    width = max((len(entries) for entries in steps.values()), default=0)
    header = ["arch", *[f"step {i + 1}: larger - smaller [95% CI]" for i in range(width)]]
    rows = [
        [arch, *[f"{e['a']} - {e['b']}: {ci_text(e)}" for e in steps[arch]]]
        + [""] * (width - len(steps[arch]))
        for arch in archs
    ]
    return [finding, ""] + (table(header, rows) if width else [])


def interaction_lines(found: dict[str, Any]) -> list[str]:
    lines = ["## Capacity x data: generalisation gap, memorisation, loss at the largest n", ""]
    sizes, scales = found["n_train"], found["scales"]
    metrics = [m for m in INTERACTION_WORDS if m in found]
    if len(sizes) < 2 or not metrics:
        return lines + ["Needs two or more n_train values.", ""]
    lines += [
        "Mean over seeds with its 95% CI: Student-t over the seeds when there are two or more, "
        "else the cell's own sampling error (the gap's paired standard error over the "
        "validation draws; the binomial error of memorised_fraction). Differences pair seeds.",
        "",
    ]
    for metric in metrics:
        part = found[metric]
        archs = sorted({c["arch"] for c in part["cells"]})
        lines += [_finding(metric, part, archs, sizes[0], sizes[-1]), ""]
        cells = {(c["arch"], c["scale"], c["n_train"]): c for c in part["cells"]}
        rows = [
            [arch, scale] + [ci_text(cells.get((arch, scale, n), {})) for n in sizes]
            for arch in archs
            for scale in scales
            if any((arch, scale, n) in cells for n in sizes)
        ]
        lines += table(["arch", "scale", *[f"n={n}" for n in sizes]], rows)
        rows = []
        for arch in archs:
            by_scale = part["largest_minus_smallest_scale"].get(arch)
            by_n = part["smallest_minus_largest_n"].get(arch, {})
            rows.append(
                [
                    arch,
                    "-" if by_scale is None else f"{by_scale['a']} - {by_scale['b']}",
                    "-" if by_scale is None else ci_text(by_scale),
                    "; ".join(f"{scale}: {ci_text(d)}" for scale, d in by_n.items()) or "-",
                ]
            )
        header = [
            "arch",
            "scales",
            f"at n={sizes[0]}: larger - smaller [95% CI]",
            f"n={sizes[0]} - n={sizes[-1]} per scale [95% CI]",
        ]
        lines += table(header, rows)
    if CAPACITY_METRIC in found:
        lines += [
            "Where data is plentiful capacity should help: each step up in scale of "
            f"{CAPACITY_METRIC} at the largest n_train, paired by seed (Student-t over the "
            "pairs), below 0 when the larger model is better.",
            "",
            *capacity_lines(found[CAPACITY_METRIC]),
        ]
    return lines

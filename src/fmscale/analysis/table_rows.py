"""The rows of the headline tables (fits, n*, collapse), shared by analysis.md and the LaTeX
tables."""

from __future__ import annotations

from typing import Any

from .numbers import estimate, number, share, with_ci


def fit_rows(fits: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The scaling-law fits as a table (header, rows): numbers for ``ok`` fits only."""
    header = ["arch", "target", "verdict", "cells", "at bound", "E", "A", "alpha", "B", "beta"]
    header.append("loso_error")
    rows = []
    for arch, targets in fits.items():
        for target, fit in targets.items():
            row = [
                arch,
                target,
                fit["verdict"],
                str(fit["n_cells"]),
                share(fit.get("bound_share")),
            ]
            if fit["verdict"] == "ok":
                names = ("E", "A", "alpha", "B", "beta")
                row += [with_ci(fit[name]) for name in names] + [number(fit["loso_error"])]
            else:
                row += [""] * 6
            rows.append(row)
    return header, rows


def n_star_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    levels = report["levels"]
    header = ["arch", "scale", "params", *[f"n* at {level} [95% CI]" for level in levels]]
    first = report["n_star"][levels[0]]
    rows = [
        [arch, scale, number(entry["n_params"])]
        + [estimate(report["n_star"][level][arch][scale]) for level in levels]
        for arch, scales in first.items()
        for scale, entry in scales.items()
    ]
    return header, rows


def collapse_rows(collapse: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["arch", "z [95% CI]", "verdict", "loss at z", "loss at z = 1", "loss at z = 0"]
    rows = [
        [
            arch,
            with_ci(entry) if entry.get("ci") else number(entry.get("estimate")),
            entry["verdict"],
            number(entry.get("loss")),
            number(entry.get("loss_at_z1")),
            number(entry.get("loss_at_z0")),
        ]
        for arch, entry in collapse.items()
    ]
    return header, rows

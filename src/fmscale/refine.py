"""Adaptive refinement of the n_train grid around the memorisation crossover.

Per arch x scale, the mean memorised_fraction over seeds of the finished model cells brackets
the n_train values where it falls through ``analysis.levels``; ``propose`` puts log-spaced
n_train values inside each bracket, ``new_cells`` makes them cells (every seed), and a round
file (``REFINE_PATTERN``) records them for the workflow's train / evaluate / reference jobs and
for ``summarize``. docs/refine.md. Torch-free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import RefineError
from .layout import CELL_KEYS, REFINE_PATTERN
from .study_config import AnalysisConfig, RefineConfig

if TYPE_CHECKING:  # pandas only where proposals are made: refine.smk imports this at DAG time
    import pandas as pd

BELOW_REACH = 8
"""How far below the smallest n_train a round looks for a crossing below the grid (a factor)."""

INSIDE = "crossing inside"
BELOW = "below the grid"
ABOVE = "above the grid"
NO_FREE_N = "no free n_train inside"
ALREADY_RUN = "already run"
NO_CELLS = "no finished cell to bracket"
"""What ``Proposal.reason`` starts with: new n_train values proposed (INSIDE) or why none."""


@dataclass(frozen=True)
class Proposal:
    """One arch x scale: its bracket (n_train values run, ``lo`` < ``hi``, and their mean
    memorised_fraction; None where there is no bracket), why, and the n_train values added."""

    arch: str
    scale: str
    reason: str
    lo: int | None = None
    hi: int | None = None
    mean_lo: float | None = None
    mean_hi: float | None = None
    n_train: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"n_train": list(self.n_train)}

    def describe(self) -> str:
        """One line: arch/scale, the bracket with its means, the reason, the values added."""
        bracket = ""
        if self.lo is not None:
            bracket = f"n={self.lo} ({self.mean_lo:.3g})"
        if self.hi is not None:
            bracket += f" .. n={self.hi} ({self.mean_hi:.3g})"
        added = f" -> n_train {', '.join(map(str, self.n_train))}" if self.n_train else ""
        return f"{self.arch}/{self.scale}: {bracket + ': ' if bracket else ''}{self.reason}{added}"


def log_points(lo: int, hi: int, points: int) -> list[int]:
    """``points`` log-spaced integers strictly inside (lo, hi), rounded and deduplicated (fewer
    when the interval holds fewer integers)."""
    inner = np.rint(np.geomspace(lo, hi, points + 2)[1:-1]).astype(int)
    return sorted({int(n) for n in inner if lo < n < hi})


def bracket(means: pd.Series, levels: Sequence[float]) -> tuple[int | None, int | None, str]:
    """(lo, hi, reason) of one arch x scale's mean memorised_fraction per n_train (index sorted):
    lo = the last n at or above the largest level, else the last at or above the lowest;
    hi = the first n above lo whose mean is below the lowest level."""
    low, high = min(levels), max(levels)
    above = means.index[means >= high]
    if above.empty:
        above = means.index[means >= low]
    if above.empty:
        return None, None, f"{BELOW}: mean memorised_fraction < {low:g} at every n_train"
    lo = int(above[-1])
    after = means[(means.index > lo) & (means < low)]
    if after.empty:
        return lo, None, f"{ABOVE}: mean memorised_fraction >= {low:g} up to the largest n_train"
    return lo, int(after.index[0]), f"{INSIDE} the bracket"


def below_points(smallest: int, min_n: int, points: int) -> list[int]:
    """``points`` log-spaced integers from max(min_n, smallest / BELOW_REACH) up to (not
    including) ``smallest``: where to look for a crossing below the grid."""
    start = max(min_n, smallest / BELOW_REACH)
    if start >= smallest:
        return []
    inner = np.rint(np.geomspace(start, smallest, points + 1)[:-1]).astype(int)
    return sorted({int(n) for n in inner if min_n <= n < smallest})


def propose(
    rows: pd.DataFrame,
    levels: Sequence[float] = AnalysisConfig.levels,
    points: int = RefineConfig.points,
    min_n: int = RefineConfig.min_n,
) -> list[Proposal]:
    """Per arch x scale of ``rows`` (summary.csv's rows of one dataset), in order of
    appearance: its bracket and up to ``points`` new n_train values inside it (with
    ``min_n`` > 0, below the grid when the crossing lies there: ``below_points``).

    Means are over the seeds of finished model cells (kind model, status ok); n_train values
    present for the arch x scale in any status (a failed cell too) are never proposed again.
    """
    import pandas as pd

    models = rows[rows.kind == "model"]
    models = models.assign(memorised_fraction=pd.to_numeric(models.memorised_fraction))
    done = models[(models.status == "ok") & models.memorised_fraction.notna()]
    out = []
    for (arch, scale), part in models.groupby(["arch", "scale"], sort=False):
        finished = done[(done.arch == arch) & (done.scale == scale)]
        if finished.empty:
            out.append(Proposal(str(arch), str(scale), NO_CELLS))
            continue
        means = finished.groupby("n_train").memorised_fraction.mean().sort_index()
        lo, hi, reason = bracket(means, levels)
        ends = {
            "lo": lo,
            "hi": hi,
            "mean_lo": None if lo is None else float(means[lo]),
            "mean_hi": None if hi is None else float(means[hi]),
        }
        new: list[int] = []
        run = {int(n) for n in part.n_train}
        candidates = None
        if hi is not None:
            candidates = log_points(lo, hi, points)
        elif lo is None and min_n > 0:
            candidates = below_points(int(means.index[0]), min_n, points)
            reason += f"; looking below it, down to n_train {min_n} at the least"
        if candidates is not None:
            new = [n for n in candidates if n not in run]
            if not candidates:
                reason = f"{NO_FREE_N} the bracket"
            elif not new:
                reason = f"{ALREADY_RUN}: every proposed n_train ({candidates}) has a cell"
        out.append(Proposal(str(arch), str(scale), reason, **ends, n_train=tuple(new)))
    return out


def new_cells(proposals: Iterable[Proposal], seeds: Iterable[int], dataset: str) -> list[dict]:
    """The cells of the proposed n_train values: every seed of each (arch, scale, n)."""
    seeds = [int(seed) for seed in seeds]
    return [
        dict(zip(CELL_KEYS, (dataset, p.arch, p.scale, n, seed), strict=True))
        for p in proposals
        for n in p.n_train
        for seed in seeds
    ]


def round_document(
    proposals: list[Proposal],
    seeds: Iterable[int],
    dataset: str,
    levels: Sequence[float],
    points: int,
    round_: int | None = None,
) -> dict[str, Any]:
    """What a round file (or ``fmscale refine -o``) holds: the settings, every arch x scale's
    proposal and the new cells."""
    seeds = [int(s) for s in seeds]
    return {
        "round": round_,
        "dataset": dataset,
        "levels": list(levels),
        "points": points,
        "seeds": seeds,
        "proposals": [p.as_dict() for p in proposals],
        "cells": new_cells(proposals, seeds, dataset),
    }


def read_round(path: str | Path) -> list[dict[str, Any]]:
    """The cells of a round file; RefineError naming the file if it cannot be read."""
    try:
        found = json.loads(Path(path).read_text())
        listed = found["cells"]
        return [
            {k: int(c[k]) if k in ("n_train", "seed") else str(c[k]) for k in CELL_KEYS}
            for c in listed
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RefineError(f"{path}: unreadable refinement round ({exc!r})") from None


def round_files(results: str | Path, dataset: str, rounds: int | None = None) -> list[Path]:
    """The round files of a dataset in round order: rounds 1 .. ``rounds`` (whether they exist
    or not), or every one present when ``rounds`` is None."""
    results = Path(results)
    if rounds is not None:
        return [
            results / REFINE_PATTERN.format(dataset=dataset, round=r) for r in range(1, rounds + 1)
        ]
    found = results.glob(REFINE_PATTERN.format(dataset=dataset, round="*"))
    numbered = {p: re.fullmatch(r"round([0-9]+)\.json", p.name) for p in found}
    return sorted((p for p, m in numbered.items() if m), key=lambda p: int(numbered[p][1]))


def refined_cells(
    results: str | Path, dataset: str, rounds: int | None = None
) -> list[dict[str, Any]]:
    """The cells the refinement rounds of a dataset added (``round_files``), each once."""
    found: dict[tuple, dict[str, Any]] = {}
    for path in round_files(results, dataset, rounds):
        for cell in read_round(path):
            found.setdefault(tuple(cell[k] for k in CELL_KEYS), cell)
    return list(found.values())

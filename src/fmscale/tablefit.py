"""Fit a scaling table to its capacity targets at the data's dimension D.

A table's contract is its capacity targets (parameters per scale); widths are the means. At a
D other than the one a table was written for, the input / output projections take another
share of each model, so rows drift off their targets. ``fit_table`` moves the knob of every
row (its width, ``Fit.knob``) to the value whose count, at D and with the study's
parameterisation, is nearest the target; at the D the table was written for (``Fit.dim``) it
keeps the rows already within tolerance, so a table is unchanged where it was calibrated. Counts are
near-quadratic in the width: a quadratic through three counts gives the guess, a few counts
around it the answer. A target no width >= ``min_width`` reaches is reported with targets
that can be reached; a row that cannot be built at D (tokens that do not divide D) with the
token counts that can.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

from .counting import count_model
from .models.configs import build_config
from .models.scaling import ScalingTable, _freeze

SEARCH_RADIUS = 1
"""Valid knob values counted on each side of the quadratic's guess (1 and 3 gave the same
fitted rows for the cpu and default tables at D = 384, 768, 1536 and 3072)."""


@dataclass
class FitResult:
    """A table fitted at ``data_dim``: the table, the rows moved, the rows it could not fit."""

    table: ScalingTable
    data_dim: int
    parameterisation: str
    changed: dict[tuple[str, str], tuple[dict, dict]] = field(default_factory=dict)
    unreachable: dict[tuple[str, str], str] = field(default_factory=dict)
    unbuildable: dict[tuple[str, str], str] = field(default_factory=dict)
    proposed_targets: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.unreachable and not self.unbuildable

    def problems(self) -> str:
        """Every row the fit could not serve, with the fix it proposes ('' when none)."""
        lines = [f"{a}/{s}: {why}" for (a, s), why in self.unbuildable.items()]
        lines += [f"{a}/{s}: {why}" for (a, s), why in self.unreachable.items()]
        if self.proposed_targets:
            lines.append(
                f"Targets every arch reaches at D = {self.data_dim}, the table's ratios kept: "
                + ", ".join(f"{k} {v:,}" for k, v in self.proposed_targets.items())
            )
        return "\n".join(lines)


def _with_knob(row: dict, knob: str, value: int) -> dict:
    """``row`` with its knob at ``value`` (a list of widths scaled as a whole, first = value)."""
    new = dict(row)
    current = row[knob]
    if isinstance(current, list):
        new[knob] = [value] + [max(1, round(d * value / current[0])) for d in current[1:]]
    else:
        new[knob] = value
    return new


def _knob_value(row: dict, knob: str) -> int:
    value = row[knob]
    return value[0] if isinstance(value, list) else value


def _valid(arch: str, row: dict) -> bool:
    try:
        build_config(arch, row)
    except ValueError:
        return False
    return True


def _valid_values(arch: str, row: dict, knob: str, around: float, low: int) -> list[int]:
    """Valid knob values >= ``low`` nearest ``around``: SEARCH_RADIUS each side, in order."""
    below, above = [], []
    start = max(low, math.floor(around))
    value = start
    while len(above) < SEARCH_RADIUS + 1 and value < start + 10_000:
        if _valid(arch, _with_knob(row, knob, value)):
            above.append(value)
        value += 1
    value = start - 1
    while len(below) < SEARCH_RADIUS and value >= low:
        if _valid(arch, _with_knob(row, knob, value)):
            below.append(value)
        value -= 1
    return sorted(below + above)


def _quadratic_guess(count: Callable[[int], int], w0: int, target: int) -> float:
    """The knob value whose count a quadratic through three counts puts at ``target``."""
    xs = [w0, 2 * w0, 4 * w0]
    ys = [count(x) for x in xs]
    # Newton's divided differences: y = a + b (x - x0) + c (x - x0)(x - x1)
    b1 = (ys[1] - ys[0]) / (xs[1] - xs[0])
    b2 = (ys[2] - ys[1]) / (xs[2] - xs[1])
    c = (b2 - b1) / (xs[2] - xs[0])
    b = b1 - c * (xs[0] + xs[1])
    a = ys[0] - b1 * xs[0] + c * xs[0] * xs[1]
    if abs(c) < 1e-12:
        return (target - a) / b if b else w0
    disc = b * b - 4 * c * (a - target)
    if disc < 0:
        return w0
    return (-b + math.sqrt(disc)) / (2 * c)


def _fit_row(
    arch: str, row: dict, knob: str, target: int, low: int, count: Callable[[dict], int]
) -> tuple[dict, int]:
    """The row with its knob at the valid value >= ``low`` whose count is nearest ``target``."""
    first = _valid_values(arch, row, knob, low, low)[0]

    def count_at(value: int) -> int:
        return count(_with_knob(row, knob, value))

    guess = _quadratic_guess(count_at, first, target)
    candidates = _valid_values(arch, row, knob, max(guess, low), low)
    counted = {v: count_at(v) for v in candidates}
    best = min(counted, key=lambda v: (abs(counted[v] - target), v))
    return _with_knob(row, knob, best), counted[best]


def _divisors_near(n: int, dim: int) -> list[int]:
    """Divisors of ``dim`` nearest ``n`` (up to three)."""
    divisors = [d for d in range(1, dim + 1) if dim % d == 0]
    return sorted(sorted(divisors, key=lambda d: (abs(d - n), d))[:3])


def _round_up(x: float) -> int:
    """``x`` rounded up to two significant digits."""
    step = 10 ** max(0, math.floor(math.log10(x)) - 1)
    return int(math.ceil(x / step) * step)


def fit_table(
    table: ScalingTable,
    data_dim: int,
    parameterisation: str,
    archs: list[str] | None = None,
) -> FitResult:
    """``table`` fitted to its capacity targets at ``data_dim`` (see the module docstring).

    A table without capacity targets has nothing to fit and comes back unchanged.
    """
    result = FitResult(table, data_dim, parameterisation)
    if table.capacity_targets is None:
        return result
    targets, tol = table.capacity_targets, table.capacity_tolerance

    def count(arch: str) -> Callable[[dict], int]:
        return lambda row: count_model(arch, row, data_dim, parameterisation)

    rows = {a: {s: table.row(a, s) for s in table.scales} for a in table.archs}
    keep = table.fit.dim in (None, data_dim)  # rows within tolerance stay where written
    needs = {}  # scale -> params the smallest width gives, where the target is below it
    for arch in archs or table.archs:
        counts = {}
        knob = table.fit.knob(arch)
        for scale in table.scales:
            row = rows[arch][scale]
            try:
                counts[scale] = count(arch)(row)
            except ValueError as exc:
                result.unbuildable[arch, scale] = _unbuildable(exc, row, data_dim)
                continue
            if not keep or abs(counts[scale] / targets[scale] - 1) > tol:
                row, counts[scale] = _fit_row(
                    arch, row, knob, targets[scale], table.fit.min_width, count(arch)
                )
                rows[arch][scale] = row
        _refit_off_steps(table, arch, rows[arch], counts, count(arch))
        for scale, n in counts.items():
            if abs(n / targets[scale] - 1) > tol:
                result.unreachable[arch, scale] = (
                    f"{n:,} parameters at {knob}={_knob_value(rows[arch][scale], knob)}, the "
                    f"nearest to the target {targets[scale]:,} (±{tol:.0%}) a {knob} >= "
                    f"{table.fit.min_width} reaches at D = {data_dim}"
                )
                if n > targets[scale]:
                    needs[scale] = max(needs.get(scale, 0), n)
    for arch in rows:
        for scale in table.scales:
            old = table.row(arch, scale)
            if rows[arch][scale] != old:
                result.changed[arch, scale] = (old, rows[arch][scale])
    if needs:
        factor = max(n / (1 - tol / 2) / targets[s] for s, n in needs.items())
        result.proposed_targets = {s: _round_up(targets[s] * factor) for s in table.scales}
    frozen = {a: MappingProxyType({s: _freeze(r) for s, r in by.items()}) for a, by in rows.items()}
    fit = dataclasses.replace(table.fit, dim=data_dim)  # the rows are now written for D
    result.table = dataclasses.replace(table, rows=MappingProxyType(frozen), fit=fit)
    return result


def _refit_off_steps(
    table: ScalingTable,
    arch: str,
    rows: dict[str, dict],
    counts: dict[str, int],
    count: Callable[[dict], int],
) -> None:
    """Refit to nearest both rows of a step outside the ratio band (rows at opposite ends of
    their tolerance); in place."""
    targets, knob = table.capacity_targets, table.fit.knob(arch)
    for prev, scale in zip(table.scales, table.scales[1:], strict=False):
        if prev not in counts or scale not in counts:
            continue
        if table.ratio_min <= counts[scale] / counts[prev] <= table.ratio_max:
            continue
        for s in (prev, scale):
            rows[s], counts[s] = _fit_row(
                arch, rows[s], knob, targets[s], table.fit.min_width, count
            )


def _unbuildable(exc: ValueError, row: dict, data_dim: int) -> str:
    """Why a row cannot be built at D, with the token counts that can (tokens are held)."""
    why = f"cannot be built at D = {data_dim} ({exc})"
    tokens = row.get("num_tokens")
    if tokens and data_dim % tokens:
        near = ", ".join(map(str, _divisors_near(tokens, data_dim)))
        why += f"; num_tokens must divide D: set it to one of {near} in your table"
    return why

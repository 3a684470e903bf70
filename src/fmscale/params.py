"""Parameter counts per arch x scale and the ratio gate that stops a study with off-scale steps."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig
from .files import atomic_path, atomic_write
from .flow import build_field
from .models.scaling import ScalingTable, load_table


class ParamGateError(RuntimeError):
    """A scale step is outside the allowed ratio band or an arch is off its capacity target."""


@dataclass(frozen=True)
class ParamRow:
    arch: str
    scale: str
    row: str
    n_params: int | None
    target: int | None
    vs_target: float | None
    ratio: float | None
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in the model's parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_model(
    arch: str, row: dict, data_dim: int = 1024, parameterisation: str = TrainConfig.parameterisation
) -> int:
    """Build the velocity field a cell trains on the meta device (no memory, no init cost) and
    count it: the network plus whatever its parameterisation adds."""
    with torch.device("meta"):
        model = build_field(arch, row, data_dim, parameterisation)
    return count_parameters(model)


def _verdict(
    table: ScalingTable, scale: str, n: int, prev: int | None
) -> tuple[float | None, float | None, str]:
    problems = []
    ratio = None if prev is None else n / prev
    if ratio is not None and not table.ratio_min <= ratio <= table.ratio_max:
        problems.append(
            f"OFF RATIO: {ratio:.2f}x outside [{table.ratio_min:g}, {table.ratio_max:g}]"
        )
    vs_target = None
    if table.capacity_targets is not None:
        target = table.capacity_targets[scale]
        vs_target = n / target - 1
        if abs(vs_target) > table.capacity_tolerance:
            problems.append(
                f"OFF TARGET: {vs_target:+.1%} of {target:,} "
                f"(allowed ±{table.capacity_tolerance:.0%})"
            )
    return ratio, vs_target, "; ".join(problems) or "ok"


def count_table(
    table: ScalingTable, data_dim: int = 1024, parameterisation: str = TrainConfig.parameterisation
) -> list[ParamRow]:
    """One ParamRow per arch x scale, in table order, with ratio to the previous scale."""
    rows = []
    for arch in table.archs:
        prev = None
        for scale in table.scales:
            row = table.row(arch, scale)
            try:
                n = count_model(arch, row, data_dim, parameterisation)
            except ValueError as exc:  # e.g. num_tokens does not divide D
                n, ratio, vs_target = None, None, None
                verdict = f"CANNOT BUILD at D={data_dim}: {exc}"
            else:
                ratio, vs_target, verdict = _verdict(table, scale, n, prev)
            rows.append(
                ParamRow(
                    arch=arch,
                    scale=scale,
                    row=", ".join(f"{k}={v}" for k, v in row.items()),
                    n_params=n,
                    target=None
                    if table.capacity_targets is None
                    else table.capacity_targets[scale],
                    vs_target=vs_target,
                    ratio=ratio,
                    verdict=verdict,
                )
            )
            prev = n
    return rows


def render_markdown(
    rows: list[ParamRow],
    table: ScalingTable,
    data_dim: int = 1024,
    parameterisation: str = TrainConfig.parameterisation,
) -> str:
    """The gate's table as Markdown, with a header line stating the rule it applied."""
    rule = (
        f"ratio to previous scale in [{table.ratio_min:g}, {table.ratio_max:g}] "
        f"(target {table.ratio_target:g}x)"
    )
    if table.capacity_targets is not None:
        rule += f"; params within ±{table.capacity_tolerance:.0%} of the scale's target"
    lines = [
        f"Scaling table `{table.path}` at data dimension D = {data_dim}, parameterisation "
        f"`{parameterisation}`: {rule}.",
        "",
        "| arch | scale | row | params | vs target | ratio | verdict |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        vs = "" if r.vs_target is None else f"{r.vs_target:+.1%}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        n = "" if r.n_params is None else f"{r.n_params:,}"
        lines.append(f"| {r.arch} | {r.scale} | {r.row} | {n} | {vs} | {ratio} | {r.verdict} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[ParamRow], path: str | Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def verify_params(
    table: str | Path | None = None,
    data_dim: int = 1024,
    out_csv: str | Path | None = None,
    out_md: str | Path | None = None,
    allow_off_ratio: bool = False,
    archs: list[str] | None = None,
    parameterisation: str = TrainConfig.parameterisation,
) -> list[ParamRow]:
    """Count every arch x scale at data dimension ``data_dim``, write the CSV / Markdown table,
    and raise ParamGateError (whose message is the table) when a row is off, unless
    ``allow_off_ratio``. A row that cannot be built at ``data_dim`` fails the gate always.
    ``archs`` limits the gate to the archs a study trains (default: every arch of the table);
    ``parameterisation`` is the cells' (its parameters count).
    """
    scaling = load_table(table)
    unknown = sorted(set(archs or ()) - set(scaling.archs))
    if unknown:
        raise ParamGateError(f"archs {unknown} are not in the scaling table {scaling.path}")
    counted = count_table(scaling, data_dim, parameterisation)
    rows = [r for r in counted if archs is None or r.arch in archs]
    markdown = render_markdown(rows, scaling, data_dim, parameterisation)
    if out_csv:
        write_csv(rows, out_csv)
    if out_md:
        atomic_write(out_md, markdown)
    bad = [f"{r.arch}/{r.scale}" for r in rows if not r.ok]
    unbuildable = [f"{r.arch}/{r.scale}" for r in rows if r.n_params is None]
    if unbuildable:
        raise ParamGateError(
            f"{markdown}\nThese rows cannot be built for data of dimension {data_dim}: "
            f"{', '.join(unbuildable)}. Fix the scaling table (e.g. num_tokens must divide D)."
        )
    if bad and not allow_off_ratio:
        raise ParamGateError(
            f"{markdown}\nParameter gate failed for {', '.join(bad)}. "
            "Fix these rows of the scaling "
            "table, or pass --allow-off-ratio (config: params.allow_off_ratio: true) to record "
            "the verdicts and go on."
        )
    return rows

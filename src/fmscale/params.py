"""Parameter counts per arch x scale and the ratio gate that stops a study with off-scale steps."""

from __future__ import annotations

import csv
import dataclasses
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

from .config import SyntheticConfig, TrainConfig
from .counting import count_model
from .errors import ParamGateError
from .files import atomic_path, atomic_write
from .models.scaling import ScalingTable, load_table, table_label
from .tablefit import fit_table


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
    table: ScalingTable,
    data_dim: int = SyntheticConfig.dim,
    parameterisation: str = TrainConfig.parameterisation,
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
    data_dim: int = SyntheticConfig.dim,
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
        f"Scaling table `{table_label(table)}` at data dimension D = {data_dim}, parameterisation "
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


def _table_command(table: str | Path | None, data_dim: int, parameterisation: str) -> str:
    """The ``fmscale table`` command that fits ``table`` (a packaged name or a path) at D."""
    source = shlex.quote(str(table or "default"))
    return (
        f"fmscale table --data-dim {data_dim} --from {source} "
        f"--parameterisation {parameterisation} -o fitted.yaml"
    )


@dataclass(frozen=True)
class Gate:
    """The gate's verdict on a table at one D: what it counted, and its error (None: passed)."""

    table: ScalingTable
    """The table the cells train (fitted, when fitting was asked for)."""
    rows: list[ParamRow]
    markdown: str
    error: str | None
    header: str
    """What the table file written for the cells says it is."""

    def record(
        self,
        out_csv: str | Path | None = None,
        out_md: str | Path | None = None,
        out_table: str | Path | None = None,
    ) -> None:
        """Write the counted rows (CSV), their Markdown and the table the cells train."""
        if out_csv:
            write_csv(self.rows, out_csv)
        if out_md:
            atomic_write(out_md, self.markdown)
        if out_table:
            write_table(self.table, out_table, self.header)


def check_gate(
    table: str | Path | None = None,
    data_dim: int = SyntheticConfig.dim,
    allow_off_ratio: bool = False,
    archs: list[str] | None = None,
    parameterisation: str = TrainConfig.parameterisation,
    fit: bool = False,
    targets: dict[str, int] | None = None,
) -> Gate:
    """The gate on ``table`` at ``data_dim``; writes nothing.

    ``fit``: fit the table to its capacity targets at ``data_dim`` first (``tablefit``);
    ``targets`` replace the table's capacity targets. The error, when there is one, names
    every off row and the fix.
    """
    scaling = load_table(table)
    unknown = sorted(set(archs or ()) - set(scaling.archs))
    if unknown:
        raise ParamGateError(f"archs {unknown} are not in the scaling table {scaling.path}")
    if targets is not None:
        scaling = with_targets(scaling, targets)
    fitted = fit_table(scaling, data_dim, parameterisation, archs) if fit else None
    if fitted is not None:
        scaling = fitted.table
    counted = count_table(scaling, data_dim, parameterisation)
    rows = [r for r in counted if archs is None or r.arch in archs]
    markdown = render_markdown(rows, scaling, data_dim, parameterisation)
    if fitted is not None and fitted.changed:
        moved = [
            f"- {a}/{s}: {_row_text(old)} -> {_row_text(new)}"
            for (a, s), (old, new) in fitted.changed.items()
            if archs is None or a in archs
        ]
        markdown += f"\nFitted at D = {data_dim} (rows off their target moved):\n\n"
        markdown += "\n".join(moved) + "\n"
    bad = [f"{r.arch}/{r.scale}" for r in rows if not r.ok]
    unbuildable = [f"{r.arch}/{r.scale}" for r in rows if r.n_params is None]
    error = None
    if unbuildable:
        detail = fitted.problems() if fitted is not None else ""
        error = (
            f"{markdown}\nThese rows cannot be built for data of dimension {data_dim}: "
            f"{', '.join(unbuildable)}. Fix the scaling table (num_tokens must divide D)."
            + (f"\n{detail}" if detail else "")
        )
    elif bad and not allow_off_ratio:
        if fitted is not None and not fitted.ok:
            fix = f"Fitting cannot reach these targets at D = {data_dim}:\n{fitted.problems()}\n"
            if fitted.proposed_targets:
                proposed = ",".join(f"{k}={v}" for k, v in fitted.proposed_targets.items())
                command = _table_command(table, data_dim, parameterisation)
                fix += (
                    f"Fit the table to targets it reaches: `{command} --targets {proposed}`, "
                    "then set scaling_table: fitted.yaml; or "
                )
            fix += "set params.allow_off_ratio: true to record the verdicts and go on."
        elif fitted is None and scaling.capacity_targets is not None:
            fix = (
                f"Fit the table at this D: `{_table_command(table, data_dim, parameterisation)}`"
                ", then set scaling_table: fitted.yaml (config) or pass --table fitted.yaml; or "
                "pass --allow-off-ratio (config: params.allow_off_ratio: true) to record the "
                "verdicts and go on."
            )
        else:
            fix = (
                "Fix these rows of the scaling table, or pass --allow-off-ratio (config: "
                "params.allow_off_ratio: true) to record the verdicts and go on."
            )
        error = f"{markdown}\nParameter gate failed for {', '.join(bad)}. {fix}"
    header = (
        f"The table the cells train: {table_label(scaling)} at D = {data_dim}, parameterisation "
        f"{parameterisation}"
        + (
            f", fitted (rows moved: {', '.join(f'{a}/{s}' for a, s in fitted.changed) or 'none'})"
            if fitted is not None
            else ", as written"
        )
        + "."
    )
    return Gate(scaling, rows, markdown, error, header)


def with_targets(table: ScalingTable, targets: dict[str, int]) -> ScalingTable:
    """``table`` with other capacity targets (every scale named, each > 0)."""
    if set(targets) != set(table.scales) or min(targets.values()) <= 0:
        raise ParamGateError(
            f"targets {targets}: give a positive parameter count for every scale "
            f"{list(table.scales)}"
        )
    return dataclasses.replace(table, capacity_targets=MappingProxyType(dict(targets)))


def _row_text(row: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())


def gate_table(
    table: str | Path | None,
    data_dim: int,
    parameterisation: str,
    archs: list[str] | None = None,
    allow_off_ratio: bool = False,
    fit: bool = False,
) -> tuple[ScalingTable, list[ParamRow]]:
    """The table the cells train and its rows, or ParamGateError; writes nothing (the
    workflow calls it while it builds the DAG)."""
    gate = check_gate(table, data_dim, allow_off_ratio, archs, parameterisation, fit)
    if gate.error:
        raise ParamGateError(gate.error)
    return gate.table, gate.rows


def table_yaml(table: ScalingTable, header: str) -> str:
    """``table`` as the text of a complete table file (``header`` as its comment lines)."""
    import yaml

    raw: dict = {
        "ratio": {"target": table.ratio_target, "min": table.ratio_min, "max": table.ratio_max},
        "scales": list(table.scales),
        "default_scale": table.default_scale,
    }
    if table.capacity_targets is not None:
        raw["capacity"] = {
            "tolerance": table.capacity_tolerance,
            "targets": dict(table.capacity_targets),
        }
    raw["fit"] = {
        "knobs": dict(table.fit.knobs),
        "min_width": table.fit.min_width,
        "dim": table.fit.dim,
    }
    raw["archs"] = {a: {s: table.row(a, s) for s in table.scales} for a in table.archs}
    body = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def write_table(table: ScalingTable, path: str | Path, header: str) -> None:
    """``table`` as a complete YAML file that ``load_table`` reads back."""
    atomic_write(path, table_yaml(table, header))


def verify_params(
    table: str | Path | None = None,
    data_dim: int = SyntheticConfig.dim,
    out_csv: str | Path | None = None,
    out_md: str | Path | None = None,
    allow_off_ratio: bool = False,
    archs: list[str] | None = None,
    parameterisation: str = TrainConfig.parameterisation,
    fit: bool = False,
    out_table: str | Path | None = None,
) -> list[ParamRow]:
    """Count every arch x scale at data dimension ``data_dim``, write the CSV / Markdown table,
    and raise ParamGateError (whose message is the table) when a row is off, unless
    ``allow_off_ratio``. A row that cannot be built at ``data_dim`` fails the gate always.
    ``archs`` limits the gate to the archs a study trains (default: every arch of the table);
    ``parameterisation`` is the cells' (its parameters count); ``fit`` fits the table at
    ``data_dim`` first, and ``out_table`` writes the table the cells train (fitted or not).
    """
    gate = check_gate(table, data_dim, allow_off_ratio, archs, parameterisation, fit)
    gate.record(out_csv, out_md, out_table)
    if gate.error:
        raise ParamGateError(gate.error)
    return gate.rows

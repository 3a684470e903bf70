"""The scaling table: one YAML file with the ratio band, the scale order and a row per arch x scale.

Torch-free, so the table can be validated while a workflow builds its DAG.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ..config import from_section
from ..errors import ConfigError, ScalingTableError
from .configs import ARCH_CONFIGS, build_config, field_names

DEFAULT_TABLE = Path(__file__).with_name("scaling.yaml")
ORIGINAL_PLAN_TABLE = Path(__file__).with_name("scaling_original.yaml")
CPU_TABLE = Path(__file__).with_name("scaling_cpu.yaml")
PACKAGED_TABLES = {"default": DEFAULT_TABLE, "cpu": CPU_TABLE, "original": ORIGINAL_PLAN_TABLE}
"""Tables shipped with fmscale, by the name a config or ``--table`` may give instead of a path."""
TOP_LEVEL_KEYS = {"ratio", "scales", "default_scale", "capacity", "fit", "archs"}


@dataclass(frozen=True)
class ScalingTable:
    """A validated scaling table."""

    path: Path
    scales: tuple[str, ...]
    default_scale: str
    ratio_target: float
    ratio_min: float
    ratio_max: float
    capacity_targets: Mapping[str, int] | None
    capacity_tolerance: float
    rows: Mapping[str, Mapping[str, Mapping[str, Any]]]
    fit: Fit = field(default_factory=lambda: Fit())

    @property
    def archs(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def row(self, arch: str, scale: str | None = None) -> dict[str, Any]:
        """A mutable copy of the row; unknown arch or scale raise ValueError listing what exists."""
        if arch not in self.rows:
            raise ValueError(
                f"unknown arch '{arch}'; available: {list(self.rows)} (table {self.path})"
            )
        scale = self.default_scale if scale is None else scale
        if scale not in self.rows[arch]:
            raise ValueError(
                f"unknown scale '{scale}' for arch '{arch}'; available: {list(self.rows[arch])}"
            )
        return _thaw(self.rows[arch][scale])


def _freeze(row: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})


def _thaw(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else copy.copy(v) for k, v in row.items()}


def _fail(path: Path, where: str, msg: str) -> ScalingTableError:
    return ScalingTableError(f"scaling table {path}: {where}: {msg}")


@dataclass(frozen=True)
class RatioBand:
    """Allowed params[next] / params[previous] between consecutive scales."""

    target: float = 4.0
    min: float = 3.0
    max: float = 5.0

    def check(self) -> None:
        if not 0 < self.min <= self.target <= self.max:
            raise ConfigError(
                f"ratio: need 0 < min <= target <= max, got min={self.min}, target={self.target}, "
                f"max={self.max}"
            )


@dataclass(frozen=True)
class Capacity:
    """A shared parameter target per scale, each arch within ``tolerance`` of it."""

    targets: dict[str, int]
    tolerance: float = 0.15

    def check(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ConfigError(f"capacity.tolerance must be in (0, 1), got {self.tolerance}")
        bad = {scale: n for scale, n in self.targets.items() if n <= 0}
        if bad:
            raise ConfigError(f"capacity.targets: {bad} must be > 0")


@dataclass(frozen=True)
class Fit:
    """How ``fmscale table`` fits a row to its capacity target at the data's D: the knob it
    moves per arch (default: the arch's width, ``ARCH_CONFIGS[arch].width``; everything else
    is held), the smallest width it may give, and the D the rows were written for (``dim``:
    there, rows within tolerance are kept as written; at any other D every row is fitted)."""

    knobs: dict[str, str] = field(default_factory=dict)
    min_width: int = 16
    dim: int | None = None

    def check(self) -> None:
        if self.min_width < 1:
            raise ConfigError(f"fit.min_width={self.min_width} must be >= 1")
        if self.dim is not None and self.dim < 1:
            raise ConfigError(f"fit.dim={self.dim} must be >= 1")
        for arch, knob in self.knobs.items():
            if arch not in ARCH_CONFIGS:
                raise ConfigError(f"fit.knobs.{arch}: unknown arch; known: {list(ARCH_CONFIGS)}")
            if knob not in field_names(arch):
                raise ConfigError(
                    f"fit.knobs.{arch}={knob!r} is not a key of a {arch} row; "
                    f"allowed: {field_names(arch)}"
                )

    def knob(self, arch: str) -> str:
        """The key of ``arch``'s rows that fitting moves."""
        return self.knobs.get(arch, ARCH_CONFIGS[arch].width)


def _section(path: Path, cls: type, spec: Any, name: str) -> Any:
    """``spec`` read through the shared config coercer; errors name the table file."""
    try:
        return from_section(cls, spec, name)
    except ConfigError as exc:
        raise ScalingTableError(f"scaling table {path}: {exc}") from None


def _parse_rows(path: Path, archs: Any, scales: tuple[str, ...]) -> dict:
    if not isinstance(archs, dict) or not archs:
        raise _fail(path, "archs", "must map at least one arch to its rows")
    rows = {}
    for arch, by_scale in archs.items():
        if arch not in ARCH_CONFIGS:
            raise _fail(path, f"archs.{arch}", f"unknown arch; known: {list(ARCH_CONFIGS)}")
        if not isinstance(by_scale, dict):
            raise _fail(path, f"archs.{arch}", "must map each scale to a row")
        missing = [s for s in scales if s not in by_scale]
        extra = [s for s in by_scale if s not in scales]
        if missing or extra:
            raise _fail(
                path,
                f"archs.{arch}",
                f"scales must be exactly {list(scales)}; missing {missing}, unexpected {extra}",
            )
        rows[arch] = {}
        for scale in scales:
            row = by_scale[scale]
            if not isinstance(row, dict):
                raise _fail(path, f"archs.{arch}.{scale}", f"must be a mapping, got {row!r}")
            try:
                build_config(arch, row)
            except ValueError as exc:
                raise _fail(path, f"archs.{arch}.{scale}", str(exc)) from None
            rows[arch][scale] = _freeze(row)
        rows[arch] = MappingProxyType(rows[arch])
    return rows


def parse_table(raw: Any, path: Path) -> ScalingTable:
    """Validate a table already read from YAML."""
    if not isinstance(raw, dict):
        raise _fail(path, "top level", "must be a mapping")
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise _fail(
            path, "top level", f"unknown key(s) {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}"
        )
    scales = raw.get("scales")
    if (
        not isinstance(scales, list)
        or not scales
        or not all(isinstance(s, str) and s for s in scales)
        or len(set(scales)) != len(scales)
    ):
        raise _fail(path, "scales", f"must be a non-empty list of distinct names, got {scales!r}")
    scales = tuple(scales)
    default_scale = raw.get("default_scale", scales[len(scales) // 2])
    if default_scale not in scales:
        raise _fail(path, "default_scale", f"'{default_scale}' is not one of {list(scales)}")
    ratio = _section(path, RatioBand, raw.get("ratio"), "ratio")
    capacity = None
    if raw.get("capacity") is not None:
        capacity = _section(path, Capacity, raw["capacity"], "capacity")
        if set(capacity.targets) != set(scales):
            raise _fail(
                path,
                "capacity.targets",
                f"must map every scale {list(scales)} to a parameter count",
            )
    fit = _section(path, Fit, raw.get("fit"), "fit")
    return ScalingTable(
        path=path,
        fit=fit,
        scales=scales,
        default_scale=default_scale,
        ratio_target=ratio.target,
        ratio_min=ratio.min,
        ratio_max=ratio.max,
        capacity_targets=None if capacity is None else MappingProxyType(capacity.targets),
        capacity_tolerance=0.15 if capacity is None else capacity.tolerance,
        rows=MappingProxyType(_parse_rows(path, raw.get("archs"), scales)),
    )


@functools.lru_cache(maxsize=16)
def _load_resolved(path: Path) -> ScalingTable:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScalingTableError(
            f"scaling table {path}: cannot read: {exc.strerror} (give a path, or the name of a "
            f"packaged table: {', '.join(PACKAGED_TABLES)})"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScalingTableError(f"scaling table {path}: invalid YAML: {exc}") from None
    return parse_table(raw, path)


def load_table(path: str | Path | None = None) -> ScalingTable:
    """Load and validate a scaling table: a path, a packaged table's name (``PACKAGED_TABLES``)
    or None for the packaged default."""
    return _load_resolved(table_path(path))


def table_path(path: str | Path | None) -> Path:
    """The file a table reference names: None is the default table, a packaged name its file."""
    if path is None:
        return DEFAULT_TABLE
    return PACKAGED_TABLES.get(str(path), Path(path)).resolve()


def is_packaged(table: str | Path | None) -> bool:
    """Whether a table reference names a packaged table (None: the default one)."""
    return (
        table is None
        or str(table) in PACKAGED_TABLES
        or table_path(table) in set(p.resolve() for p in PACKAGED_TABLES.values())
    )


def table_label(table: ScalingTable) -> str:
    """How outputs name a table: a packaged one by its name (also a copy of it in another
    checkout, same file name and bytes), any other by its path, relative to the working
    directory when under it, so no output names the machine it ran on."""
    path = Path(table.path)
    for name, packaged in PACKAGED_TABLES.items():
        if path.resolve() == packaged.resolve() or (
            path.name == packaged.name
            and path.is_file()
            and path.read_bytes() == packaged.read_bytes()
        ):
            return f"{name} (packaged)"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def get_scaled_config(arch: str, scale: str | None = None, table: str | Path | None = None) -> dict:
    """A copy of the table row for ``arch`` at ``scale`` (the table's default scale if None)."""
    return load_table(table).row(arch, scale)


def list_available_scales(table: str | Path | None = None) -> dict[str, list[str]]:
    """arch -> its scales, in the table's order."""
    t = load_table(table)
    return {arch: list(t.scales) for arch in t.archs}


def __getattr__(name: str) -> Any:
    """``SCALING_CONFIGS``: the default table keyed ``f"{arch}_{scale}"``, read-only, built on
    first use (not at import)."""
    if name != "SCALING_CONFIGS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return MappingProxyType(
        {
            f"{arch}_{scale}": row
            for arch, rows in load_table().rows.items()
            for scale, row in rows.items()
        }
    )

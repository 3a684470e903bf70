"""The scaling table: one YAML file with the ratio band, the scale order and a row per arch x scale.

Torch-free, so the table can be validated while a workflow builds its DAG.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from .configs import ARCH_CONFIGS, build_config

DEFAULT_TABLE = Path(__file__).with_name("scaling.yaml")
ORIGINAL_PLAN_TABLE = Path(__file__).with_name("scaling_original.yaml")
TOP_LEVEL_KEYS = {"ratio", "scales", "default_scale", "capacity", "archs"}


class ScalingTableError(ValueError):
    """A malformed scaling table; the message names the file, the row and the field."""


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


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, where, f"must be a number, got {value!r}")
    return float(value)


def _parse_ratio(path: Path, spec: Any) -> tuple[float, float, float]:
    spec = {} if spec is None else spec
    if not isinstance(spec, dict) or set(spec) - {"target", "min", "max"}:
        raise _fail(path, "ratio", f"must be a mapping with keys target, min, max; got {spec!r}")
    target = _number(path, "ratio.target", spec.get("target", 4.0))
    lo = _number(path, "ratio.min", spec.get("min", 3.0))
    hi = _number(path, "ratio.max", spec.get("max", 5.0))
    if not 0 < lo <= target <= hi:
        raise _fail(
            path, "ratio", f"need 0 < min <= target <= max, got min={lo}, target={target}, max={hi}"
        )
    return target, lo, hi


def _parse_capacity(path: Path, spec: Any, scales: tuple[str, ...]) -> tuple[dict | None, float]:
    if spec is None:
        return None, 0.15
    if not isinstance(spec, dict) or set(spec) - {"targets", "tolerance"}:
        raise _fail(
            path, "capacity", f"must be a mapping with keys targets, tolerance; got {spec!r}"
        )
    tol = _number(path, "capacity.tolerance", spec.get("tolerance", 0.15))
    if not 0 < tol < 1:
        raise _fail(path, "capacity.tolerance", f"must be in (0, 1), got {tol}")
    targets = spec.get("targets")
    if not isinstance(targets, dict) or set(targets) != set(scales):
        raise _fail(
            path, "capacity.targets", f"must map every scale {list(scales)} to a parameter count"
        )
    for scale, n in targets.items():
        if _number(path, f"capacity.targets.{scale}", n) <= 0:
            raise _fail(path, f"capacity.targets.{scale}", f"must be > 0, got {n}")
    return {s: int(targets[s]) for s in scales}, tol


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
    target, lo, hi = _parse_ratio(path, raw.get("ratio"))
    capacity, tolerance = _parse_capacity(path, raw.get("capacity"), scales)
    return ScalingTable(
        path=path,
        scales=scales,
        default_scale=default_scale,
        ratio_target=target,
        ratio_min=lo,
        ratio_max=hi,
        capacity_targets=None if capacity is None else MappingProxyType(capacity),
        capacity_tolerance=tolerance,
        rows=MappingProxyType(_parse_rows(path, raw.get("archs"), scales)),
    )


@functools.lru_cache(maxsize=16)
def _load_resolved(path: Path) -> ScalingTable:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScalingTableError(f"scaling table {path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScalingTableError(f"scaling table {path}: invalid YAML: {exc}") from None
    return parse_table(raw, path)


def load_table(path: str | Path | None = None) -> ScalingTable:
    """Load and validate a scaling table (the packaged default when ``path`` is None)."""
    return _load_resolved(Path(path or DEFAULT_TABLE).resolve())


def get_scaled_config(arch: str, scale: str | None = None, table: str | Path | None = None) -> dict:
    """A copy of the table row for ``arch`` at ``scale`` (the table's default scale if None)."""
    return load_table(table).row(arch, scale)


def list_available_scales(table: str | Path | None = None) -> dict[str, list[str]]:
    """arch -> its scales, in the table's order."""
    t = load_table(table)
    return {arch: list(t.scales) for arch in t.archs}


SCALING_CONFIGS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        f"{arch}_{scale}": row
        for arch, rows in load_table().rows.items()
        for scale, row in rows.items()
    }
)
"""The default table, keyed ``f"{arch}_{scale}"``; read-only."""

"""YAML sections into frozen dataclasses: ``from_section``, the one coercer (unknown keys,
missing required keys and wrong types raise ``ConfigError`` naming ``section.key``), and the
YAML reading and merging the CLI and the workflow share. Torch-free."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")


def at_least(cfg: Any, section: str, low: int, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < low:
            raise ConfigError(f"{section}.{name}={getattr(cfg, name)} must be >= {low}")


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _key(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def coerce(where: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint``, or ConfigError naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return from_section(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(where, value, inner)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        integral = isinstance(value, float) and math.isfinite(value) and value == int(value)
        if isinstance(value, bool) or not (isinstance(value, int) or integral):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {str(k): coerce(_key(where, str(k)), v, args[1]) for k, v in value.items()}
    raise TypeError(f"{where}: unsupported setting type {hint}")


def from_section(cls: type[T], raw: dict[str, Any] | None, section: str = "") -> T:
    """Build the dataclass ``cls`` from a mapping and run its ``check()``.

    Unknown or missing keys and wrong types raise ConfigError naming ``section.key``.
    """
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{section or cls.__name__} must be a mapping, got {raw!r}")
    raw = dict(raw or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{section}: " if section else ""
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}unknown key(s) {unknown}; allowed: {sorted(fields)}")
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and name not in raw
    ]
    if required:
        raise ConfigError(f"{prefix}missing required key(s) {required}")
    hints = typing.get_type_hints(cls)
    obj = cls(**{k: coerce(_key(section, k), v, hints[k]) for k, v in raw.items()})
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


def merge_configs(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base`` as Snakemake merges ``--configfile``: mappings key by key,
    everything else replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; errors name the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping of config sections")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config sections at the top level, "
            f"got a {type(raw).__name__}"
        )
    return raw


def flatten(tree: dict[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one, keys joined by ``sep`` (``train.lr``)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, sep, f"{prefix}{key}{sep}"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

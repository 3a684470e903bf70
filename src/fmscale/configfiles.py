"""Config files: YAML read with errors naming the file, overlays merged as ``snakemake
--configfile`` merges them, nested keys flattened. Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


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

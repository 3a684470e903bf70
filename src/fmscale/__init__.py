"""fmscale: a reproducible ablation study of flow-matching velocity networks."""

__version__ = "0.3.0"
"""The one home of the version: pyproject.toml reads it (CHANGELOG.md, one tag per release)."""

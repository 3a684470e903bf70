"""fmscale: a reproducible ablation study of flow-matching velocity networks."""

__version__ = "0.1.0"

"""Typed settings: one dataclass per config section, the single home of every default.

This module holds the sections a cell reads (data, train, evaluate) and ``from_section``, the
one coercer: unknown keys, missing required keys and wrong types raise ``ConfigError`` naming
``section.key``, then the dataclass's ``check()`` tests bounds and cross-field rules. The
study's own sections are in ``fmscale.study_config``. The workflow's JSON Schema
(``workflow/schemas/config.schema.yaml``) holds types and bounds only, for early errors that
name the key. Torch-free: the Snakefile imports this while it builds its DAG.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

SOLVERS = {"euler": 1, "midpoint": 2, "heun": 2}
"""ODE solver name -> velocity evaluations per step (the one list of solver names)."""


PARAMETERISATIONS = (
    "velocity",
    "skip_scalar",
    "skip_dim",
    "skip_lowrank",
    "skip_share",
    "edm",
    "data",
)
"""How a network's output becomes the velocity (``fmscale.flow.VelocityField``)."""


DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device names a setting may give (plus ``cuda:N``)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """A Gaussian mixture on a ``latent_dim``-dim subspace of R^dim plus isotropic noise."""

    dim: int = 1024
    n_rows: int = 24000
    n_modes: int = 8
    latent_dim: int = 16
    mode_spread: float = 4.0
    weight_decay: float = 0.7
    noise_std: float = 0.05

    def check(self) -> None:
        at_least(self, "data.synthetic", 1, "n_modes", "latent_dim")
        at_least(self, "data.synthetic", 2, "dim")
        at_least(self, "data.synthetic", 3, "n_rows")
        if self.latent_dim > self.dim:
            raise ConfigError(f"data.synthetic.latent_dim={self.latent_dim} exceeds dim={self.dim}")
        if self.mode_spread <= 0 or self.noise_std <= 0 or not 0 < self.weight_decay <= 1:
            raise ConfigError(
                "data.synthetic: mode_spread and noise_std must be > 0, weight_decay in (0, 1]"
            )


DATASET_NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""What a dataset name may hold: it is a folder of every cell's path (``study.CELL_PATTERN``)."""


SYNTHETIC = "synthetic"
"""The embedded source's name, and the dataset name it gets by default."""


def dataset_name(path: str) -> str:
    """The default name of a file's dataset: its stem, with characters a path wildcard may not
    hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._") or "embeddings"


@dataclass(frozen=True)
class DataConfig:
    """Where the rows come from (``source: synthetic | file``) and how they are split.

    ``name`` labels the dataset in every path of a study (``runs/<name>/...``): it defaults to
    the file's stem (``synthetic`` for the embedded source) and does not change the data.
    ``column``: the parquet column (or the tensor of a .pt / .safetensors dict) of the vectors.
    """

    name: str | None = None
    source: str = SYNTHETIC
    path: str | None = None
    column: str | None = None
    n_val: int = 2000
    n_test: int = 2000
    seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.name is None:
            name = dataset_name(self.path) if self.source == "file" and self.path else SYNTHETIC
            object.__setattr__(self, "name", name)

    def check(self) -> None:
        at_least(self, "data", 1, "n_val", "n_test")
        at_least(self, "data", 0, "seed")
        if self.source not in (SYNTHETIC, "file"):
            raise ConfigError(f"data.source={self.source!r}; use 'synthetic' or 'file'")
        if self.source == "file" and not self.path:
            raise ConfigError(
                "data.source is 'file' but data.path is not set; give the embeddings file"
            )
        if not DATASET_NAME.fullmatch(self.name):
            raise ConfigError(
                f"data.name={self.name!r}: a dataset name is a folder of every cell's path; "
                "use letters, digits, '_', '.' and '-' only"
            )
        if self.source == "file" and self.name == SYNTHETIC:
            raise ConfigError(
                f"data.name={SYNTHETIC!r} labels the embedded synthetic data, but data.source is "
                "'file'; drop data.name (it defaults to the file's stem) or choose another name"
            )
        if self.column is not None and self.source != "file":
            raise ConfigError("data.column names a column of an embeddings file; set data.path")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> DataConfig:
        """From a ``data:`` section; a ``path`` without a ``source`` means ``source: file``."""
        raw = dict(raw or {})
        if raw.get("path") and "source" not in raw:
            raw["source"] = "file"
        return from_section(cls, raw, "data")

    @property
    def file(self) -> str | None:
        """The embeddings file, or None for the synthetic source."""
        return self.path if self.source == "file" else None


@dataclass(frozen=True)
class TrainConfig:
    """One cell's optimisation: a budget, AdamW with warm-up + cosine, EMA with warm-up.

    The budget is ``steps`` (every cell the same number of updates: an iso-step study) or
    ``epochs`` (every cell the same passes over its own rows: an iso-epoch study), at most one
    of them; ``DEFAULT_STEPS`` when neither is set. ``for_rows`` resolves it for a cell.
    """

    DEFAULT_STEPS: ClassVar[int] = 3000

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 256
    parameterisation: str = "skip_share"  # measured: docs/decisions/parameterisation.md
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ot_pairing: bool = False
    ckpt_every: int = 500
    keep_ckpts: int = 2
    log_every: int = 50
    trajectory_points: int = 7  # snapshots at steps, steps/2, ..., steps/2^(points-1); 0: none
    trajectory_samples: int = 200
    trajectory_nfe: int = 8
    trajectory_max_share: float = 0.2  # fewer snapshots when they would cost more FLOPs
    device: str = "auto"
    bf16: bool = True
    tf32: bool = True
    fused_adamw: bool = True
    compile: bool = False
    require_fused: bool = False  # a Mamba cell fails rather than run its scan (not mamba-ssm's)

    def check(self) -> None:
        at_least(self, "train", 1, "batch_size", "ckpt_every", "keep_ckpts", "log_every")
        at_least(self, "train", 0, "trajectory_points")
        at_least(self, "train", 2, "trajectory_samples", "trajectory_nfe")
        if not 0 < self.trajectory_max_share <= 1:
            raise ConfigError(
                f"train.trajectory_max_share={self.trajectory_max_share} must be in (0, 1]"
            )
        if self.trajectory_nfe % 2:
            raise ConfigError(
                f"train.trajectory_nfe={self.trajectory_nfe} must be even (midpoint: 2 per step)"
            )
        if self.steps is not None and self.epochs is not None:
            raise ConfigError(
                f"train.steps={self.steps} and train.epochs={self.epochs} are both set; give "
                "exactly one (steps: the same updates per cell; epochs: the same passes over each "
                "cell's rows) and set the other to null"
            )
        if self.steps is not None:
            at_least(self, "train", 1, "steps")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"train.epochs={self.epochs} must be > 0")
        if not 0 <= self.warmup_frac < 1:
            raise ConfigError(f"train.warmup_frac={self.warmup_frac} must be in [0, 1)")
        if not 0 <= self.min_lr_frac <= 1:
            raise ConfigError(f"train.min_lr_frac={self.min_lr_frac} must be in [0, 1]")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay={self.ema_decay} must be in [0, 1)")
        if self.lr <= 0 or self.grad_clip <= 0 or self.weight_decay < 0:
            raise ConfigError("train.lr and train.grad_clip must be > 0, weight_decay >= 0")
        if self.parameterisation not in PARAMETERISATIONS:
            raise ConfigError(
                f"train.parameterisation={self.parameterisation!r}; "
                f"available: {list(PARAMETERISATIONS)}"
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"train.device={self.device!r}; use auto, cpu, cuda, cuda:N or mps")

    def for_rows(self, n_train: int) -> TrainConfig:
        """This config with ``steps`` resolved for a cell of ``n_train`` rows:
        ceil(epochs x n_train / batch_size) on the epoch axis."""
        if self.epochs is not None:
            return dataclasses.replace(
                self, steps=max(1, math.ceil(self.epochs * n_train / self.batch_size))
            )
        return dataclasses.replace(self, steps=self.steps or self.DEFAULT_STEPS)


@dataclass(frozen=True)
class EvalConfig:
    """Sampling and metric settings for one cell."""

    nfe: tuple[int, ...] = (8, 32)
    solver: str = "midpoint"
    n_samples: int = 2000
    pca_dims: int = 32
    knn_k: int = 5
    seed: int = 0
    batch_size: int = 1000
    empirical_flow_max_n: int = 25_000
    """Above this n_train the empirical_flow reference row is skipped: each of its velocity
    evaluations costs n_train x D per sample (~10 s per 1,000 samples at NFE 8 on 2 CPU cores
    at n_train = 25,000, D = 1024)."""

    def check(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(f"evaluate.solver={self.solver!r}; available: {list(SOLVERS)}")
        per_step = SOLVERS[self.solver]
        if not self.nfe or any(n < 1 or n % per_step for n in self.nfe):
            raise ConfigError(
                f"evaluate.nfe={list(self.nfe)} must be positive multiples of {per_step} "
                f"for {self.solver}"
            )
        at_least(self, "evaluate", 1, "pca_dims", "knn_k", "batch_size")
        at_least(self, "evaluate", 2, "n_samples")
        at_least(self, "evaluate", 0, "seed", "empirical_flow_max_n")
        if self.n_samples <= self.knn_k:
            raise ConfigError(
                f"evaluate.n_samples={self.n_samples} must exceed evaluate.knn_k={self.knn_k} "
                "(each k-NN ball needs k other samples)"
            )


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

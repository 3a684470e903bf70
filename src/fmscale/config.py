"""Typed settings: one dataclass per config section, the single home of every default.

The workflow's JSON Schema (``workflow/schemas/config.schema.yaml``) holds types and bounds
only, for early errors that name the key; everything else reads a section through
``fmscale.sections.from_section``, the one coercer: unknown keys, missing required keys
and wrong types raise ``ConfigError`` naming ``section.key``, then the dataclass's
``check()`` tests bounds and cross-field rules. Torch-free: the Snakefile imports this while
it builds its DAG.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError
from .sections import at_least, coerce, from_section, plain

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
    parameterisation: str = "skip_share"  # chosen by measurement: benchmarks/README.md
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


@dataclass(frozen=True)
class RefineConfig:
    """Adaptive refinement of n_train around the memorisation crossover (``fmscale.refine``,
    docs/refine.md): ``rounds`` rounds (0: off), each adding ``points`` log-spaced n_train
    values (every seed) inside each arch x scale's bracket of ``analysis.levels``.

    ``points`` 2: a round cuts a bracket's log-width by 3 with 2 cells per seed (1 halves it
    with one cell, but rounds run one after the other; 3 cuts it by 4 with 3 cells).
    ``min_n`` > 0: a crossing below the grid (every mean under the lowest level) is looked for
    below it too, ``points`` values from max(min_n, smallest / BELOW_REACH) up to the smallest
    n_train (0: never below the grid).
    """

    rounds: int = 0
    points: int = 2
    min_n: int = 0

    def check(self) -> None:
        at_least(self, "grid.refine", 0, "rounds", "min_n")
        at_least(self, "grid.refine", 1, "points")


@dataclass(frozen=True)
class GridConfig:
    """The study's axes: every arch x scale x n_train x seed is one cell; ``refine`` adds
    cells at n_train values between the grid's (off by default)."""

    archs: tuple[str, ...]
    scales: tuple[str, ...]
    n_train: tuple[int, ...]
    seeds: tuple[int, ...]
    refine: RefineConfig = field(default_factory=RefineConfig)

    def check(self) -> None:
        for name in ("archs", "scales", "n_train", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(
                    f"grid.{name}={list(values)} must be a non-empty list of distinct values"
                )
        if min(self.n_train) < 1 or min(self.seeds) < 0:
            raise ConfigError("grid: n_train must be >= 1 and seeds >= 0")


@dataclass(frozen=True)
class ParamsConfig:
    """The parameter gate. ``fit``: a packaged scaling table is fitted to its capacity targets
    at the data's D before the gate (a user's table never is: ``fmscale table`` fits it)."""

    allow_off_ratio: bool = False
    fit: bool = True


@dataclass(frozen=True)
class PlanAssumptions:
    """What ``fmscale plan`` assumes where it cannot measure (its flags override each)."""

    utilisation: float = 0.1
    """The share of the peak a cell's FLOPs are assumed to reach."""
    op_latency_us: float = 6.0
    """Host-side microseconds per kernel-launching operation of an eager PyTorch step on a GPU,
    whatever its size (an assumption): PyTorch's eager dispatch of one tiny op is 4.5 us on a
    fast desktop CPU (J. Ansel, "Micro-optimizations for the most micro of benchmarks",
    dev-discuss.pytorch.org/t/1836), and Meta's Holistic Trace Analysis docs put the CPU side of
    a CUDA kernel launch at "usually 5-20 microseconds" (facebookresearch/HolisticTraceAnalysis,
    docs/source/features/cuda_kernel_launch_stats.rst). The same for every GPU named here."""
    gpu_job_start_s: float = 10.0
    """Seconds a GPU job spends before and after its steps (an assumption): interpreter, torch
    and torch._dynamo imports (~3-4 s measured on the CPU machine,
    benchmarks/pipeline_overhead.md), CUDA context and cuBLAS initialisation, data to the
    device, outputs written."""
    cpu_steps: int = 5
    """Timed training steps per arch x scale on this CPU (their median is used)."""


@dataclass(frozen=True)
class AnalysisConfig:
    """How ``fmscale analyze`` reads the study (the workflow and the command share these).

    ``levels``: the memorised_fraction levels whose crossings (n*, tau_mem) are reported; the
    low one is where most studies' data crosses, the high one the classical 0.5.
    """

    levels: tuple[float, ...] = (0.1, 0.5)
    resamples: int = 1000
    seed: int = 0

    def check(self) -> None:
        if not self.levels or any(not 0 < level < 1 for level in self.levels):
            raise ConfigError(
                f"analysis.levels={list(self.levels)} must be a non-empty list of fractions "
                "strictly between 0 and 1"
            )
        if list(self.levels) != sorted(set(self.levels)):
            raise ConfigError(
                f"analysis.levels={list(self.levels)} must be distinct and increasing"
            )
        at_least(self, "analysis", 10, "resamples")
        at_least(self, "analysis", 0, "seed")


@dataclass(frozen=True)
class ResourcesConfig:
    """What each job asks of the machine or the cluster."""

    train_threads: int = 1
    gpu: bool = False
    retries: int = 1
    runtime_min: dict[str, int] = field(
        default_factory=lambda: {"tiny": 20, "small": 40, "base": 90}
    )
    mem_mb: int = 4000

    def check(self) -> None:
        at_least(self, "resources", 1, "train_threads")
        at_least(self, "resources", 0, "retries")
        at_least(self, "resources", 256, "mem_mb")
        bad = {k: v for k, v in self.runtime_min.items() if v < 1}
        if bad:
            raise ConfigError(f"resources.runtime_min: {bad} must be >= 1 minute")


@dataclass(frozen=True)
class StudyConfig:
    """A whole study config (config.yaml plus any ``--configfile`` merged over it)."""

    grid: GridConfig
    results: str = "results"
    scaling_table: str | None = None
    params: ParamsConfig = field(default_factory=ParamsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def check(self) -> None:
        if not self.results.strip() or Path(self.results).resolve() == Path("/").resolve():
            raise ConfigError(
                f"results={self.results!r}: give a folder for the study's outputs, not an empty "
                "path or the filesystem root"
            )

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain JSON-ready values."""
        return plain(getattr(self, name))


def check_sections(raw: dict[str, Any], where: str) -> None:
    """Check every section present in a study config file, as strictly as the workflow does.

    For files that hold only some sections (``fmscale train --config``): unknown top-level
    keys are refused by name, and each section present is read through its dataclass.
    """
    hints = typing.get_type_hints(StudyConfig)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; allowed: {sorted(hints)}")
    for name, value in raw.items():
        if name == "data":
            DataConfig.from_dict(value)
        elif value is not None:
            coerce(name, value, hints[name])

"""The study's own sections: grid (and refinement), params gate, plan assumptions, analysis,
resources, and ``StudyConfig``, which holds every section of a study config. Torch-free."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DataConfig, EvalConfig, TrainConfig, at_least, coerce, plain
from .errors import ConfigError


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

"""Train one grid cell: conditional flow matching with checkpoints, exact resume and EMA.

A run holds ``<out>/.train.lock`` while it trains. Its live state sits in ``<out>/ckpt/``,
outside the workflow's declared outputs: the checkpoints and the live loss log, published to
``<out>/train_log.csv`` when the run ends. A checkpoint of this cell written with other settings
or data is moved to ``<out>/ckpt.stale/`` and the cell retrains from step 0; a checkpoint of
another cell is refused.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import CheckpointStore
from .config import TrainConfig
from .data import Dataset
from .devices import pick_device
from .errors import NonFiniteLoss, OutOfMemory, Preempted, RequiresFused
from .files import atomic_write, writing
from .flops import count_flops
from .flow import build_field, cfm_loss, ot_pair
from .models import resolve_row
from .models.mamba import MambaBlock, mamba_kernel
from .models.mamba_kernels import package_versions
from .runlock import cell_lock
from .sections import flatten
from .study import TRAJECTORY_FIELDS
from .trajectory import TrajectoryScorer, affordable_points, snapshot_steps

log = logging.getLogger(__name__)

RUN_ONLY_KEYS = ("ckpt_every", "keep_ckpts", "log_every", "device", "epochs", "require_fused")
"""train settings a checkpoint need not match to resume: how a run is kept, logged and
checked, not what it learns (``epochs`` is there as the steps it sets)."""
LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_s"]
CELL_KEYS = ("arch", "row", "n_train", "seed")
"""The identity keys that name the cell; the others (train settings, data) may change."""
STATE_KEYS = ("identity", "step", "wall_time", "model", "ema", "opt", "sched", "gen", "cpu_rng")
"""What a checkpoint needs to be resumed; ``cuda_rng``, ``device_type``, ``log_window`` and
``restarted_from_stale`` are optional (checkpoints of older versions lack the last three)."""
OOM_MARKERS = ("can't allocate memory", "not enough memory", "out of memory")


@dataclass(frozen=True)
class CellSpec:
    """What identifies a cell: arch x scale x n_train x seed, and the scaling table it reads."""

    arch: str
    scale: str | None
    n_train: int
    seed: int
    table: str | None = None


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_frac`` of the steps, then cosine down to ``min_lr_frac``."""
    warmup = int(cfg.warmup_frac * cfg.steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """EMA decay with warm-up, min(decay, (1 + step) / (10 + step)): early weights fade fast."""
    return min(cfg.ema_decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, params: list[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * params, for all tensors in one fused call."""
    torch._foreach_lerp_(list(ema.parameters()), params, 1 - decay)


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def versions() -> dict[str, str | None]:
    """What ran the cell: Python, torch and the CUDA it was built for (None on a CPU build),
    numpy, fmscale, and mamba-ssm / causal-conv1d where installed (None where not)."""
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "fmscale": __version__,
        **package_versions(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{device.type} ({cpu}, {torch.get_num_threads()} threads)"


def write_output(path: Path, content: str | bytes) -> None:
    """``atomic_write``, failing with CannotWrite naming ``path``."""
    with writing(path):
        atomic_write(path, content)


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys (``train.steps``, ``data``, ...) whose values differ: key -> (old, new)."""
    a, b = flatten(old), flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    """``train.steps: 50 -> 60, data: 'ab..' -> 'cd..'``."""
    return ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def is_out_of_memory(exc: BaseException) -> bool:
    """A device allocator's failure: torch.OutOfMemoryError, or the CPU allocator's message."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in OOM_MARKERS)


def memory_estimate(
    arch: str,
    row: dict[str, Any],
    data_dim: int,
    batch_size: int,
    n_train: int,
    parameterisation: str = TrainConfig.parameterisation,
) -> dict[str, int | None]:
    """What training needs, in bytes, found without allocating (the model is built on ``meta``).

    ``state``: weights, grads, 2 AdamW moments and EMA, 5 fp32 copies of the parameters;
    ``activations``: roughly what backward keeps for one batch (the leaf modules' outputs;
    None if the model cannot run on ``meta``); ``data``: the training set on the device.
    """
    with torch.device("meta"):
        model = build_field(arch, row, data_dim, parameterisation)
        activations = _activation_bytes(model, batch_size, data_dim)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "params": n_params,
        "state": 5 * 4 * n_params,
        "activations": activations,
        "data": 4 * n_train * data_dim,
    }


def _activation_bytes(model: nn.Module, batch_size: int, data_dim: int) -> int | None:
    """fp32 bytes of the leaf modules' outputs for one batch, run on the ``meta`` device."""
    numel: list[int] = []
    for module in model.modules():
        if not any(module.children()):
            module.register_forward_hook(
                lambda _m, _i, out: numel.append(out.numel() if torch.is_tensor(out) else 0)
            )
    try:
        model(
            torch.zeros(batch_size, data_dim, device="meta"), torch.zeros(batch_size, device="meta")
        )
    except Exception:  # an op without a meta kernel: the size stays unknown
        return None
    return 4 * sum(numel)


def _size(n_bytes: int | None) -> str:
    """Bytes in decimal units: 1.23 MB."""
    if n_bytes is None:
        return "unknown"
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.3g} {unit}"
        size /= 1000
    return f"{size:.3g} TB"


class _StopFlag:
    """Turns SIGTERM / SIGINT into a flag the loop checks between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Everything one cell's training holds; ``run`` trains to ``cfg.steps`` from where it is."""

    def __init__(self, spec: CellSpec, data: Dataset, cfg: TrainConfig, out: Path):
        cfg = cfg.for_rows(spec.n_train)  # the budget in steps for this cell's rows
        self.spec, self.cfg, self.out = spec, cfg, Path(out)
        self.device = pick_device(cfg.device)
        cuda = self.device.type == "cuda"
        if cuda and cfg.tf32:
            torch.set_float32_matmul_precision("high")  # TF32 matmuls
        self.autocast = cuda and cfg.bf16
        self.row = resolve_row(spec.arch, spec.scale, spec.table)
        self.data_dim = data.dim
        torch.manual_seed(spec.seed)
        with self._fits():
            rows = data.train(spec.n_train)
            self.model = build_field(spec.arch, self.row, data.dim, cfg.parameterisation, rows).to(
                self.device
            )
            self.ema = copy.deepcopy(self.model).requires_grad_(False)
            self.x_train = rows.to(self.device)
        self.mamba_kernel = self._mamba_kernel()
        self.params = list(self.model.parameters())
        # Fused AdamW: one kernel for all tensors on CUDA, and on CPU 2.7x faster than the
        # per-tensor loop torch picks there by default (benchmarks/README.md).
        fused = cfg.fused_adamw and self.device.type in ("cuda", "cpu")
        self.opt = torch.optim.AdamW(
            self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, cfg))
        self.gen = torch.Generator(self.device).manual_seed(spec.seed + 7919)
        self.data_fingerprint = data.fingerprint
        self.cudagraphs = cfg.compile and cuda
        self.loss = self._compiled_loss() if cfg.compile else self._loss
        self.step = 0
        self.wall_time = 0.0
        self.restarted_from_stale = False
        self.window = _LogWindow()
        self.store = CheckpointStore(self.out / "ckpt", keep=cfg.keep_ckpts, required=STATE_KEYS)
        self.log_path = self.store.root / "train_log.csv"
        self.trajectory_path = self.store.root / "trajectory.csv"
        self.scorer = TrajectoryScorer(data, spec.n_train, cfg)
        self.flops = count_flops(self.model, data.dim, cfg.batch_size)
        snapshot = self.scorer.flops(self.flops["sampling_flops_per_sample_per_nfe"])
        points = affordable_points(cfg, snapshot, self.flops["train_flops_per_step"])
        self.snapshots = set(snapshot_steps(cfg.steps, points))

    def _mamba_kernel(self) -> tuple[str | None, str]:
        """Which kernel the model's Mamba blocks run on this device and why ((None, "") without
        Mamba); RequiresFused when ``require_fused`` asks for mamba-ssm's and it cannot run."""
        if not any(isinstance(m, MambaBlock) for m in self.model.modules()):
            return None, ""
        kernel, reason = mamba_kernel(self.device)
        if kernel != "fused" and self.cfg.require_fused:
            raise RequiresFused(
                f"train.require_fused is true, but Mamba would run its pure-PyTorch scan on "
                f"{self.device}: {reason}. Run on a GPU of compute capability 7.5 or newer with "
                "mamba-ssm>=2.3.0 and causal-conv1d built for this torch and CUDA "
                "(docs/cluster.md), or set train.require_fused: false to accept the scan"
            )
        return kernel, reason

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the cell, the settings, the data."""
        train = {
            k: v
            for k, v in dataclasses.asdict(self.cfg).items()
            if k not in RUN_ONLY_KEYS and not k.startswith("trajectory_")
        }
        return {
            "arch": self.spec.arch,
            "row": self.row,
            "n_train": self.spec.n_train,
            "seed": self.spec.seed,
            "train": train,
            "data": self.data_fingerprint,
        }

    def state(self) -> dict[str, Any]:
        state = {
            "identity": json.dumps(self.identity(), sort_keys=True),
            "step": self.step,
            "wall_time": self.wall_time,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "gen": self.gen.get_state(),
            "device_type": self.device.type,
            "cpu_rng": torch.get_rng_state(),
            "log_window": self.window.state(),
            "restarted_from_stale": self.restarted_from_stale,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (its identity is checked by ``resume``)."""
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["cpu_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step, self.wall_time = state["step"], state["wall_time"]
        if "log_window" in state:  # older checkpoints were written right after a log row
            self.window = _LogWindow.from_state(state["log_window"], self.device)
        self.restarted_from_stale = state.get("restarted_from_stale", False)

    def resume(self) -> int:
        """Load the newest valid checkpoint, if any; return the step it holds.

        A checkpoint of this cell with other settings or data is set aside and the cell starts
        from step 0; a checkpoint of another cell raises ValueError.
        """
        state = self.store.load_latest()
        if state is None:
            return self.step
        mine = json.loads(json.dumps(self.identity()))
        changes = identity_changes(json.loads(state["identity"]), mine)
        if any(key.split(".")[0] in CELL_KEYS for key in changes):
            raise ValueError(
                f"checkpoint in {self.store.root} belongs to another cell ({_describe(changes)}); "
                "use another --out for another cell or settings, or delete that ckpt/ folder "
                "to start over"
            )
        if changes:
            self._set_aside(changes)
            return self.step
        written_on = state.get("device_type") or ("cuda" if "cuda_rng" in state else "cpu")
        if written_on != self.device.type:
            raise ValueError(
                f"checkpoint in {self.store.root} was written on {written_on} and this run is on "
                f"{self.device.type}: the random streams of the two cannot continue each other. "
                f"Resume with --device {written_on} (train.device), or delete that ckpt/ folder "
                f"to start over on {self.device.type}"
            )
        self.load_state(state)
        return self.step

    def _set_aside(self, changes: dict[str, tuple[Any, Any]]) -> None:
        """Move the checkpoints (and live log) of other settings to ``ckpt.stale/``."""
        root = self.store.root
        stale = root.with_name(root.name + ".stale")
        with writing(stale):
            if stale.exists():
                shutil.rmtree(stale)
            root.rename(stale)
        log.warning(
            "%s holds this cell trained with other settings or data (%s); moved it to %s and "
            "training from step 0",
            root,
            _describe(changes),
            stale,
        )
        self.restarted_from_stale = True

    @contextmanager
    def _fits(self) -> Iterator[None]:
        """Turn an allocator failure in the block into OutOfMemory with the estimated sizes."""
        try:
            yield
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            raise OutOfMemory(self._oom_message(exc)) from exc

    def _oom_message(self, exc: RuntimeError) -> str:
        """The estimated sizes, what to lower, and the allocator's own first line."""
        spec, batch, dim = self.spec, self.cfg.batch_size, self.data_dim
        est = memory_estimate(
            spec.arch, self.row, dim, batch, spec.n_train, self.cfg.parameterisation
        )
        total = sum(v for k, v in est.items() if k != "params" and v is not None)
        return (
            f"{spec.arch}/{spec.scale or 'default'} does not fit in memory on {self.device}: "
            f"{est['params']:,} parameters need ~{_size(est['state'])} (weights, grads, "
            f"2 AdamW moments and EMA in fp32), a batch (batch_size={batch}, {dim}-dim "
            f"vectors) ~{_size(est['activations'])} of activations (rough), the training set "
            f"({spec.n_train} x {dim}) ~{_size(est['data'])}: ~{_size(total)} in all; "
            "lower train.batch_size (--batch-size), pick a smaller --scale, or use a device "
            f"with more memory (the allocator said: {str(exc).strip().splitlines()[0]})"
        )

    def _loss(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The step's forward pass and loss: what ``train.compile`` compiles."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return cfm_loss(self.model, x0, x1, t)

    def _compiled_loss(self) -> Callable[..., torch.Tensor]:
        """``_loss`` under torch.compile (its backward too, through AOTAutograd), shapes static.
        On CUDA with CUDA graphs (``reduce-overhead``): forward and backward each replay as one
        graph, so the step's launches are those of the graphs, clipping, AdamW and EMA."""
        mode = "reduce-overhead" if self.cudagraphs else None
        return torch.compile(self._loss, mode=mode, dynamic=False)

    def _train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        idx = torch.randint(
            len(self.x_train), (cfg.batch_size,), device=self.device, generator=self.gen
        )
        x1 = self.x_train[idx]
        x0 = torch.randn(x1.shape, device=self.device, generator=self.gen)
        t = torch.rand(cfg.batch_size, device=self.device, generator=self.gen)
        if cfg.ot_pairing:
            x0 = ot_pair(x0, x1)
        # Drop the last step's gradients first: under CUDA graphs they live in the graphs'
        # memory, which the next replay (after cudagraph_mark_step_begin) may reuse.
        self.opt.zero_grad(set_to_none=True)
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss = self.loss(x0, x1, t)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        update_ema(self.ema, self.params, ema_decay_at(self.step, cfg))
        self.step += 1
        # The log window keeps the loss past this step: a copy, not a graph's output buffer.
        return (loss.detach().clone() if self.cudagraphs else loss.detach()), grad_norm.detach()

    def run(self, progress: bool = True) -> None:
        """Train to ``cfg.steps``, logging, checkpointing, and stopping cleanly on a signal."""
        from tqdm import tqdm

        train_log = _LiveCsv(self.log_path, LOG_FIELDS, self.step)
        self.trajectory_log = _LiveCsv(self.trajectory_path, TRAJECTORY_FIELDS, self.step)
        cuda = self.device.type == "cuda"
        watch = _Stopwatch(functools.partial(torch.cuda.synchronize, self.device) if cuda else None)
        bar = tqdm(
            total=self.cfg.steps,
            initial=self.step,
            disable=not progress,
            desc=self.out.name,
            mininterval=2,
        )
        with _StopFlag() as stop, bar:
            while self.step < self.cfg.steps:
                with self._fits():
                    self.window.add(*self._train_step())
                bar.update(1)
                self._after_step(train_log, bar, watch, stop.signal)
                if stop.signal:
                    raise Preempted(
                        f"signal {stop.signal} at step {self.step}: checkpoint written to "
                        f"{self.store.root}; rerun to resume"
                    )

    def _after_step(
        self, train_log: _LiveCsv, bar: Any, watch: _Stopwatch, signum: int | None
    ) -> None:
        """A log row at each ``log_every`` and the last step; a trajectory row at each snapshot
        step; a checkpoint at each ``ckpt_every``, the last step and on a signal. The checkpoint
        carries the steps since the last row, so a resumed run writes the rows of an
        uninterrupted one."""
        cfg = self.cfg
        last = self.step == cfg.steps
        row = last or self.step % cfg.log_every == 0
        checkpoint = last or signum is not None or self.step % cfg.ckpt_every == 0
        snapshot = self.step in self.snapshots
        if not (row or checkpoint or snapshot):
            return
        seconds = watch.lap()
        self.wall_time += seconds
        self.window.seconds += seconds
        losses = self._finite_losses()
        if row:
            self._write_row(losses, train_log, bar)
        if snapshot:
            scores = self.scorer.score(self.ema, self.step)
            values = [scores[k] for k in TRAJECTORY_FIELDS[1:]]
            self.trajectory_log.write([self.step, *(f"{v:.6g}" for v in values)])
        if checkpoint:
            with writing(self.store.path(self.step)):
                self.store.save(self.state(), self.step)
        watch.restart()  # wall_time and steps/s leave checkpoint I/O and snapshots out

    def _finite_losses(self) -> torch.Tensor:
        """The window's losses on the host (one sync); NonFiniteLoss naming the first bad step."""
        losses = self.window.losses()
        bad = ~torch.isfinite(losses)
        if bad.any():
            step = self.step - len(losses) + 1 + int(bad.nonzero()[0])
            raise NonFiniteLoss(
                f"loss became {losses[bad][0].item()} at step {step}; "
                f"the last good checkpoint stays in {self.store.root}"
            )
        return losses

    def _write_row(self, losses: torch.Tensor, train_log: _LiveCsv, bar: Any) -> None:
        """One log row for the steps since the last one; empties the window."""
        loss, rate = losses.mean().item(), self.window.rate()
        lr, grad_norm = self.sched.get_last_lr()[0], self.window.grad_norm()
        train_log.write([self.step, f"{loss:.6g}", f"{lr:.6g}", f"{grad_norm:.6g}", f"{rate:.3f}"])
        self.window.clear()
        bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.1f}")

    def publish_log(self) -> None:
        """Copy the live loss log and trajectory to ``<out>/``, atomically."""
        write_output(self.out / "train_log.csv", self.log_path.read_bytes())
        write_output(self.out / "trajectory.csv", self.trajectory_path.read_bytes())


class _Stopwatch:
    """Seconds between laps, on the performance counter, each read after ``sync`` returns (on
    CUDA ``torch.cuda.synchronize``: a lap times the steps run, not the steps queued)."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync
        self.restart()

    def restart(self) -> None:
        self._tick = time.perf_counter()

    def lap(self) -> float:
        if self._sync is not None:
            self._sync()
        now = time.perf_counter()
        seconds, self._tick = now - self._tick, now
        return seconds


class _LogWindow:
    """The per-step losses and gradient norms since the last log row, and their training time.

    Saved in each checkpoint, so the first row after a resume averages the same steps as the
    row of an uninterrupted run.
    """

    def __init__(
        self,
        losses: Iterable[torch.Tensor] = (),
        norms: Iterable[torch.Tensor] = (),
        seconds: float = 0.0,
    ):
        self._losses: list[torch.Tensor] = list(losses)
        self._norms: list[torch.Tensor] = list(norms)
        self.seconds = seconds

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self._losses.append(loss)
        self._norms.append(grad_norm)

    def losses(self) -> torch.Tensor:
        return torch.stack(self._losses).float().cpu()

    def grad_norm(self) -> float:
        return torch.stack(self._norms).mean().item()

    def rate(self) -> float:
        """Steps per second of training time."""
        return len(self._losses) / self.seconds

    def clear(self) -> None:
        self._losses, self._norms, self.seconds = [], [], 0.0

    def state(self) -> dict[str, Any]:
        return {
            "losses": _stack(self._losses),
            "grad_norms": _stack(self._norms),
            "seconds": self.seconds,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> _LogWindow:
        return cls(
            state["losses"].to(device).unbind(),
            state["grad_norms"].to(device).unbind(),
            state["seconds"],
        )


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors) if tensors else torch.empty(0)


class _LiveCsv:
    """A live CSV in ``ckpt/`` (the loss log, the trajectory), cut back on resume to the rows
    up to ``start_step``.

    It lives outside the declared outputs, so deleting those (``--rerun-incomplete``, a retry)
    keeps the history; rows cut short by a crash are dropped.
    """

    def __init__(self, path: Path, fields: list[str], start_step: int):
        self.path = path
        rows = self._rows_up_to(start_step) if start_step > 0 and path.exists() else []
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

    def _rows_up_to(self, step: int) -> list[dict[str, str]]:
        with self.path.open() as f:
            rows = [r for r in csv.DictReader(f) if None not in r.values()]
        return [r for r in rows if int(r["step"]) <= step]

    def write(self, values: list[Any]) -> None:
        with writing(self.path), self.path.open("a", newline="") as f:
            csv.writer(f).writerow(values)


def save_weights(model: nn.Module, path: Path) -> None:
    """EMA weights as safetensors, written atomically."""
    from safetensors.torch import save

    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    write_output(path, save(state))


def train_cell(
    spec: CellSpec,
    data: Dataset,
    cfg: TrainConfig,
    out: str | Path,
    extra_config: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) one cell into ``out``; returns the content written to ``cell.json``.

    Raises CellBusy if another process trains into ``out``, CannotWrite naming the path a write
    failed on, OutOfMemory with the estimated sizes.
    """
    out = Path(out)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    with cell_lock(out):
        trainer = Trainer(spec, data, cfg, out)
        resumed_from = trainer.resume()
        trainer.run(progress=progress)
        trainer.publish_log()
        save_weights(trainer.ema, out / "model.safetensors")
        _save_stats(data, out)
        cell = _cell_record(trainer, data, extra_config, resumed_from)
        write_output(out / "cell.json", json.dumps(cell, indent=2, default=str))
    return cell


def _cell_record(
    trainer: Trainer, data: Dataset, extra_config: dict[str, Any] | None, resumed_from: int
) -> dict[str, Any]:
    """What ``cell.json`` says about a finished cell: what it is, what it cost, where it ran.

    ``epochs`` and ``samples_seen`` are what the steps gave this cell's rows (for an iso-step
    study they differ across n_train); ``train_flops`` counts every step (see ``flops.py``).
    """
    spec, cfg = trainer.spec, trainer.cfg
    flops = trainer.flops
    samples_seen = trainer.step * cfg.batch_size
    return {
        "arch": spec.arch,
        "scale": spec.scale,
        "n_train": spec.n_train,
        "seed": spec.seed,
        "table": spec.table,
        "row": trainer.row,
        "n_params": trainer.n_params,
        "data_dim": data.dim,
        "data_source": data.source,
        "data_fingerprint": data.fingerprint,
        "train": dataclasses.asdict(trainer.cfg),
        "config": extra_config or {},
        "steps": trainer.step,
        "epochs": round(samples_seen / spec.n_train, 4),
        "samples_seen": samples_seen,
        "train_flops": flops["train_flops_per_step"] * trainer.step,
        "sampling_flops_per_sample_per_nfe": flops["sampling_flops_per_sample_per_nfe"],
        "flops_estimated_part": flops["flops_estimated_part"],
        "trajectory_steps": sorted(trainer.snapshots),
        "resumed_from_step": resumed_from,
        "restarted_from_stale": trainer.restarted_from_stale,
        "wall_time_s": round(trainer.wall_time, 3),
        "steps_per_s": round(trainer.step / trainer.wall_time, 3) if trainer.wall_time else None,
        "device": device_name(trainer.device),
        "mamba_kernel": trainer.mamba_kernel[0],
        "mamba_kernel_reason": trainer.mamba_kernel[1],
        "versions": versions(),
        "git_revision": git_revision(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def _save_stats(data: Dataset, out: Path) -> None:
    """The standardisation (train-pool mean and std) used by this run."""
    from safetensors.torch import save

    stats = {"mean": data.mean.contiguous(), "std": data.std.contiguous()}
    write_output(out / "data_stats.safetensors", save(stats))

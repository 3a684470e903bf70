"""Train one grid cell: conditional flow matching with checkpoints, exact resume and EMA."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import platform
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import CheckpointStore
from .config import TrainConfig
from .data import Dataset
from .files import atomic_path, atomic_write
from .flow import cfm_loss, ot_pair
from .models import build_model, resolve_row

LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_s"]


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the message names the step."""


class Preempted(RuntimeError):
    """SIGTERM / SIGINT arrived; a checkpoint was written and the cell can resume."""


@dataclass(frozen=True)
class CellSpec:
    """What identifies a cell: arch x scale x n_train x seed, and the scaling table it reads."""

    arch: str
    scale: str | None
    n_train: int
    seed: int
    table: str | None = None


def pick_device(name: str = "auto") -> torch.device:
    """cuda > mps > cpu for ``auto``; otherwise the named device."""
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device '{name}' requested but CUDA is not available; use --device cpu"
            )
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def versions() -> dict[str, str]:
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "fmscale": __version__,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{device.type} ({cpu}, {torch.get_num_threads()} threads)"


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
        self.spec, self.cfg, self.out = spec, cfg, Path(out)
        self.device = pick_device(cfg.device)
        cuda = self.device.type == "cuda"
        if cuda and cfg.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.autocast = cuda and cfg.bf16
        self.row = resolve_row(spec.arch, spec.scale, spec.table)
        torch.manual_seed(spec.seed)
        self.model = build_model(spec.arch, self.row, data.dim).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.params = list(self.model.parameters())
        # Fused AdamW: one kernel for all tensors on CUDA, and on CPU 2.7x faster than the
        # per-tensor loop torch picks there by default (benchmarks/README.md).
        fused = cfg.fused_adamw and self.device.type in ("cuda", "cpu")
        self.opt = torch.optim.AdamW(
            self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, cfg))
        self.gen = torch.Generator(self.device).manual_seed(spec.seed + 7919)
        self.x_train = data.train(spec.n_train).to(self.device)
        self.data_fingerprint = data.fingerprint
        self.forward_model = torch.compile(self.model) if cfg.compile else self.model
        self.step = 0
        self.wall_time = 0.0
        self.store = CheckpointStore(self.out / "ckpt", keep=cfg.keep_ckpts)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the cell, the settings, the data."""
        train = {
            k: v
            for k, v in dataclasses.asdict(self.cfg).items()
            if k not in ("ckpt_every", "keep_ckpts", "log_every", "device")
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
            "cpu_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        mine = json.dumps(self.identity(), sort_keys=True)
        if state["identity"] != mine:
            raise ValueError(
                f"checkpoint in {self.store.root} belongs to another cell or settings:\n"
                f"  checkpoint: {state['identity']}\n  this run:   {mine}\n"
                "use another --out, or delete that ckpt/ folder to start over"
            )
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["cpu_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step, self.wall_time = state["step"], state["wall_time"]

    def resume(self) -> int:
        """Load the newest valid checkpoint, if any; return the step it holds."""
        state = self.store.load_latest()
        if state is not None:
            self.load_state(state)
        return self.step

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
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = cfm_loss(self.forward_model, x0, x1, t)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        update_ema(self.ema, self.params, ema_decay_at(self.step, cfg))
        self.step += 1
        return loss.detach(), grad_norm.detach()

    def run(self, progress: bool = True) -> None:
        """Train to ``cfg.steps``, logging, checkpointing, and stopping cleanly on a signal."""
        from tqdm import tqdm

        cfg = self.cfg
        log = _TrainLog(self.out / "train_log.csv", self.step)
        window = _LogWindow(self.step)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not progress,
            desc=self.out.name,
            mininterval=2,
        )
        with _StopFlag() as stop, bar:
            while self.step < cfg.steps:
                window.add(*self._train_step())
                bar.update(1)
                last = self.step == cfg.steps
                checkpoint = self.step % cfg.ckpt_every == 0 or last or stop.signal
                if checkpoint or self.step % cfg.log_every == 0:
                    self._flush_log(window, log, bar)
                if checkpoint:
                    self.store.save(self.state(), self.step)
                    window.restart_clock()  # wall_time and steps/s leave checkpoint I/O out
                if stop.signal:
                    raise Preempted(
                        f"signal {stop.signal} at step {self.step}: checkpoint written to "
                        f"{self.store.root}; rerun to resume"
                    )

    def _flush_log(self, window: _LogWindow, log: _TrainLog, bar: Any) -> None:
        """Write one log row for the steps since the last one; stop on a non-finite loss."""
        losses = window.losses()  # one host sync per log interval
        bad = ~torch.isfinite(losses)
        if bad.any():
            step = self.step - len(losses) + 1 + int(bad.nonzero()[0])
            raise NonFiniteLoss(
                f"loss became {losses[bad][0].item()} at step {step}; "
                f"the last good checkpoint stays in {self.store.root}"
            )
        loss, grad_norm = losses.mean().item(), window.grad_norm()
        seconds, rate = window.close(self.step)
        self.wall_time += seconds
        log.write(self.step, loss, self.sched.get_last_lr()[0], grad_norm, rate)
        bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.1f}")


class _LogWindow:
    """The per-step losses and gradient norms since the last log row, and its clock."""

    def __init__(self, step: int):
        self._losses: list[torch.Tensor] = []
        self._norms: list[torch.Tensor] = []
        self._step = step
        self.restart_clock()

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self._losses.append(loss)
        self._norms.append(grad_norm)

    def losses(self) -> torch.Tensor:
        return torch.stack(self._losses).float().cpu()

    def grad_norm(self) -> float:
        return torch.stack(self._norms).mean().item()

    def restart_clock(self) -> None:
        self._tick = time.perf_counter()

    def close(self, step: int) -> tuple[float, float]:
        """Seconds and steps/s since the clock started; empties the window."""
        now = time.perf_counter()
        seconds = now - self._tick
        rate = (step - self._step) / seconds
        self._tick, self._step = now, step
        self._losses, self._norms = [], []
        return seconds, rate


class _TrainLog:
    """train_log.csv, truncated to ``start_step`` on resume so it matches an uninterrupted run."""

    def __init__(self, path: Path, start_step: int):
        self.path = path
        rows = []
        if path.exists() and start_step > 0:
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, step: int, loss: float, lr: float, grad_norm: float, rate: float) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(
                [step, f"{loss:.6g}", f"{lr:.6g}", f"{grad_norm:.6g}", f"{rate:.3f}"]
            )


def save_weights(model: nn.Module, path: Path) -> None:
    """EMA weights as safetensors, written atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def train_cell(
    spec: CellSpec,
    data: Dataset,
    cfg: TrainConfig,
    out: str | Path,
    extra_config: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) one cell into ``out``; returns the content written to ``cell.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(spec, data, cfg, out)
    resumed_from = trainer.resume()
    trainer.run(progress=progress)
    save_weights(trainer.ema, out / "model.safetensors")
    _save_stats(data, out)
    cell = {
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
        "train": dataclasses.asdict(cfg),
        "config": extra_config or {},
        "steps": trainer.step,
        "resumed_from_step": resumed_from,
        "wall_time_s": round(trainer.wall_time, 3),
        "steps_per_s": round(trainer.step / trainer.wall_time, 3) if trainer.wall_time else None,
        "device": device_name(trainer.device),
        "versions": versions(),
        "git_revision": git_revision(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    atomic_write(out / "cell.json", json.dumps(cell, indent=2, default=str))
    return cell


def _save_stats(data: Dataset, out: Path) -> None:
    """The standardisation (train-pool mean and std) used by this run."""
    from safetensors.torch import save_file

    with atomic_path(out / "data_stats.safetensors") as tmp:
        save_file({"mean": data.mean.contiguous(), "std": data.std.contiguous()}, str(tmp))

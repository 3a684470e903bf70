"""The training loop of one cell: ``Trainer`` holds the model, EMA, optimiser, schedule and
random state; ``Trainer.step`` is one optimisation step (what ``fmscale plan`` and the
benchmarks time), ``Trainer.run`` trains to the budget with logs, snapshots and checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointStore
from ..config import TrainConfig
from ..data import Dataset
from ..devices import pick_device
from ..errors import NonFiniteLoss, Preempted, RequiresFused
from ..files import writing
from ..flops import count_flops
from ..flow import build_field, cfm_loss, ot_pair
from ..models import resolve_row
from ..models.mamba import MambaBlock, mamba_kernel
from ..record import TRAJECTORY_FIELDS
from ..trajectory import TrajectoryScorer, affordable_points, snapshot_steps
from .bookkeeping import LogWindow, StopFlag, Stopwatch
from .memory import fits_in_memory
from .provenance import RUN_ONLY_KEYS, check_identity, describe_changes
from .run_folder import LOG_FIELDS, LiveCsv, set_aside, write_output
from .schedules import ema_decay_at, lr_factor, update_ema

STATE_KEYS = ("identity", "step", "wall_time", "model", "ema", "opt", "sched", "gen", "cpu_rng")
"""What a checkpoint needs to be resumed; ``cuda_rng``, ``device_type``, ``log_window`` and
``restarted_from_stale`` are optional (checkpoints of older versions lack the last three)."""


@dataclass(frozen=True)
class CellSpec:
    """What identifies a cell: arch x scale x n_train x seed, and the scaling table it reads."""

    arch: str
    scale: str | None
    n_train: int
    seed: int
    table: str | None = None


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
        # per-tensor loop torch picks there by default (docs/decisions/train-step.md).
        fused = cfg.fused_adamw and self.device.type in ("cuda", "cpu")
        self.opt = torch.optim.AdamW(
            self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, cfg))
        self.gen = torch.Generator(self.device).manual_seed(spec.seed + 7919)
        self.data_fingerprint = data.fingerprint
        self.cudagraphs = cfg.compile and cuda
        self.loss = self._compiled_loss() if cfg.compile else self._loss
        self.steps_done = 0
        self.wall_time = 0.0
        self.restarted_from_stale = False
        self.window = LogWindow()
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
            "step": self.steps_done,
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
        self.steps_done, self.wall_time = state["step"], state["wall_time"]
        if "log_window" in state:  # older checkpoints were written right after a log row
            self.window = LogWindow.from_state(state["log_window"], self.device)
        self.restarted_from_stale = state.get("restarted_from_stale", False)

    def resume(self) -> int:
        """Load the newest valid checkpoint, if any; return the step it holds.

        A checkpoint of this cell with other settings or data is set aside and the cell starts
        from step 0; a checkpoint of another cell raises ValueError.
        """
        state = self.store.load_latest()
        if state is None:
            return self.steps_done
        changes = check_identity(state["identity"], self.identity(), self.store.root)
        if changes:
            set_aside(self.store.root, describe_changes(changes))
            self.restarted_from_stale = True
            return self.steps_done
        written_on = state.get("device_type") or ("cuda" if "cuda_rng" in state else "cpu")
        if written_on != self.device.type:
            raise ValueError(
                f"checkpoint in {self.store.root} was written on {written_on} and this run is on "
                f"{self.device.type}: the random streams of the two cannot continue each other. "
                f"Resume with --device {written_on} (train.device), or delete that ckpt/ folder "
                f"to start over on {self.device.type}"
            )
        self.load_state(state)
        return self.steps_done

    def _fits(self) -> AbstractContextManager[None]:
        """Turn an allocator failure in the block into OutOfMemory with the estimated sizes."""
        spec = self.spec
        return fits_in_memory(
            spec.arch, spec.scale, self.row, self.data_dim, spec.n_train, self.cfg, self.device
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

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step: batch draw, forward + loss, backward, gradient clipping, AdamW,
        learning-rate schedule and EMA; returns the loss and the gradient norm (on the device,
        no host sync)."""
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
        update_ema(self.ema, self.params, ema_decay_at(self.steps_done, cfg))
        self.steps_done += 1
        # The log window keeps the loss past this step: a copy, not a graph's output buffer.
        return (loss.detach().clone() if self.cudagraphs else loss.detach()), grad_norm.detach()

    def run(self, progress: bool = True) -> None:
        """Train to ``cfg.steps``, logging, checkpointing, and stopping cleanly on a signal."""
        from tqdm import tqdm

        train_log = LiveCsv(self.log_path, LOG_FIELDS, self.steps_done)
        self.trajectory_log = LiveCsv(self.trajectory_path, TRAJECTORY_FIELDS, self.steps_done)
        cuda = self.device.type == "cuda"
        watch = Stopwatch(functools.partial(torch.cuda.synchronize, self.device) if cuda else None)
        bar = tqdm(
            total=self.cfg.steps,
            initial=self.steps_done,
            disable=not progress,
            desc=self.out.name,
            mininterval=2,
        )
        with StopFlag() as stop, bar:
            while self.steps_done < self.cfg.steps:
                with self._fits():
                    self.window.add(*self.step())
                bar.update(1)
                self._after_step(train_log, bar, watch, stop.signal)
                if stop.signal:
                    raise Preempted(
                        f"signal {stop.signal} at step {self.steps_done}: checkpoint written to "
                        f"{self.store.root}; rerun to resume"
                    )

    def _after_step(
        self, train_log: LiveCsv, bar: Any, watch: Stopwatch, signum: int | None
    ) -> None:
        """A log row at each ``log_every`` and the last step; a trajectory row at each snapshot
        step; a checkpoint at each ``ckpt_every``, the last step and on a signal. The checkpoint
        carries the steps since the last row, so a resumed run writes the rows of an
        uninterrupted one."""
        cfg = self.cfg
        last = self.steps_done == cfg.steps
        row = last or self.steps_done % cfg.log_every == 0
        checkpoint = last or signum is not None or self.steps_done % cfg.ckpt_every == 0
        snapshot = self.steps_done in self.snapshots
        if not (row or checkpoint or snapshot):
            return
        seconds = watch.lap()
        self.wall_time += seconds
        self.window.seconds += seconds
        losses = self._finite_losses()
        if row:
            self._write_row(losses, train_log, bar)
        if snapshot:
            scores = self.scorer.score(self.ema, self.steps_done)
            values = [scores[k] for k in TRAJECTORY_FIELDS[1:]]
            self.trajectory_log.write([self.steps_done, *(f"{v:.6g}" for v in values)])
        if checkpoint:
            with writing(self.store.path(self.steps_done)):
                self.store.save(self.state(), self.steps_done)
        watch.restart()  # wall_time and steps/s leave checkpoint I/O and snapshots out

    def _finite_losses(self) -> torch.Tensor:
        """The window's losses on the host (one sync); NonFiniteLoss naming the first bad step."""
        losses = self.window.losses()
        bad = ~torch.isfinite(losses)
        if bad.any():
            step = self.steps_done - len(losses) + 1 + int(bad.nonzero()[0])
            raise NonFiniteLoss(
                f"loss became {losses[bad][0].item()} at step {step}; "
                f"the last good checkpoint stays in {self.store.root}"
            )
        return losses

    def _write_row(self, losses: torch.Tensor, train_log: LiveCsv, bar: Any) -> None:
        """One log row for the steps since the last one; empties the window."""
        loss, rate = losses.mean().item(), self.window.rate()
        lr, grad_norm = self.sched.get_last_lr()[0], self.window.grad_norm()
        train_log.write(
            [self.steps_done, f"{loss:.6g}", f"{lr:.6g}", f"{grad_norm:.6g}", f"{rate:.3f}"]
        )
        self.window.clear()
        bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.1f}")

    def publish_log(self) -> None:
        """Copy the live loss log and trajectory to ``<out>/``, atomically."""
        write_output(self.out / "train_log.csv", self.log_path.read_bytes())
        write_output(self.out / "trajectory.csv", self.trajectory_path.read_bytes())

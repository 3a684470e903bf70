"""Operations per training step: what bounds a small model's step on a GPU.

A model of a few million parameters runs each of its kernels in a few microseconds on a GPU,
so a step costs about its number of operations times the per-operation host overhead, not its
FLOPs. ``count_step_ops`` counts the aten operations one real step of the trainer dispatches:
``Trainer._train_step`` itself (batch draw, forward + loss, backward, gradient clipping,
AdamW, EMA), run on the CPU under a ``TorchDispatchMode``, with the optimiser's ``fused`` flag
as the trainer sets it and autocast as on CUDA (``train.bf16``; CPU autocast stands in for the
CUDA one). The step is the trainer's second: the first creates the optimiser state.

Counted per phase (``PHASES``): an operation is in ``backward`` while the autograd engine runs
it, in ``forward`` from the model's forward pre-hook, in ``clip`` after the backward pass,
in ``optimizer`` between the optimiser's step hooks and in ``ema`` after them. ``views`` of
them (view, reshape, transpose, detach, ...) move no data and launch no kernel, so the plan's
launch floor counts the others (``kernels``). What the count does not see: a fused or foreach
operation may launch more than one kernel on a GPU (one per chunk of tensors), Mamba's fused
CUDA kernels (mamba-ssm) replace the pure-PyTorch scan counted here, and ``torch.compile``
(``train.compile``) fuses operations; the count is of the eager step.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .config import TrainConfig
from .data import Dataset

PHASES = ("batch", "forward", "backward", "clip", "optimizer", "ema")
"""The phases of one step, in the order they run."""
COUNT_BATCH = 4
"""Rows per step when counting: every phase dispatches the same operations at any batch size
(one scan block at this size, as at a GPU's batch: ``models/scan.py`` BLOCK_ELEMENTS)."""
STAND_IN_ROWS = 32
"""Training rows of the random stand-in dataset the counting trainer is built on."""


class _PhaseCounter(TorchDispatchMode):
    """Counts aten operations by phase; ``phase`` is moved on by the hooks of ``count_step_ops``."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = PHASES[0]
        self.ops: Counter[str] = Counter()
        self.views: Counter[str] = Counter()
        self.names: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        phase = self.phase
        if torch._C._current_graph_task_id() != -1:
            phase = "backward"
        elif phase == "forward" and self.ops["backward"]:  # the backward pass has ended
            phase = self.phase = "clip"
        self.ops[phase] += 1
        self.views[phase] += bool(func.is_view)
        self.names[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_step_ops(trainer: Any) -> dict[str, Any]:
    """Operations of one training step of ``trainer`` (a ``train.Trainer`` on the CPU), by phase:
    ``ops`` and ``views`` per phase, their totals, and the most frequent operation names."""
    trainer._train_step()  # the first step creates the optimiser's state; count the second
    counter = _PhaseCounter()
    model, opt = trainer.model, trainer.opt

    def moves_to(phase: str):
        def hook(*_: Any) -> None:
            counter.phase = phase

        return hook

    handles = [
        model.register_forward_pre_hook(moves_to("forward")),
        opt.register_step_pre_hook(moves_to("optimizer")),
        opt.register_step_post_hook(moves_to("ema")),
    ]
    try:
        with counter:
            trainer._train_step()
    finally:
        for handle in handles:
            handle.remove()
    ops = {p: counter.ops[p] for p in PHASES}
    views = {p: counter.views[p] for p in PHASES}
    return {
        "ops": ops,
        "views": views,
        "total_ops": sum(ops.values()),
        "kernel_ops": sum(ops.values()) - sum(views.values()),
        "top_ops": dict(counter.names.most_common(8)),
    }


def _stand_in(data_dim: int) -> Dataset:
    """Random standardised rows at D: an operation count does not depend on the values."""
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(2 * STAND_IN_ROWS, data_dim, generator=gen)
    half = STAND_IN_ROWS
    return Dataset(
        train_pool=rows[:half],
        val=rows[half : half + half // 2],
        test=rows[half + half // 2 :],
        mean=torch.zeros(data_dim),
        std=torch.ones(data_dim),
        fingerprint="opcount",
        source="random",
    )


def arch_ops(
    arch: str, scale: str, table: str | Path | None, data_dim: int, train: TrainConfig
) -> dict[str, Any]:
    """``count_step_ops`` for one arch x scale of ``table`` at D = ``data_dim``, on a CPU trainer
    built as the train job builds it (``COUNT_BATCH`` rows, autocast as a CUDA step has it:
    ``train.bf16``), plus ``sample_ops`` / ``sample_kernel_ops``: one velocity evaluation of
    sampling (no gradient, no autocast, as ``evaluate`` samples)."""
    from .train import CellSpec, Trainer

    cfg = dataclasses.replace(
        train,
        batch_size=COUNT_BATCH,
        steps=1,
        epochs=None,
        device="cpu",
        trajectory_points=0,
        compile=False,
    )
    data = _stand_in(data_dim)
    spec = CellSpec(arch, scale, STAND_IN_ROWS, 0, str(table) if table else None)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(spec, data, cfg, Path(out))
        trainer.autocast = train.bf16  # what Trainer sets on CUDA (cuda and train.bf16)
        counts = count_step_ops(trainer)
        counter = _PhaseCounter()
        x = data.val[:COUNT_BATCH]
        with torch.no_grad(), counter:
            trainer.model(x, torch.rand(COUNT_BATCH))
    counts["sample_ops"] = sum(counter.ops.values())
    counts["sample_kernel_ops"] = counts["sample_ops"] - sum(counter.views.values())
    return counts

"""Operations per training step: what bounds a small model's step on a GPU.

A model of a few million parameters runs each of its kernels in a few microseconds on a GPU,
so a step costs about its number of operations times the per-operation host overhead, not its
FLOPs. ``count_step_ops`` counts the aten operations one real step of the trainer dispatches:
``Trainer.step`` itself (batch draw, forward + loss, backward, gradient clipping,
AdamW, EMA), run on the CPU under a ``TorchDispatchMode``, with the optimiser's ``fused`` flag
as the trainer sets it and autocast as on CUDA (``train.bf16``; CPU autocast stands in for the
CUDA one). The step is the trainer's second: the first creates the optimiser state.

Counted per phase (``PHASES``): an operation is in ``backward`` while the autograd engine runs
it, in ``forward`` from the model's forward pre-hook, in ``clip`` after the backward pass,
in ``optimizer`` between the optimiser's step hooks and in ``ema`` after them. ``views`` of
them (view, reshape, transpose, detach, ...) move no data and launch no kernel, so the plan's
launch floor counts the others (``kernels``). What the count does not see: a fused or foreach
operation may launch more than one kernel on a GPU (one per chunk of tensors), Mamba's fused
CUDA kernels (mamba-ssm) replace the pure-PyTorch scan counted here, and CUDA graphs (what
``train.compile`` adds on CUDA) replay a compiled forward or backward as one launch, whose
kernels ``count_compiled_step_ops`` still counts one by one.
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
    trainer.step()  # the first step creates the optimiser's state; count the second
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
            trainer.step()
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


COMPILED_REGIONS = {"Torch-Compiled Region": "forward", "CompiledFunctionBackward": "backward"}
"""Profiler ranges of a compiled step -> the phase their operations belong to."""


def count_compiled_step_ops(trainer: Any) -> dict[str, Any]:
    """``count_step_ops`` for a trainer whose loss runs under ``train.compile``, counted with the
    profiler (a dispatch mode cannot look inside compiled code): each inductor kernel is one
    operation, as is each aten operation not called by another (GEMMs inductor leaves to aten,
    and the step's eager phases), views and no-op ``aten::to`` aside. Phases come from the
    compiled regions and, outside them, from the order of the step (batch, forward, backward,
    clip, optimizer, ema). The first two steps compile and warm up; the third is counted."""
    from torch._inductor import config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    with inductor_config.patch({"cpp.enable_kernel_profile": True}):
        trainer.step()
        trainer.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.step()
    ops: Counter[str] = Counter()
    names: Counter[str] = Counter()
    phase = PHASES[0]
    for event in sorted(_operations(prof.events()), key=lambda e: e[0].time_range.start):
        op, root = event
        region = next((p for name, p in COMPILED_REGIONS.items() if name in root.name), None)
        if region is not None:
            phase = region
        elif root.name.startswith("Optimizer.step"):
            phase = "optimizer"
        elif phase in ("forward", "backward"):
            phase = "clip"
        elif phase == "optimizer":
            phase = "ema"
        ops[phase] += 1
        names[_kernel_name(op)] += 1
    counted = {p: ops[p] for p in PHASES}
    total = sum(counted.values())
    return {
        "ops": counted,
        "views": dict.fromkeys(PHASES, 0),
        "total_ops": total,
        "kernel_ops": total,
        "top_ops": dict(names.most_common(8)),
    }


def _operations(events: Any) -> list[tuple[Any, Any]]:
    """(operation, its outermost profiler range) for each operation ``count_compiled_step_ops``
    counts."""
    found = []
    for event in events:
        chain, parent = [], event.cpu_parent
        while parent is not None:
            chain.append(parent)
            parent = parent.cpu_parent
        if any(_is_kernel(p) or p.name.startswith("aten::") for p in chain):
            continue  # called by another operation
        if _is_kernel(event) or (event.name.startswith("aten::") and _launches(event)):
            found.append((event, chain[-1] if chain else event))
    return found


def _is_kernel(event: Any) -> bool:
    """An inductor-generated kernel (C++ on the CPU, Triton on a GPU)."""
    return "cpp_fused" in event.name or "triton_" in event.name


def _kernel_name(event: Any) -> str:
    return "inductor kernel" if _is_kernel(event) else event.name


def _launches(event: Any) -> bool:
    """False for views (``aten::view``, ``aten::t``, ...) and an ``aten::to`` that copies
    nothing (the tensor already has the dtype and device)."""
    name = event.name.removeprefix("aten::")
    if name == "to":
        return _copies(event)
    packet = getattr(torch.ops.aten, name, None)
    if packet is None:
        return True
    return not any(getattr(packet, o).is_view for o in packet.overloads())


def _copies(event: Any) -> bool:
    return any(c.name == "aten::_to_copy" or _copies(c) for c in event.cpu_children)


def arch_ops(
    arch: str, scale: str, table: str | Path | None, data_dim: int, train: TrainConfig
) -> dict[str, Any]:
    """``count_step_ops`` for one arch x scale of ``table`` at D = ``data_dim``, on a CPU trainer
    built as the train job builds it (``COUNT_BATCH`` rows, autocast as a CUDA step has it:
    ``train.bf16``; ``count_compiled_step_ops`` where ``train.compile``, which compiles),
    plus ``sample_ops`` / ``sample_kernel_ops``: one eager velocity evaluation of sampling (no
    gradient, no autocast, as ``evaluate`` samples)."""
    from .train.loop import CellSpec, Trainer

    cfg = dataclasses.replace(
        train, batch_size=COUNT_BATCH, steps=3, epochs=None, device="cpu", trajectory_points=0
    )
    data = Dataset.random(STAND_IN_ROWS, data_dim, 0, "opcount")
    spec = CellSpec(arch, scale, STAND_IN_ROWS, 0, str(table) if table else None)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(spec, data, cfg, Path(out))
        trainer.autocast = train.bf16  # what Trainer sets on CUDA (cuda and train.bf16)
        if train.compile:
            torch._dynamo.reset()  # else the 9th model in a process would fall back to eager
            counts = count_compiled_step_ops(trainer)
        else:
            counts = count_step_ops(trainer)
        counter = _PhaseCounter()
        x = data.val[:COUNT_BATCH]
        with torch.no_grad(), counter:
            trainer.model(x, torch.rand(COUNT_BATCH))
    counts["sample_ops"] = sum(counter.ops.values())
    counts["sample_kernel_ops"] = counts["sample_ops"] - sum(counter.views.values())
    return counts

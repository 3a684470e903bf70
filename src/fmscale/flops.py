"""Compute per cell: training and sampling FLOPs of a velocity field.

Counted by ``torch.utils.flop_counter`` (matmuls, convolutions, attention) on a copy of the
field on the ``meta`` device, so counting costs no compute and touches no training state.
The elementwise selective scan of Mamba is not a matmul and is invisible to the counter: it is
estimated from the shapes each ``MambaBlock`` sees (``SCAN_FLOPS_PER_STATE`` per token, channel
and state in the forward pass, twice that in the backward pass) and flagged in the record.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

SCAN_FLOPS_PER_STATE = 8
"""Forward FLOPs per (token, channel, state) of the scan: exp(dt A) (2), dt B x (2), the state
update h = dA h + dBx (2) and the readout C h (2)."""

_COUNT_BATCH = 2
"""Rows in the counting batch; every count scales linearly with the rows (no batch mixing)."""


def _scan_flops(field: nn.Module, run) -> int:
    """Forward FLOPs of every Mamba scan during ``run()``, from the shapes the blocks see."""
    from .models.mamba import MambaBlock

    total = 0

    def hook(block: MambaBlock, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal total
        batch, length = args[0].shape[:2]
        total += SCAN_FLOPS_PER_STATE * batch * length * block.d_inner * block.d_state

    handles = [
        m.register_forward_pre_hook(hook) for m in field.modules() if isinstance(m, MambaBlock)
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_flops(field: nn.Module, data_dim: int, batch_size: int) -> dict[str, Any]:
    """FLOPs of one training step at ``batch_size`` rows (forward + backward of the CFM loss)
    and of one velocity evaluation per sample (what each NFE of sampling costs)."""
    from .flow import cfm_loss

    meta = copy.deepcopy(field).to("meta")
    x = torch.zeros(_COUNT_BATCH, data_dim, device="meta")
    t = torch.zeros(_COUNT_BATCH, device="meta")

    def train_step() -> None:
        cfm_loss(meta, x, x, t).backward()

    def evaluation() -> None:
        with torch.no_grad():
            meta(x, t)

    counts = {}
    for name, run in (("train", train_step), ("sample", evaluation)):
        with FlopCounterMode(display=False) as counter:
            scan = _scan_flops(meta, run)
        counts[name] = (counter.get_total_flops(), scan)
    (train, train_scan), (sample, sample_scan) = counts["train"], counts["sample"]
    per_row = 1 / _COUNT_BATCH
    return {
        "train_flops_per_step": round((train + 3 * train_scan) * batch_size * per_row),
        "sampling_flops_per_sample_per_nfe": round((sample + sample_scan) * per_row),
        "flops_estimated_part": (
            "mamba selective scan (shapes x SCAN_FLOPS_PER_STATE; backward = 2x forward)"
            if train_scan
            else None
        ),
    }

"""The training step computes what it computed before its operations were cut
(``tests/data/step_reference.json``, written by ``scripts/make_step_reference.py`` from landed
main), and ``train.compile`` computes what the eager step does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from step_reference import ARCHS, STEPS, losses

REFERENCE = json.loads((Path(__file__).parent / "data/step_reference.json").read_text())


@pytest.mark.parametrize("arch", ARCHS)
def test_losses_match_the_reference_step(arch):
    """fp32 on the CPU: the same operations in the same order, so the same losses."""
    assert losses(arch) == pytest.approx(REFERENCE["losses"][arch], rel=1e-6, abs=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_autocast_losses_match_the_reference_step(arch):
    """Under bf16 autocast, as a CUDA step with ``train.bf16`` runs."""
    got = losses(arch, autocast=True)
    assert got == pytest.approx(REFERENCE["autocast_losses"][arch], rel=1e-5, abs=0)


def test_reference_has_every_step():
    for key in ("losses", "autocast_losses"):
        assert sorted(REFERENCE[key]) == sorted(ARCHS)
        assert all(len(v) == STEPS for v in REFERENCE[key].values())


@pytest.mark.parametrize("arch", ["mlp", "mamba"])
def test_compiled_step_matches_the_eager_step(arch):
    """``train.compile`` on the CPU: inductor fuses and reorders float work, so the losses of
    50 steps agree to a tolerance, not bit for bit (measured: 6e-7 relative at most)."""
    torch._dynamo.reset()
    compiled = losses(arch, compile=True)
    assert compiled == pytest.approx(REFERENCE["losses"][arch], rel=1e-5, abs=0)

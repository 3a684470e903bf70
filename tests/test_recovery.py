"""Parameter recovery, small: the analysis's CIs cover known truths on a simulated CPU grid
(benchmarks/recovery.py runs it at full size on the committed grids)."""

import pandas as pd
import pytest

from fmscale.analysis.recovery import TRUE_LAW, Grid, recover, simulate, summarise

NOISE = {16: 0.028, 64: 0.011, 256: 0.010, 1024: 0.013, 4096: 0.009}
"""The CPU validation study's measured seed spread of log val_loss (per n_train)."""
CPU_GRID = Grid("cpu", (1.0e5, 3.9e5, 1.6e6), (16, 64, 256, 1024, 4096), 3, NOISE, 0.013, 300)


@pytest.fixture(scope="module")
def table():
    return summarise(recover(CPU_GRID, simulations=12, resamples=60, joint=False))


def row(table, quantity, parameter):
    return table[(table.quantity == quantity) & (table.parameter == parameter)].iloc[0]


def test_simulated_studies_follow_the_truth():
    import numpy as np

    frame = simulate(CPU_GRID, np.random.default_rng(0))
    assert len(frame) == 3 * 5 * 3
    largest = frame[(frame.n_train == 4096) & (frame.scale == "s0")].val_loss.mean()
    truth = TRUE_LAW["E"] + TRUE_LAW["A"] / 1e5 ** TRUE_LAW["alpha"] + TRUE_LAW["B"] / 4096**2
    assert largest == pytest.approx(truth, rel=0.02)


@pytest.mark.parametrize(
    "quantity,parameter",
    [("n-law s1", "beta"), ("n-law s2", "E"), ("n* s1", "0.1"), ("n* s2", "0.5"), ("k", "0.1")],
)
def test_intervals_cover_the_truth(table, quantity, parameter):
    found = row(table, quantity, parameter)
    assert found.ok >= 10, found
    assert found.coverage >= 0.75, found


def test_coarse_grids_are_never_called_ok():
    coarse = Grid("coarse", CPU_GRID.params, (32, 256, 4096), 1, NOISE | {32: 0.028}, 0.013, 300)
    records = recover(coarse, simulations=3, resamples=40, joint=False)
    verdicts = set(records[records.what.str.startswith("n* ")].what)
    assert not any(v.endswith(": ok") for v in verdicts if "coarse" not in v), verdicts
    assert any("coarse: between n = 32 and 256" in v for v in verdicts), verdicts
    assert isinstance(summarise(records), pd.DataFrame)

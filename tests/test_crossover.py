"""The memorisation crossover: n* at each level, its exponent k, the ceiling, the collapse z,
tau_mem at each level."""

import math

import numpy as np
import pandas as pd
import pytest

from fmscale.analysis import crossover
from fmscale.analysis.rows import model_rows

SCALES = {"tiny": 1e5, "small": 4e5, "base": 1.6e6}
SIZES = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400]


def memorised(n_params, n, z=1.0):
    """A memorised_fraction falling through 0.5 at n* = (n_params / 1000)^z: F(n / N^z)."""
    return 1 / (1 + (n / (n_params**z / 1000**z)) ** 2)


def summary(z=1.0, seeds=3, ceiling=1.0, noise=0.01):
    rng = np.random.default_rng(0)
    rows = [
        {
            "kind": "model",
            "arch": "mlp",
            "scale": scale,
            "n_train": n,
            "seed": seed,
            "status": "ok",
            "n_params": n_params,
            "val_loss": 1.0,
            "n_samples": 2000,
            "memorised_fraction": float(
                np.clip(memorised(n_params, n, z) + rng.normal(0, noise), 0, 1)
            ),
        }
        for scale, n_params in SCALES.items()
        for n in SIZES
        for seed in range(seeds)
    ]
    rows += [
        {
            "kind": "reference",
            "arch": "empirical_flow",
            "scale": "",
            "n_train": n,
            "status": "ok",
            "n_samples": 2000,
            "memorised_fraction": ceiling,
        }
        for n in SIZES
    ]
    return pd.DataFrame(rows)


def onset(frame, levels=(0.1, 0.5), resamples=200):
    return crossover.onset(model_rows(frame), frame, levels, resamples, 0, 300)


def test_crossing_interpolates_in_log_n_and_names_the_grid_edges():
    log_n = np.log([100.0, 200.0, 400.0, 800.0])
    crossing = crossover.log_crossing(log_n, np.array([0.9, 0.7, 0.3, 0.1]), 0.5)
    assert math.exp(crossing) == pytest.approx(200 * math.sqrt(2))
    assert crossover.log_crossing(log_n, np.array([0.9, 0.8, 0.7, 0.6]), 0.5) == np.inf
    assert crossover.log_crossing(log_n, np.array([0.4, 0.3, 0.2, 0.1]), 0.5) == -np.inf
    # The same curve crosses a lower level later, inside the grid.
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    share = (logit(0.2) - logit(0.15)) / (logit(0.2) - logit(0.1))
    assert math.exp(
        crossover.log_crossing(log_n, np.array([0.4, 0.3, 0.2, 0.1]), 0.15)
    ) == pytest.approx(400 * 2**share)
    # Interpolated in logit against log n: a logistic onset's crossing is exact between points.
    onset = 1 / (1 + (np.exp(log_n) / 300.0) ** 2)
    for level in (0.1, 0.3, 0.5):
        expected = 300 * (1 / level - 1) ** 0.5
        if 100 < expected < 800:
            found = math.exp(crossover.log_crossing(log_n, onset, level))
            assert found == pytest.approx(expected, rel=1e-9)
    # The last fall through the level counts: a dip and recovery before it does not.
    assert math.exp(
        crossover.log_crossing(log_n, np.array([0.9, 0.4, 0.9, 0.1]), 0.5)
    ) == pytest.approx(400 * 2 ** (0.4 / 0.8))


def test_n_star_at_each_level_and_k_recover_the_truth():
    out = onset(summary())
    assert out["levels"] == ["0.1", "0.5"]
    for scale, n_params in SCALES.items():
        for level, label in ((0.5, "0.5"), (0.1, "0.1")):
            entry = out["n_star"][label]["mlp"][scale]
            true = n_params / 1000 * math.sqrt(1 / level - 1)
            assert entry["estimate"] == pytest.approx(true, rel=0.2)
            low, high = entry["ci"]
            assert low < entry["estimate"] < high
    for label in ("0.1", "0.5"):
        k = out["n_star_exponent"][label]["mlp"]
        assert k["verdict"] == "ok" and k["estimate"] == pytest.approx(1.0, abs=0.1)
        assert k["ci"][0] < 1.0 < k["ci"][1] or abs(k["estimate"] - 1) < 0.05


def test_a_level_the_data_never_reaches_is_named_and_k_needs_three_scales():
    frame = summary()
    frame.loc[frame.kind == "model", "memorised_fraction"] *= 0.3  # never reaches 0.5
    out = onset(frame)
    assert {e["verdict"] for e in out["n_star"]["0.5"]["mlp"].values()} == {"below the grid"}
    assert "0 of 3 scales" in out["n_star_exponent"]["0.5"]["mlp"]["verdict"]
    assert out["n_star_exponent"]["0.1"]["mlp"]["verdict"] == "ok"


def test_memorisation_is_read_against_the_exact_flow_ceiling():
    out = onset(summary(ceiling=0.8))
    assert out["ceiling"]["25"] == 0.8
    cell = out["share_of_ceiling"]["mlp"]["base"]["25"]
    assert cell["share_of_ceiling"] == pytest.approx(cell["fraction"] / 0.8)
    low, high = cell["ci"]
    assert low < cell["share_of_ceiling"] < high
    # Seeds that all agree at 0 still get the binomial width, not a zero-width interval.
    zero = out["share_of_ceiling"]["mlp"]["tiny"]["6400"]
    assert zero["ci"][1] > 0


def test_no_ceiling_rows_no_shares():
    frame = summary()
    out = onset(frame[frame.kind == "model"])
    assert out["ceiling"] == {} and out["share_of_ceiling"]["mlp"]["tiny"] == {}


@pytest.mark.parametrize("z", [1.0, 0.5])
def test_the_collapse_recovers_z(z):
    entry = onset(summary(z=z))["collapse"]["mlp"]
    assert entry["verdict"] == "ok", entry
    assert entry["estimate"] == pytest.approx(z, abs=0.1)
    assert entry["ci"][0] <= z + 0.05 and z - 0.05 <= entry["ci"][1]


def test_a_collapse_without_measured_shapes_is_unidentified():
    frame = summary()
    models = frame.kind == "model"
    frame.loc[models & (frame.n_train > 25), "memorised_fraction"] = 0.0
    entry = onset(frame)["collapse"]["mlp"]
    assert entry["verdict"].startswith("unidentified") and "estimate" not in entry


def test_tau_mem_at_each_level_and_its_exponent():
    rows = []
    for n, onset_step in ((100, 40), (400, 160), (1600, 640)):
        for step in (10, 20, 40, 80, 160, 320, 640, 1280):
            fraction = 0.9 if step >= onset_step else (0.3 if step >= onset_step / 2 else 0.0)
            rows.append(
                {
                    "arch": "mlp",
                    "scale": "tiny",
                    "n_train": n,
                    "seed": 0,
                    "step": step,
                    "memorised_fraction": fraction,
                }
            )
    rows.append({**rows[-1], "n_train": 6400, "memorised_fraction": 0.0})
    out = crossover.tau_mem(pd.DataFrame(rows), (0.1, 0.5))
    high = out["0.5"]["mlp"]["tiny"]
    assert high["cells"] == {
        "n100/seed0": 40,
        "n400/seed0": 160,
        "n1600/seed0": 640,
        "n6400/seed0": None,
    }
    assert high["exponent"]["estimate"] == pytest.approx(1.0)
    low = out["0.1"]["mlp"]["tiny"]
    assert low["cells"]["n100/seed0"] == 20 and low["cells"]["n1600/seed0"] == 320
    assert crossover.tau_mem(pd.DataFrame(rows[:8]), (0.5,))["0.5"]["mlp"]["tiny"]["exponent"][
        "verdict"
    ].startswith("1 n_train")


def test_tau_mem_only_at_the_last_snapshot_gives_no_exponent():
    """Cells that first memorise at their last snapshot crossed somewhere after the one before:
    the budget, not n, sets that step (the CPU validation study printed 0 [0, 0] for it)."""
    rows = [
        {
            "arch": "dit",
            "scale": "base",
            "n_train": n,
            "seed": seed,
            "step": step,
            "memorised_fraction": 0.3 if step == 1200 else 0.0,
        }
        for n in (16, 25, 40)
        for seed in (0, 1)
        for step in (150, 300, 600, 1200)
    ]
    entry = crossover.tau_mem(pd.DataFrame(rows), (0.1,))["0.1"]["dit"]["base"]
    assert set(entry["cells"].values()) == {1200}
    assert entry["exponent"] == {
        "verdict": "0 n_train values have a tau_mem before the last snapshot (needs 3); "
        "6 cross only at their last snapshot"
    }


def test_a_crossing_between_grid_points_far_apart_is_named_coarse_and_left_out_of_k():
    frame = summary()
    coarse = frame[frame.n_train.isin([25, 200, 1600])]  # 8x steps
    out = onset(coarse)
    entry = out["n_star"]["0.5"]["mlp"]["small"]
    assert entry["verdict"] == "coarse: between n = 200 and 1600 (8x)", entry
    assert entry["bracket"] == [200, 1600] and "estimate" in entry
    assert out["n_star_exponent"]["0.5"]["mlp"]["verdict"].startswith("0 of 3 scales")


def test_fractions_below_the_level_of_unseen_rows_carry_no_collapse():
    frame = summary()
    holdout = frame[frame.arch == "empirical_flow"].assign(arch="real_holdout")
    assert (
        onset(pd.concat([frame, holdout.assign(memorised_fraction=0.01)]))["collapse"]["mlp"][
            "verdict"
        ]
        == "ok"
    )
    entry = onset(pd.concat([frame, holdout.assign(memorised_fraction=0.995)]))["collapse"]["mlp"]
    assert entry["verdict"] == "unidentified: < 2 scales with 2+ n_train memorising >= 0.995"


def test_a_crossing_where_unseen_rows_score_the_level_is_not_ok():
    frame = summary()
    holdout = frame[frame.arch == "empirical_flow"].assign(arch="real_holdout")
    holdout["memorised_fraction"] = np.where(holdout.n_train == 200, 0.2, 0.0)
    out = onset(pd.concat([frame, holdout]))
    tiny = out["n_star"]["0.1"]["mlp"]["tiny"]  # crosses 0.1 at n = 300, between 200 and 400
    assert tiny["bracket"] == [200, 400]
    assert tiny["verdict"] == "unseen rows score 0.2 there (real_holdout)"
    assert out["n_star"]["0.5"]["mlp"]["tiny"]["verdict"] == "ok"  # at 0.5 it is above them

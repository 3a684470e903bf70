"""The capacity x data interaction: cell CIs, paired differences, the stated findings."""

import numpy as np
import pandas as pd
import pytest

from fmscale.analysis.interaction import cell_estimate, difference, interaction
from fmscale.analysis.intervals import wilson
from fmscale.analysis.report import markdown

SCALES = ["tiny", "small", "base"]
SIZES = [32, 256, 4096]


def grid(seeds, gap, memorised, gap_se=0.002, loss=lambda arch, i, n: 0.2):
    """Model rows of two archs: ``gap(scale_index, n)``, ``memorised(scale_index, n)`` and
    val_loss_ratio ``loss(arch, scale_index, n)`` plus seed noise of sd 0.001."""
    rng = np.random.default_rng(0)
    rows = []
    for arch in ("mlp", "dit"):
        for i, scale in enumerate(SCALES):
            for n in SIZES:
                for seed in range(seeds):
                    rows.append(
                        {
                            "arch": arch,
                            "scale": scale,
                            "n_train": n,
                            "seed": seed,
                            "gap": gap(i, n) + rng.normal(0, gap_se),
                            "gap_se": gap_se,
                            "memorised_fraction": memorised(i, n),
                            "val_loss_ratio": loss(arch, i, n) + rng.normal(0, 0.001),
                        }
                    )
    return pd.DataFrame(rows)


def growing_gap(i, n):
    return 0.05 * (i + 1) * 32 / n


def test_one_seed_uses_the_cells_sampling_error():
    part = pd.DataFrame({"seed": [0], "gap": [0.1], "gap_se": [0.01]})
    entry = cell_estimate(part, "gap", 300)
    assert entry["method"] == "sampling error"
    assert entry["ci"] == pytest.approx([0.1 - 0.0196, 0.1 + 0.0196], abs=1e-4)
    part = pd.DataFrame({"seed": [0], "memorised_fraction": [0.0]})
    entry = cell_estimate(part, "memorised_fraction", 300)
    assert entry["method"] == "Wilson" and entry["ci"][0] == pytest.approx(0, abs=1e-12)
    assert 0 < entry["ci"][1] < 0.02


def test_seeds_use_the_student_t_interval_and_differences_pair_them():
    a = pd.DataFrame({"seed": [0, 1, 2], "gap": [0.30, 0.32, 0.31], "gap_se": 0.001})
    b = pd.DataFrame({"seed": [2, 0, 1], "gap": [0.11, 0.10, 0.12], "gap_se": 0.001})
    entry = cell_estimate(a, "gap", 300)
    assert entry["method"] == "t over seeds" and entry["seeds"] == 3
    assert entry["ci"][0] < 0.31 < entry["ci"][1]
    diff = difference(a, b, "gap", 300)
    assert diff["pairs"] == 3 and diff["estimate"] == pytest.approx(0.2)
    assert diff["resolved"] and diff["ci"][0] > 0


def test_no_standard_error_gives_no_ci_and_never_a_resolved_difference():
    a = pd.DataFrame({"seed": [0], "gap": [0.3]})
    b = pd.DataFrame({"seed": [0], "gap": [0.1]})
    assert cell_estimate(a, "gap", 300)["ci"] is None
    assert not difference(a, b, "gap", 300)["resolved"]


def test_wilson_stays_inside_zero_one():
    assert wilson(0.0, 300)[0] == pytest.approx(0, abs=1e-12)
    assert wilson(1.0, 300)[1] == pytest.approx(1, abs=1e-12)
    low, high = wilson(0.5, 300)
    assert low == pytest.approx(0.5 - 0.0563, abs=1e-3) and high == pytest.approx(
        0.5 + 0.0563, abs=1e-3
    )


@pytest.mark.parametrize("seeds", [1, 3])
def test_a_growing_gap_is_found_and_stated(seeds):
    rows = grid(seeds, growing_gap, lambda i, n: 0.1 * i if n == 32 else 0.0)
    found = interaction(rows, SCALES, 300)
    assert found["gap"]["grows_with_scale"] == ["dit", "mlp"]
    assert len(found["gap"]["shrinks_with_n"]) == 6
    memo = found["memorised_fraction"]
    assert memo["grows_with_scale"] == ["dit", "mlp"]
    assert "mlp/tiny" not in memo["shrinks_with_n"] and "mlp/base" in memo["shrinks_with_n"]
    text = _report(found)
    assert "**Finding (gap)**: at n_train = 32" in text
    assert "for 2 of 2 archs (dit, mlp)" in text


def _report(found):
    return markdown(
        {
            "bootstrap": {"resamples": 10, "seed": 0},
            "checks": [],
            "interaction": found,
            "fits": {},
            "levels": ["0.5"],
            "n_star": {"0.5": {}},
            "n_star_exponent": {"0.5": {}},
            "ceiling": {},
            "share_of_ceiling": {},
            "collapse": {},
            "tau_mem": {},
            "comparisons": [],
            "n_samples": 300,
        }
    )


def mlp_keeps_improving(arch, i, n):
    """mlp: 0.20 / 0.19 / 0.18 at every n; dit: 0.20 / 0.19 / 0.19 (flat from small to base)."""
    return 0.2 - 0.01 * (i if arch == "mlp" else min(i, 1))


def test_capacity_at_the_largest_n_pairs_seeds_and_names_the_archs_that_keep_improving():
    rows = grid(3, growing_gap, lambda i, n: 0.0, loss=mlp_keeps_improving)
    rows.loc[rows.n_train < 4096, "val_loss_ratio"] = 0.5  # only the largest n is read
    found = interaction(rows, SCALES, 300)["val_loss_ratio"]
    assert found["n_train"] == 4096 and found["falls_with_scale"] == ["mlp"]
    dit = found["steps"]["dit"]
    assert [(e["a"], e["b"]) for e in dit] == [("small", "tiny"), ("base", "small")]
    assert dit[0]["resolved"] and dit[0]["estimate"] == pytest.approx(-0.01, abs=0.003)
    assert not dit[1]["resolved"] and dit[1]["pairs"] == 3
    text = _report(interaction(rows, SCALES, 300))
    assert "**Finding (capacity at n_train = 4096)**" in text
    assert "CI below 0, for 1 of 2 archs (mlp)." in text


def test_capacity_with_one_seed_has_no_ci_and_says_why():
    rows = grid(1, growing_gap, lambda i, n: 0.0, loss=mlp_keeps_improving)
    found = interaction(rows, SCALES, 300)
    steps = found["val_loss_ratio"]["steps"]["mlp"]
    assert all(e["ci"] is None and not e["resolved"] for e in steps)
    assert found["val_loss_ratio"]["falls_with_scale"] == []
    text = _report(found)
    assert "for 0 of 2 archs (none)" in text and "needs two or more seeds" in text
    assert "base - small: -0.01" in text and "(no CI)" in text


def test_a_flat_gap_is_not_a_finding():
    rows = grid(1, lambda i, n: 0.05, lambda i, n: 0.0, gap_se=0.01)
    found = interaction(rows, SCALES, 300)
    assert found["gap"]["grows_with_scale"] == [] and found["gap"]["shrinks_with_n"] == []
    assert found["memorised_fraction"]["grows_with_scale"] == []

"""The analysis of summary.csv: law fits, memorisation onset, comparisons, checks, the CLI."""

import contextlib
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fmscale.analysis import bootstrap, fits, lawfit
from fmscale.analysis.checks import result_checks
from fmscale.analysis.fits import fit_law, fit_n_law
from fmscale.analysis.intervals import wilson
from fmscale.analysis.report import markdown
from fmscale.analysis.rows import SUMMARY_COLUMNS, Settings, model_rows
from fmscale.analysis.run import analyze_rows
from fmscale.cli import main
from fmscale.record import ANALYSIS_FIGURES, ANALYSIS_TABLES

LAW = {"E": 0.8, "A": 30.0, "alpha": 0.3, "B": 20.0, "beta": 0.5}
SCALES = {"tiny": 1e5, "small": 4e5, "base": 1.6e6}
SIZES = [50, 200, 800, 3200]


def law_table(rng, params, sizes, seeds, noise=0.03):
    """Model rows of one arch drawn from LAW with multiplicative log-normal noise."""
    rows = []
    for i, n_params in enumerate(params):
        for n in sizes:
            for seed in range(seeds):
                loss = LAW["E"] + LAW["A"] / n_params ** LAW["alpha"] + LAW["B"] / n ** LAW["beta"]
                rows.append(
                    {
                        "arch": "mlp",
                        "scale": f"s{i}",
                        "n_train": n,
                        "seed": seed,
                        "n_params": n_params,
                        "val_loss": loss * math.exp(rng.normal(0, noise)),
                    }
                )
    return pd.DataFrame(rows)


def memorised(n_params, n):
    """A memorised_fraction falling through 0.5 at n* = n_params / 1000."""
    return 1 / (1 + (n / (n_params / 1000)) ** 2)


def clean_summary(seeds=2):
    """A summary.csv frame with two archs, reference rows, and no result check violated."""
    rng = np.random.default_rng(0)
    rows = []
    for arch in ("mlp", "unet"):
        for scale, n_params in SCALES.items():
            for n in SIZES:
                for seed in range(seeds):
                    loss = 0.8 + 30 / n_params**0.3 + 20 / n**0.5 + rng.normal(0, 0.005)
                    rows.append(
                        {
                            "kind": "model",
                            "arch": arch,
                            "scale": scale,
                            "n_train": n,
                            "seed": seed,
                            "status": "ok",
                            "n_params": n_params,
                            "val_loss": loss,
                            "val_loss_ratio": loss / (loss + 1),
                            "gap": 0.3 / n**0.5,
                            "gap_ratio": 1 + 0.3 / n**0.5,
                            "memorised_fraction": memorised(n_params, n),
                            "precision_pca": 0.5 + rng.normal(0, 0.01),
                            "mmd2_pca": 0.02 + abs(rng.normal(0, 0.002)),
                        }
                    )
    for n in SIZES:
        for name, fraction, mmd in (
            ("memoriser", 1.0, 0.001),
            ("real_holdout", 0.0, 0.0005),
            ("gaussian_fit", 0.0, 0.05),
        ):
            rows.append(
                {
                    "kind": "reference",
                    "arch": name,
                    "scale": "",
                    "n_train": n,
                    "status": "ok",
                    "memorised_fraction": fraction,
                    "mmd2_pca": mmd,
                }
            )
    return pd.DataFrame(rows)


def test_law_fit_cis_cover_the_true_exponents():
    """Over 30 seeded draws from a known law, the 95% CIs of alpha and beta cover the truth."""
    settings = Settings(resamples=150, refit_grid_starts=0)
    params = [1e5, 4e5, 1.6e6, 6.4e6, 2.56e7]
    sizes = [100, 250, 630, 1600, 4000, 10000]
    covered = {"alpha": 0, "beta": 0}
    draws = 30
    for draw in range(draws):
        table = law_table(np.random.default_rng(draw), params, sizes, seeds=3)
        entry = fit_law(table, "val_loss", settings, "mlp").entry
        assert entry["verdict"] == "ok" and entry["n_cells"] == len(table)
        for name in covered:
            low, high = entry[name]["ci"]
            covered[name] += low <= LAW[name] <= high
        assert 0 < entry["loso_error"] < 0.1
    assert min(covered.values()) >= 0.85 * draws, covered


def test_two_scales_give_the_verdict_not_numbers():
    table = law_table(np.random.default_rng(0), [1e5, 4e5], [100, 400, 1600, 6400], seeds=2)
    entry = fit_law(table, "val_loss", Settings(resamples=50), "mlp").entry
    assert entry["verdict"] == "under-identified: 2 scales, 4 n_train (needs 3 each)"
    assert entry["alpha"] == {"estimate": None, "ci": None} and entry["loso_error"] is None
    summary = table.assign(kind="model", status="ok", val_loss_ratio=0.5, memorised_fraction=0.0)
    report, _, _ = analyze_rows(summary, None, Settings(resamples=20))
    line = next(row for row in markdown(report).splitlines() if row.startswith("| mlp | val_loss"))
    assert "under-identified" in line and not any(ch.isdigit() for ch in line.split("|")[5:])


def violate(summary, name):
    """``summary`` with one crafted violation of the check ``name``; the cells it involves."""
    frame = summary.copy()
    models = frame.kind == "model"
    if name == "memoriser_memorises":
        frame.loc[(frame.arch == "memoriser") & (frame.n_train == 200), "memorised_fraction"] = 0.4
        return frame, ["ref:memoriser/n200"]
    if name == "real_holdout_at_floor":
        frame.loc[(frame.arch == "real_holdout") & (frame.n_train == 800), "mmd2_pca"] = 0.03
        return frame, ["ref:real_holdout/n800", "mlp/tiny/n800/seed0"]
    cell = models & (frame.arch == "unet") & (frame.scale == "base")
    if name == "models_beat_zero_velocity":
        frame.loc[cell & (frame.n_train == 50) & (frame.seed == 1), "val_loss_ratio"] = 1.05
        return frame, ["unet/base/n50/seed1"]
    if name == "memorisation_falls_with_n":
        frame.loc[cell & (frame.n_train == 3200), "memorised_fraction"] = 0.95
        return frame, ["unet/base/n3200/seed0"]
    frame.loc[cell & (frame.n_train == 3200), "val_loss"] += 1.0
    return frame, ["unet/base/n3200/seed0", "unet/tiny/n3200/seed0"]


def test_clean_table_passes_every_check():
    summary = clean_summary()
    assert result_checks(summary, model_rows(summary), Settings()) == []


@pytest.mark.parametrize(
    "name",
    [
        "memoriser_memorises",
        "real_holdout_at_floor",
        "models_beat_zero_velocity",
        "memorisation_falls_with_n",
        "capacity_does_not_hurt",
    ],
)
def test_each_check_fires_on_its_violation(name):
    summary, cells = violate(clean_summary(), name)
    checks = result_checks(summary, model_rows(summary), Settings())
    assert [check["name"] for check in checks] == [name]
    assert set(cells) <= set(checks[0]["cells"]), checks[0]


def test_paired_comparisons_resolve_a_real_difference_only():
    summary = clean_summary(seeds=3)
    worse = (summary.kind == "model") & (summary.arch == "unet")
    summary.loc[worse, "val_loss_ratio"] += 0.1
    report, _, _ = analyze_rows(summary, None, Settings(resamples=200))
    pooled = {
        (c["metric"], c["a"], c["b"]): c for c in report["comparisons"] if c["n_train"] is None
    }
    difference = pooled[("val_loss_ratio", "mlp/base", "unet/base")]
    assert difference["resolved"] and difference["difference"] == pytest.approx(-0.1, abs=0.01)
    assert difference["n_pairs"] == len(SIZES) * 3
    assert not pooled[("precision_pca", "mlp/base", "unet/base")]["resolved"]


def test_few_pairs_get_the_student_t_interval_not_a_bootstrap():
    from fmscale.analysis.compare import MIN_BOOTSTRAP_PAIRS, _comparison

    rng = np.random.default_rng(0)
    three = _comparison(np.array([0.10, 0.12, 0.14]), rng, 200)
    assert three["ci_method"] == "t" and three["resolved"]
    # mean 0.12, sd 0.02, t(0.975, 2) = 4.303: half-width 0.0497
    assert three["ci"] == pytest.approx([0.12 - 0.0497, 0.12 + 0.0497], abs=1e-4)
    one = _comparison(np.array([0.5]), rng, 200)
    assert one["ci"] is None and not one["resolved"]
    many = _comparison(rng.normal(0.3, 0.01, MIN_BOOTSTRAP_PAIRS), rng, 200)
    assert many["ci_method"] == "bootstrap" and many["resolved"]


def test_analyze_cli_is_deterministic_and_writes_every_output(tmp_path):
    summary, _ = violate(clean_summary(), "models_beat_zero_velocity")
    summary.to_csv(tmp_path / "summary.csv", index=False)
    args = ["analyze", str(tmp_path), "--resamples", "40"]
    outputs = [
        tmp_path / "analysis.json",
        *[
            tmp_path / "analysis" / f"{name}.{fmt}"
            for name in ANALYSIS_FIGURES
            for fmt in ("svg", "pdf")
        ],
        *[tmp_path / "analysis" / f"{name}.tex" for name in ANALYSIS_TABLES],
    ]
    assert main(args) == 0
    first = [path.read_bytes() for path in outputs]
    assert main(args) == 0
    assert [path.read_bytes() for path in outputs] == first
    report = json.loads(first[0])
    assert set(report) >= {
        "fits",
        "n_star",
        "n_star_exponent",
        "tau_mem",
        "comparisons",
        "collapse",
    }
    assert report["bootstrap"] == {"resamples": 40, "seed": 0}
    assert [check["name"] for check in report["checks"]] == ["models_beat_zero_velocity"]
    text = (tmp_path / "analysis.md").read_text()
    assert text.index("## Result checks") < text.index("## Scaling-law fits")
    assert "unet/base/n50/seed1" in text
    for name in ANALYSIS_FIGURES:
        assert (tmp_path / "analysis" / f"{name}.png").stat().st_size > 1000
    fits = (tmp_path / "analysis" / "fits.tex").read_text()
    assert fits.startswith("\\begin{tabular}") and "\\toprule" in fits and "val\\_loss" in fits


@pytest.mark.parametrize(
    "write,needle",
    [
        (None, "summary.csv: missing"),
        ("", "summary.csv: empty"),
        (",".join(SUMMARY_COLUMNS) + "\n", "summary.csv: empty (no rows"),
        (",".join(SUMMARY_COLUMNS) + "\nmodel,mlp,tiny,100,0,ok,big,1,0.5,0\n", "'n_params'"),
        ("kind,arch,scale\nmodel,mlp,tiny\n", "'n_train'"),
    ],
)
def test_bad_summary_exits_2_naming_the_file_or_column(tmp_path, capsys, write, needle):
    if write is not None:
        (tmp_path / "summary.csv").write_text(write)
    assert main(["analyze", str(tmp_path)]) == 2
    assert needle in capsys.readouterr().err


def test_bad_trajectories_exit_2_naming_the_column(tmp_path, capsys):
    clean_summary().to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "trajectories.csv").write_text("arch,scale,n_train,seed\n")
    assert main(["analyze", str(tmp_path), "--resamples", "10"]) == 2
    assert "trajectories.csv: no column 'step'" in capsys.readouterr().err


def test_analysis_does_not_import_torch():
    code = "import sys, fmscale.analysis, fmscale.analysis.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_holdout_that_copies_training_rows_is_flagged():
    summary = clean_summary()
    summary.loc[summary.arch == "real_holdout", "memorised_fraction"] = 0.3
    checks = result_checks(summary, model_rows(summary), Settings())
    assert {check["name"] for check in checks} == {"real_holdout_at_floor"}
    assert len(checks) == len(SIZES)


def test_a_holdout_beaten_within_sampling_error_is_not_a_violation():
    """mmd2 is unbiased and dips below 0: a model a hair under real_holdout is noise unless
    the gap exceeds the 95% band of the two jackknife standard errors."""
    summary = clean_summary()
    holdout = (summary.arch == "real_holdout") & (summary.n_train == 800)
    summary.loc[holdout, "mmd2_pca"] = 0.03
    summary["mmd2_se_pca"] = 0.01
    assert result_checks(summary, model_rows(summary), Settings()) == []
    summary["mmd2_se_pca"] = 0.0001
    checks = result_checks(summary, model_rows(summary), Settings())
    assert [check["name"] for check in checks] == ["real_holdout_at_floor"]


def test_a_memorising_cell_learned_its_rows_and_is_not_a_zero_velocity_failure():
    """val_loss_ratio >= 1 with train_loss_ratio well below 1 is memorisation (the interaction
    at tiny n), not a model that learned nothing; both ratios >= 1 is the failure."""
    summary = clean_summary()
    summary["train_loss_ratio"] = 0.5
    models = summary.kind == "model"
    cell = models & (summary.arch == "unet") & (summary.scale == "base") & (summary.n_train == 50)
    summary.loc[cell, ["val_loss_ratio", "train_loss_ratio"]] = [1.3, 0.06]
    assert result_checks(summary, model_rows(summary), Settings()) == []
    summary.loc[cell & (summary.seed == 1), "train_loss_ratio"] = 1.01
    checks = result_checks(summary, model_rows(summary), Settings())
    assert [check["name"] for check in checks] == ["models_beat_zero_velocity"]
    assert checks[0]["cells"] == ["unet/base/n50/seed1"]


def test_the_law_in_n_at_one_scale_recovers_its_exponent():
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        [
            {
                "arch": "mlp",
                "scale": "base",
                "n_train": n,
                "seed": seed,
                "n_params": 1.6e6,
                "val_loss": (0.4 + 30.0 / n**0.8) * math.exp(rng.normal(0, 0.01)),
            }
            for n in [16, 64, 256, 1024, 4096]
            for seed in range(3)
        ]
    )
    entry = fit_n_law(rows, Settings(resamples=100), "mlp", "base")
    assert entry["verdict"] == "ok", entry
    low, high = entry["beta"]["ci"]
    assert low < 0.8 < high and entry["E"]["ci"][0] < 0.4 < entry["E"]["ci"][1]
    three_sizes = rows[rows.n_train <= 256]
    assert fit_n_law(three_sizes, Settings(resamples=10), "mlp", "base")["verdict"] == (
        "under-identified: 3 n_train (needs 4)"
    )


def test_a_fit_at_a_bound_is_named_and_prints_no_numbers():
    """A target that grows with N (the law's N term can only fall): alpha ends on its bound 0."""
    table = law_table(np.random.default_rng(0), list(SCALES.values()), SIZES, seeds=2)
    table["val_loss"] = 0.5 + 1e-3 * table.n_params**0.5 + 20 / table.n_train**0.5
    entry = fit_law(table, "val_loss", Settings(resamples=60), "mlp").entry
    assert entry["verdict"].startswith("at bound: alpha = "), entry["verdict"]
    assert entry["alpha"] == {"estimate": None, "ci": None}
    assert entry["reasons"][0] == entry["verdict"].split(" (+")[0]
    assert 0 < entry["bound_share"] <= 1


def test_a_fit_that_misses_the_held_out_scale_is_unstable():
    rng = np.random.default_rng(1)
    table = law_table(rng, [1e5, 4e5, 1.6e6, 6.4e6], SIZES, seeds=2, noise=0.005)
    table.loc[table.scale == "s3", "val_loss"] *= 1.5  # the largest scale off the law
    entry = fit_law(table, "val_loss", Settings(resamples=60), "mlp").entry
    assert entry["loso_error"] > lawfit.LOSO_MAX
    assert any(r.startswith("unstable: loso") for r in entry["reasons"]), entry["reasons"]
    assert entry["verdict"] != "ok" and entry["E"]["estimate"] is None


def test_judge_names_each_reason():
    theta = np.array([np.log(0.5), np.log(30.0), np.log(20.0), 0.3, 0.5])
    tight = theta + np.random.default_rng(0).normal(0, 0.01, (200, 5))
    assert lawfit.judge(theta, tight, 0.02) == ([], 0.0)
    assert lawfit.judge(theta, tight, 0.5)[0] == ["unstable: loso 0.5"]
    at_bound = theta.copy()
    at_bound[3] = 5.0
    assert lawfit.judge(at_bound, tight, None)[0][0] == "at bound: alpha = 5"
    wide = tight.copy()
    wide[:, 1] = np.linspace(-20, 20, 200)  # A over 17 decades
    assert "unidentified: A spans" in " ".join(lawfit.judge(theta, wide, None)[0])
    touching = tight.copy()
    touching[:20, 4] = 0.0  # beta on its bound in 10% of refits
    reasons, share = lawfit.judge(theta, touching, None)
    assert reasons[0] == "CI at bound: beta at its bound in 10% of refits" and share == 0.1


def test_bootstrap_keeps_every_cell():
    """Seeds are resampled within their own cell; with one seed, residuals at the fixed design."""
    table = law_table(np.random.default_rng(0), list(SCALES.values()), SIZES, seeds=3)
    points = fits._points(table, "val_loss")
    fit = lawfit.fit_from_grid(points)
    targets, scheme = bootstrap.law_targets(table, points, fit.theta, 5, 50, bootstrap.stream(0))
    assert scheme == "seeds within cells"
    for column, row in table.iterrows():
        cell = np.log(table[(table.scale == row.scale) & (table.n_train == row.n_train)].val_loss)
        # Deviations from the cell's mean are inflated by sqrt(k / (k - 1)), k = 3 seeds.
        drawn = cell.mean() + (targets[:, column] - cell.mean()) / np.sqrt(3 / 2)
        assert set(np.round(drawn, 12)) <= set(np.round(cell, 12))
    one = table[table.seed == 0].reset_index(drop=True)
    points = fits._points(one, "val_loss")
    targets, scheme = bootstrap.law_targets(one, points, fit.theta, 5, 50, bootstrap.stream(0))
    assert scheme == "residuals (one seed)" and targets.shape == (50, len(one))


def test_batched_refits_reach_the_optima_of_l_bfgs_b():
    table = law_table(np.random.default_rng(2), list(SCALES.values()), SIZES, seeds=2)
    points = fits._points(table, "val_loss")
    fit = lawfit.fit_from_grid(points)
    targets, _ = bootstrap.law_targets(table, points, fit.theta, 5, 12, bootstrap.stream(1))
    batched = lawfit.refit(points, targets, fit.theta, 1)
    for theta, target in zip(batched, targets, strict=True):
        row = lawfit.Points(points.log_params, points.log_n, target)
        reference = lawfit.fit(row, np.vstack([fit.theta, batched[0]]))
        assert lawfit.objective(theta, row)[0] <= reference.objective * (1 + 1e-4) + 1e-9


def test_wilson_bounds_are_clean_at_zero_and_one():
    assert wilson(0.0, 300)[0] == 0.0 and wilson(1.0, 300)[1] == 1.0


@pytest.mark.parametrize(
    "levels,needle",
    [
        (["0.5", "0.1"], "analysis.levels=[0.5, 0.1] must be distinct and increasing"),
        (["1.5"], "must lie strictly between 0 and 1"),
    ],
)
def test_bad_levels_exit_2_naming_the_setting(tmp_path, capsys, levels, needle):
    clean_summary().to_csv(tmp_path / "summary.csv", index=False)
    with pytest.raises(SystemExit) if levels == ["1.5"] else contextlib.nullcontext():
        assert main(["analyze", str(tmp_path), "--levels", *levels]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "analysis.json").exists()

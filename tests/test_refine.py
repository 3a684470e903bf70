"""Refinement of n_train around the memorisation crossover: the bracket rule, the proposed
values, the new cells, grid.refine's checks, the CLI and the summary of refined cells.

Frames and results folders are written by hand, so nothing is trained.
"""

import json

import jsonschema
import pandas as pd
import pytest
from tests.test_config import SCHEMA
from tests.test_faults_summary import GRID, folder, write_cell, write_metrics, write_references

from fmscale import summary as summarize_module
from fmscale.cli import main
from fmscale.config import from_section
from fmscale.errors import ConfigError
from fmscale.layout import CELL_KEYS
from fmscale.refine import (
    ABOVE,
    ALREADY_RUN,
    BELOW,
    INSIDE,
    NO_CELLS,
    NO_FREE_N,
    REFINE_PATTERN,
    RefineError,
    log_points,
    new_cells,
    propose,
    read_round,
    refined_cells,
    round_document,
)
from fmscale.study import load_study, settings
from fmscale.study_config import AnalysisConfig, GridConfig, RefineConfig
from fmscale.summary import summarize


def frame(curve, arch="mlp", scale="tiny", seed=0, status="ok"):
    """Model rows of one arch x scale and seed: ``curve`` maps n_train -> memorised_fraction."""
    return pd.DataFrame(
        [
            {"kind": "model", "arch": arch, "scale": scale, "n_train": n, "seed": seed}
            | {"status": status, "memorised_fraction": f}
            for n, f in curve.items()
        ]
    )


def one(rows, levels=(0.1, 0.5), points=2):
    (proposal,) = propose(rows, levels, points)
    return proposal


# --- the bracket rule ------------------------------------------------------------------------


def test_one_level_brackets_the_last_n_above_and_the_next_below():
    p = one(frame({10: 0.9, 20: 0.7, 40: 0.2, 80: 0.0}), levels=(0.5,), points=1)
    assert (p.lo, p.hi, p.mean_lo, p.mean_hi) == (20, 40, 0.7, 0.2)
    assert p.reason.startswith(INSIDE) and p.n_train == (28,)  # sqrt(20 * 40) = 28.3


def test_two_levels_bracket_both_crossings():
    p = one(frame({10: 0.9, 20: 0.6, 40: 0.3, 80: 0.05, 160: 0.0}))
    assert (p.lo, p.hi) == (20, 80)  # last >= 0.5, first after it < 0.1
    assert p.n_train == (32, 50)  # 20 * 4^(1/3), 20 * 4^(2/3)


def test_only_the_low_level_crossed_brackets_it():
    p = one(frame({10: 0.3, 20: 0.2, 40: 0.05, 80: 0.0}), points=1)
    assert (p.lo, p.hi) == (20, 40) and p.n_train == (28,)


def test_below_the_grid_proposes_nothing():
    p = one(frame({10: 0.09, 20: 0.0, 40: 0.0}))
    assert p.reason.startswith(BELOW) and (p.lo, p.hi, p.n_train) == (None, None, ())


def test_with_min_n_a_crossing_below_the_grid_is_looked_for_below_it():
    rows = frame({16: 0.09, 64: 0.0, 256: 0.0})
    (p,) = propose(rows, (0.1, 0.5), 2, min_n=2)
    assert p.reason.startswith(BELOW) and "looking below it" in p.reason
    assert p.n_train == (2, 6)  # log-spaced from max(2, 16 / 8) up to 16
    assert propose(rows, (0.1, 0.5), 2, min_n=12)[0].n_train == (12, 14)
    (none,) = propose(rows, (0.1, 0.5), 2, min_n=16)
    assert none.n_train == () and none.reason.startswith(NO_FREE_N)
    already = pd.concat([rows, frame({2: 0.5, 6: 0.2}, status="failed")])
    assert propose(already, (0.1, 0.5), 2, min_n=2)[0].reason.startswith(ALREADY_RUN)


def test_above_the_grid_proposes_nothing():
    p = one(frame({10: 0.9, 20: 0.4, 40: 0.1}))
    assert p.reason.startswith(ABOVE) and (p.lo, p.hi, p.n_train) == (10, None, ())


def test_a_bracket_without_a_free_integer_proposes_nothing():
    p = one(frame({20: 0.9, 21: 0.0}), points=3)
    assert p.reason.startswith(NO_FREE_N) and (p.lo, p.hi, p.n_train) == (20, 21, ())


def test_n_train_already_run_is_never_proposed_failed_or_not():
    rows = pd.concat(
        [frame({20: 0.9, 40: 0.0}), frame({28: None}, status="failed")], ignore_index=True
    )
    assert one(rows, points=3).n_train == (24, 34)  # 28 is already a (failed) cell
    alone = one(rows, points=1)
    assert alone.reason.startswith(ALREADY_RUN) and alone.n_train == ()
    assert (alone.lo, alone.hi) == (20, 40)  # the failed cell does not move the bracket


def test_seeds_are_averaged_before_the_bracket():
    rows = pd.concat(
        [frame({10: 0.6, 20: 0.9, 40: 0.0}), frame({10: 0.6, 20: 0.0, 40: 0.0}, seed=1)],
        ignore_index=True,
    )
    p = one(rows)  # n = 20: mean 0.45 is below 0.5 (one seed alone would put lo at 20)
    assert (p.lo, p.hi, p.mean_lo) == (10, 40, 0.6) and p.n_train == (16, 25)


def test_failed_cells_and_reference_rows_are_ignored():
    rows = pd.concat(
        [
            frame({10: 0.9, 20: 0.0}),
            frame({40: 0.8}, status="failed"),  # a value that would move hi, were it read
            frame({40: 0.7}, status="stale"),
            pd.DataFrame(
                [
                    {"kind": "reference", "arch": "memoriser", "scale": None, "n_train": 80}
                    | {"seed": None, "status": "ok", "memorised_fraction": 1.0}
                ]
            ),
        ],
        ignore_index=True,
    )
    p = one(rows, points=1)
    assert (p.arch, p.lo, p.hi, p.n_train) == ("mlp", 10, 20, (14,))


def test_each_arch_x_scale_gets_its_own_proposal_in_grid_order():
    rows = pd.concat(
        [
            frame({10: 0.9, 100: 0.0}, arch="dit", scale="base"),
            frame({10: 0.0, 100: 0.0}, arch="dit", scale="tiny"),
            frame({10: None, 100: None}, arch="mlp", scale="tiny", status="failed"),
        ],
        ignore_index=True,
    )
    found = propose(rows, (0.5,), 1)
    assert [(p.arch, p.scale) for p in found] == [("dit", "base"), ("dit", "tiny"), ("mlp", "tiny")]
    assert found[0].n_train == (32,)
    assert found[1].reason.startswith(BELOW) and found[2].reason.startswith(NO_CELLS)


def test_defaults_come_from_the_config_dataclasses():
    rows = frame({10: 0.9, 20: 0.6, 40: 0.3, 80: 0.05, 160: 0.0})
    assert propose(rows) == propose(rows, AnalysisConfig.levels, RefineConfig.points)
    assert RefineConfig.rounds == 0 and len(propose(rows)[0].n_train) == RefineConfig.points


@pytest.mark.parametrize("lo,hi,points", [(4, 64, 1), (4, 6, 5), (100, 102, 3), (2, 4096, 7)])
def test_log_points_are_sorted_distinct_integers_strictly_inside(lo, hi, points):
    found = log_points(lo, hi, points)
    assert found == sorted(set(found)) and all(lo < n < hi for n in found)
    assert 1 <= len(found) <= points


def test_new_cells_are_every_seed_of_each_proposed_n():
    found = propose(frame({10: 0.9, 40: 0.0}), (0.5,), 2)
    made = new_cells(found, iter([0, 3]), "synthetic")  # any iterable of seeds
    assert [tuple(c) for c in made] == [CELL_KEYS] * 4
    assert [(c["n_train"], c["seed"]) for c in made] == [(16, 0), (16, 3), (25, 0), (25, 3)]
    assert {c["dataset"] for c in made} == {"synthetic"}


def test_round_document_reads_back_its_cells(tmp_path):
    found = propose(frame({10: 0.9, 40: 0.0}), (0.5,), 1)
    document = round_document(found, [0], "synthetic", (0.5,), 1, 1)
    path = tmp_path / REFINE_PATTERN.format(dataset="synthetic", round=1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    assert read_round(path) == document["cells"] == new_cells(found, [0], "synthetic")
    assert refined_cells(tmp_path, "synthetic") == document["cells"]
    assert refined_cells(tmp_path, "other") == []
    path.write_text("{")
    with pytest.raises(RefineError, match="round1.json"):
        read_round(path)


# --- grid.refine -----------------------------------------------------------------------------

AXES = {"archs": ["mlp"], "scales": ["tiny"], "n_train": [10], "seeds": [0]}


@pytest.mark.parametrize(
    "refine,needle",
    [
        ({"rounds": -1}, "grid.refine.rounds=-1 must be >= 0"),
        ({"points": 0}, "grid.refine.points=0 must be >= 1"),
        ({"rounds": "two"}, "grid.refine.rounds must be an integer"),
        ({"rounds": 1.5}, "grid.refine.rounds must be an integer"),
        ({"pointz": 2}, "grid.refine: unknown key(s) ['pointz']"),
        ("yes", "grid.refine must be a mapping"),
    ],
)
def test_bad_refine_settings_name_the_key(refine, needle):
    with pytest.raises(ConfigError) as error:
        from_section(GridConfig, {**AXES, "refine": refine}, "grid")
    assert needle in str(error.value)


@pytest.mark.parametrize("refine", [{"rounds": -1}, {"points": 0}, {"pointz": 2}])
def test_the_schema_refuses_what_the_dataclass_refuses(refine):
    config = {"grid": {**AXES, "refine": refine}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, SCHEMA)


def test_refinement_is_off_by_default_and_never_in_the_rules_settings():
    grid = from_section(GridConfig, AXES, "grid")
    assert grid.refine == RefineConfig(rounds=0, points=2)
    plain = load_study({"grid": AXES})
    on = load_study({"grid": {**AXES, "refine": {"rounds": 2, "points": 3}}})
    assert on.grid.refine == RefineConfig(2, 3)
    # the jobs get the same settings with or without refinement (a study that does not refine
    # reruns nothing it ran before refinement existed)
    assert settings(plain, "grid", "data") == settings(on, "grid", "data")
    assert "refine" not in json.loads(settings(on, "grid"))["grid"]


# --- fmscale refine --------------------------------------------------------------------------


def write_summary(results, rows):
    results.mkdir(parents=True, exist_ok=True)
    rows.assign(dataset="synthetic").to_csv(results / "summary.csv", index=False)


def summary_rows():
    rows = pd.concat(
        [
            frame({10: 0.9, 20: 0.6, 40: 0.3, 80: 0.05, 160: 0.0}),
            frame({10: 0.0, 160: 0.0}, scale="small"),
        ],
        ignore_index=True,
    )
    return rows.assign(n_params=1000, val_loss=1.0, val_loss_ratio=0.5)


def test_cli_prints_each_bracket_and_writes_the_cells(tmp_path, capsys):
    write_summary(tmp_path, summary_rows())
    out = tmp_path / "proposals.json"
    assert main(["refine", str(tmp_path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mlp/tiny: n=20 (0.6) .. n=80 (0.05): crossing inside the bracket -> n_train 32, 50" in (
        printed
    )
    assert "mlp/small: below the grid" in printed
    document = json.loads(out.read_text())
    assert document["levels"] == list(AnalysisConfig.levels)
    assert document["points"] == RefineConfig.points and document["seeds"] == [0]
    assert [c["n_train"] for c in document["cells"]] == [32, 50]
    assert main(["refine", str(tmp_path), "--levels", "0.5", "--points", "1"]) == 0
    assert "n=20 (0.6) .. n=40 (0.3)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--levels", "0.5", "0.1"], "analysis.levels"),
        (["--round", "2"], "--round"),
        (["--data-name", "other"], "other"),
    ],
)
def test_cli_errors_name_the_problem(tmp_path, capsys, args, needle):
    write_summary(tmp_path, summary_rows())
    assert main(["refine", str(tmp_path), *args]) == 2
    assert needle in capsys.readouterr().err


def write_scored(results, cell, fraction):
    """A finished cell whose metrics.json holds its memorised_fraction."""
    write_cell(results, cell)
    path = write_metrics(results, cell)
    metrics = json.loads(path.read_text())
    metrics["metrics"]["memorised_fraction"] = fraction
    path.write_text(json.dumps(metrics))


def test_a_workflow_round_reads_the_grid_and_earlier_rounds_from_run_folders(tmp_path, capsys):
    grid = {**GRID, "n_train": [10, 160]}
    base = dict(zip(CELL_KEYS, ("synthetic", "mlp", "tiny", 0, 0), strict=True))
    write_scored(tmp_path, base | {"n_train": 10}, 0.9)
    write_scored(tmp_path, base | {"n_train": 160}, 0.0)
    study = json.dumps({"grid": {k: grid[k] for k in ("archs", "scales", "n_train", "seeds")}})
    first = tmp_path / REFINE_PATTERN.format(dataset="synthetic", round=1)
    args = ["refine", str(tmp_path), "--settings", study, "--levels", "0.5", "--points", "1"]
    assert main([*args, "--round", "1", "-o", str(first)]) == 0
    assert [c["n_train"] for c in read_round(first)] == [40]
    # round 2 reads round 1's cell: finished at 0.2, it moves hi from 160 to 40
    write_scored(tmp_path, base | {"n_train": 40}, 0.2)
    second = tmp_path / REFINE_PATTERN.format(dataset="synthetic", round=2)
    assert main([*args, "--round", "2", "-o", str(second)]) == 0
    document = json.loads(second.read_text())
    assert document["round"] == 2 and document["proposals"][0]["hi"] == 40
    assert [c["n_train"] for c in document["cells"]] == [20]
    # round 2 cannot run before round 1's file exists
    first.unlink()
    assert main([*args, "--round", "2"]) == 2
    assert "round1.json" in capsys.readouterr().err


# --- the summary of refined cells ------------------------------------------------------------


@pytest.fixture
def refined_results(tmp_path, monkeypatch):
    """Two scales at n_train 100 and 400, finished; round 1 added n = 200 to mlp/tiny only."""
    monkeypatch.setattr(summarize_module, "write_plots", lambda *args: [])
    grid = {**GRID, "scales": ["tiny", "small"], "n_train": [100, 400]}
    base = dict(zip(CELL_KEYS, ("synthetic", "mlp", "tiny", 0, 0), strict=True))
    for scale in grid["scales"]:
        for n in grid["n_train"]:
            write_scored(tmp_path, base | {"scale": scale, "n_train": n}, 0.0)
    added = base | {"n_train": 200}
    write_scored(tmp_path, added, 0.3)
    for n in (100, 200, 400):
        write_references(tmp_path, n)
    path = tmp_path / REFINE_PATTERN.format(dataset="synthetic", round=1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"round": 1, "cells": [added]}))
    return tmp_path, grid, added


@pytest.mark.parametrize("with_grid", [True, False], ids=["study-grid", "discovered"])
def test_summary_lists_refined_cells_and_no_missing_ones(refined_results, with_grid):
    results, grid, added = refined_results
    frame = summarize(results, grid if with_grid else None, synthetic=True)
    models = frame[frame.kind == "model"]
    assert len(models) == 5 and (models.status == "ok").all()
    row = models[models.n_train == 200]
    assert (row.arch.tolist(), row.scale.tolist(), row.memorised_fraction.tolist()) == (
        ["mlp"],
        ["tiny"],
        [0.3],
    )
    refs = frame[frame.kind == "reference"]
    assert sorted(refs.n_train.unique()) == [100, 200, 400] and (refs.status == "ok").all()
    md = (results / "summary.md").read_text()
    assert "Failed cells" not in md and "FAILED" not in md and "### Refined n_train" in md
    assert "| mlp | tiny | 200 |" in md
    table = md.split("### mmd2_pca")[1]
    assert "| n=100 | n=200 | n=400 |" in table
    small = next(line for line in table.splitlines() if line.startswith("| mlp / small"))
    assert small.split("|")[3].strip() == ""  # no cell of mlp/small at n = 200


def test_a_refined_cell_not_yet_run_is_listed_as_failed(refined_results):
    results, grid, added = refined_results
    for name in ("cell.json", "metrics.json"):
        (folder(results, added) / name).unlink()
    frame = summarize(results, grid, synthetic=True)
    models = frame[frame.kind == "model"]
    assert models[models.n_train == 200].status.tolist() == ["failed"]
    assert (models[models.n_train != 200].status == "ok").all()

"""The scaling table loader and the parameter-ratio gate."""

import csv
import textwrap

import pytest
import yaml

from fmscale.cli import main
from fmscale.config import TrainConfig
from fmscale.flow import VelocityField
from fmscale.models import ARCHITECTURES, create_model
from fmscale.models.scaling import (
    DEFAULT_TABLE,
    ORIGINAL_PLAN_TABLE,
    PACKAGED_TABLES,
    ScalingTableError,
    load_table,
    table_label,
)
from fmscale.params import ParamGateError, count_table, verify_params


@pytest.mark.parametrize("name", [None, "cpu"], ids=["default table", "cpu table"])
def test_packaged_tables_pass_ratio_band_and_capacity_targets(name):
    table = load_table(name)
    assert table.path == (DEFAULT_TABLE if name is None else PACKAGED_TABLES[name])
    rows = count_table(table)
    assert len(rows) == 12
    for r in rows:
        assert r.ok, r
        assert abs(r.vs_target) <= 0.15
        if r.ratio is not None:
            assert 3 <= r.ratio <= 5


def test_counts_equal_the_built_fields():
    """The gate counts the velocity field a cell trains: the network and its parameterisation."""
    for r in count_table(load_table()):
        net = create_model(r.arch, r.scale)
        field = VelocityField(net, TrainConfig.parameterisation, 1024)
        assert r.n_params == sum(p.numel() for p in field.parameters()), (r.arch, r.scale)


def test_original_plan_table_fails_and_names_every_off_step(tmp_path):
    with pytest.raises(ParamGateError) as info:
        verify_params(ORIGINAL_PLAN_TABLE, out_csv=tmp_path / "p.csv", out_md=tmp_path / "p.md")
    rows = count_table(load_table(ORIGINAL_PLAN_TABLE))
    off = [f"{r.arch}/{r.scale}" for r in rows if not r.ok]
    assert off, "the original plan's table must be flagged"
    for name in off:
        assert name in str(info.value)
    # The table is still written, so the verdicts are on disk for the user.
    with open(tmp_path / "p.csv") as f:
        written = list(csv.DictReader(f))
    assert [w["verdict"] for w in written] == [r.verdict for r in rows]
    assert "OFF RATIO" in (tmp_path / "p.md").read_text()


def test_allow_off_ratio_records_and_continues(tmp_path):
    rows = verify_params(ORIGINAL_PLAN_TABLE, out_csv=tmp_path / "p.csv", allow_off_ratio=True)
    assert any(not r.ok for r in rows)


def test_cli_exit_codes(tmp_path, capsys):
    assert (
        main(["params", "--out-csv", str(tmp_path / "a.csv"), "--out-md", str(tmp_path / "a.md")])
        == 0
    )
    assert "| mamba | base |" in capsys.readouterr().out
    assert main(["params", "--table", str(ORIGINAL_PLAN_TABLE)]) == 1
    assert "Parameter gate failed" in capsys.readouterr().err
    assert main(["params", "--table", str(ORIGINAL_PLAN_TABLE), "--allow-off-ratio"]) == 0
    assert main(["params", "--table", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["params", "--table", "cpuu"]) == 2
    assert "packaged table: default, cpu, original" in capsys.readouterr().err


def _table_with(tmp_path, mutate):
    raw = yaml.safe_load(DEFAULT_TABLE.read_text())
    mutate(raw)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "mutate,needles",
    [
        (lambda r: r["archs"]["mlp"].pop("base"), ["archs.mlp", "missing ['base']"]),
        (lambda r: r["archs"]["dit"]["small"].update(depth=3), ["archs.dit.small", "depth"]),
        (
            lambda r: r["archs"]["unet"]["tiny"].update(hidden_dims=256),
            ["archs.unet.tiny", "hidden_dims"],
        ),
        (
            lambda r: r["archs"]["mlp"]["tiny"].update(hidden_dim="96"),
            ["archs.mlp.tiny", "hidden_dim must be an integer"],
        ),
        (
            lambda r: r["archs"]["mamba"]["tiny"].update(num_layers=0),
            ["archs.mamba.tiny", "num_layers=0"],
        ),
        (
            lambda r: r.update(ratio={"target": 4, "min": 5, "max": 3}),
            ["ratio", "min <= target <= max"],
        ),
        (lambda r: r.update(ratio={"target": 4, "min": -1, "max": 5}), ["ratio", "0 < min"]),
        (lambda r: r["archs"].update(rnn=r["archs"]["mlp"]), ["archs.rnn", "unknown arch"]),
        (lambda r: r.update(scale=["tiny"]), ["top level", "unknown key(s) ['scale']"]),
        (lambda r: r.update(default_scale="huge"), ["default_scale", "huge"]),
        (lambda r: r["capacity"]["targets"].pop("base"), ["capacity.targets"]),
    ],
)
def test_malformed_table_names_file_row_and_field(tmp_path, mutate, needles):
    path = _table_with(tmp_path, mutate)
    with pytest.raises(ScalingTableError) as info:
        load_table(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("archs: [unclosed\n")
    with pytest.raises(ScalingTableError, match="invalid YAML"):
        load_table(path)


def test_create_model_accepts_another_table(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        textwrap.dedent(
            """
            scales: [s1, s2]
            ratio: {target: 4, min: 3, max: 5}
            archs:
              mlp:
                s1: {hidden_dim: 32, num_layers: 1}
                s2: {hidden_dim: 64, num_layers: 2}
            """
        )
    )
    model = create_model("mlp", "s2", table=path, data_dim=64)
    assert model.in_proj.out_features == 64
    assert set(ARCHITECTURES) >= set(load_table(path).archs)


def test_a_table_is_labelled_without_the_machine_s_paths(tmp_path, monkeypatch):
    """params.md names a packaged table by name, even a copy in another checkout, and any other
    table by its path relative to the working directory (no /home/... in committed docs)."""
    copy = tmp_path / "elsewhere" / PACKAGED_TABLES["cpu"].name
    copy.parent.mkdir()
    copy.write_bytes(PACKAGED_TABLES["cpu"].read_bytes())
    assert table_label(load_table(copy)) == "cpu (packaged)"
    own = tmp_path / "tables" / "mine.yaml"
    own.parent.mkdir()
    own.write_bytes(PACKAGED_TABLES["cpu"].read_bytes())
    monkeypatch.chdir(tmp_path)
    assert table_label(load_table(own)) == "tables/mine.yaml"

"""One home per default: the workflow's schema and the settings dataclasses cannot disagree."""

import dataclasses
import os
import re
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml

from fmscale.config import SOLVERS, DataConfig, EvalConfig, TrainConfig, from_section
from fmscale.errors import ConfigError
from fmscale.layout import CELL_LOG_NAME, CELL_PATTERN, cells, parse_cell_dir
from fmscale.study import load_study
from fmscale.study_config import StudyConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _sections(cls=StudyConfig, schema=SCHEMA, where="config"):
    """(where, dataclass, schema object) for the study and every nested section."""
    yield where, cls, schema
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _sections(hints[f.name], schema["properties"][f.name], f"{where}.{f.name}")


SECTIONS = list(_sections())


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_schema_holds_no_defaults():
    assert not [n for n in _walk(SCHEMA) if "default" in n]


@pytest.mark.parametrize("where,cls,schema", SECTIONS, ids=[s[0] for s in SECTIONS])
def test_schema_keys_are_the_dataclass_fields(where, cls, schema):
    assert schema.get("additionalProperties") is False, where
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(cls)}, where


def test_dataclass_defaults_pass_the_schema():
    defaults = StudyConfig(grid=from_section(StudyConfig, {"grid": _GRID}).grid)
    jsonschema.validate({k: defaults.section(k) for k in SCHEMA["properties"]}, SCHEMA)


_GRID = {"archs": ["mlp"], "scales": ["tiny"], "n_train": [10], "seeds": [0]}


def _below(bounds):
    if "minimum" in bounds:
        return bounds["minimum"] - 1 if bounds["type"] == "integer" else bounds["minimum"] - 0.5
    return bounds["exclusiveMinimum"]


_LOWER_BOUNDED = [
    (where, cls, key, bounds)
    for where, cls, schema in SECTIONS
    for key, bounds in schema["properties"].items()
    if bounds.get("type") in ("integer", "number") and {"minimum", "exclusiveMinimum"} & set(bounds)
]


@pytest.mark.parametrize(
    "where,cls,key,bounds", _LOWER_BOUNDED, ids=[f"{w}.{k}" for w, _, k, _ in _LOWER_BOUNDED]
)
def test_dataclasses_refuse_what_the_schema_refuses(where, cls, key, bounds):
    raw = {key: _below(bounds)}
    if cls is StudyConfig:
        raw["grid"] = _GRID
    with pytest.raises(ConfigError, match=key):
        from_section(cls, raw, where.removeprefix("config").lstrip("."))


def test_data_defaults_are_the_same_on_every_path():
    """The workflow (schema + load_study) and `fmscale train --config` read one DataConfig."""
    study = load_study({"grid": _GRID})
    assert study.data == DataConfig.from_dict({}) == DataConfig()
    assert (study.data.n_val, study.data.synthetic.n_rows) == (2000, 24000)


@pytest.mark.parametrize(
    "cls,raw,needle",
    [
        (TrainConfig, {"lr": float("nan")}, "train.lr must be a finite number"),
        (TrainConfig, {"steps": 2.5}, "train.steps must be an integer"),
        (TrainConfig, {"bf16": "yes"}, "train.bf16 must be true or false"),
        (EvalConfig, {"nfe": 8}, "evaluate.nfe must be a list"),
        (EvalConfig, {"nfe": [8, "x"]}, r"evaluate.nfe\[1\] must be an integer"),
        (DataConfig, {"synthetic": {"dimm": 3}}, "data.synthetic: unknown key"),
        (DataConfig, {"synthetic": 5}, "data.synthetic must be a mapping"),
        (StudyConfig, {}, r"missing required key\(s\) \['grid'\]"),
    ],
)
def test_the_one_coercer_names_the_key(cls, raw, needle):
    section = {TrainConfig: "train", EvalConfig: "evaluate", DataConfig: "data"}.get(cls, "")
    with pytest.raises(ConfigError, match=needle):
        from_section(cls, raw, section)


def test_solver_names_have_one_home():
    from fmscale import cli, flow

    assert set(flow._STEPS) == set(SOLVERS)
    parser = cli.build_parser()
    evaluate = parser._subparsers._group_actions[0].choices["evaluate"]
    solver = next(a for a in evaluate._actions if a.dest == "solver")
    assert list(solver.choices) == list(SOLVERS)
    assert "enum" not in SCHEMA["properties"]["evaluate"]["properties"]["solver"]


def test_cell_names_round_trip():
    grid = {
        "datasets": ["synthetic", "mini-lm.v2"],
        "archs": ["mlp", "dit"],
        "scales": ["tiny"],
        "n_train": [8, 4000],
        "seeds": [0, 12],
    }
    found = cells(grid)
    assert len(found) == 16 and {c["dataset"] for c in found} == {"synthetic", "mini-lm.v2"}
    for cell in found:
        assert parse_cell_dir(CELL_PATTERN.format(**cell)) == cell
        assert CELL_PATTERN.format(**cell).startswith(f"runs/{cell['dataset']}/{cell['arch']}/")
        name = "{dataset}/{arch}_{scale}_n{n_train}_seed{seed}".format(**cell)
        assert CELL_LOG_NAME.format(**cell) == name
    assert parse_cell_dir("runs/synthetic/mlp/tiny/nX/seed0") is None
    assert parse_cell_dir("runs/synthetic/mlp/tiny/n8/seed0/ckpt") is None
    assert parse_cell_dir("runs/mlp/tiny/n8/seed0") is None  # the old layout is not a cell


@pytest.mark.parametrize(
    "data,name",
    [
        ({}, "synthetic"),
        ({"path": "/x/minilm_sentences.parquet"}, "minilm_sentences"),
        ({"path": "/x/my emb (v2).npy"}, "my_emb_v2"),
        ({"path": "/x/a.npy", "name": "mine"}, "mine"),
    ],
)
def test_dataset_name_defaults_to_the_file_stem(data, name):
    assert DataConfig.from_dict(data).name == name


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"path": "/x/a.npy", "name": "synthetic"}, "labels the embedded synthetic data"),
        ({"path": "/x/a.npy", "name": "a/b"}, "data.name='a/b'"),
        ({"column": "embedding"}, "data.column names a column of an embeddings file"),
    ],
)
def test_bad_dataset_name_or_column_names_the_key(data, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        DataConfig.from_dict(data)


def test_budget_is_steps_or_epochs_never_both():
    assert TrainConfig().for_rows(10).steps == TrainConfig.DEFAULT_STEPS
    assert TrainConfig(steps=7).for_rows(10_000).steps == 7
    assert TrainConfig(epochs=2.5, batch_size=64).for_rows(100).steps == 4  # ceil(250 / 64)
    assert TrainConfig(epochs=0.001, batch_size=64).for_rows(100).steps == 1
    with pytest.raises(ConfigError, match=r"train.steps=5 and train.epochs=2.0 are both set"):
        from_section(TrainConfig, {"steps": 5, "epochs": 2.0}, "train")
    with pytest.raises(ConfigError, match=r"train.epochs=0.0 must be > 0"):
        from_section(TrainConfig, {"epochs": 0.0}, "train")
    assert from_section(TrainConfig, {"steps": None, "epochs": 2}, "train").epochs == 2


def test_the_workflow_source_goes_first_on_pythonpath_once(monkeypatch):
    from fmscale.study import put_first_on_pythonpath

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    put_first_on_pythonpath("/wf/src")
    put_first_on_pythonpath("/wf/src")
    assert os.environ["PYTHONPATH"] == os.pathsep.join(["/wf/src", "/elsewhere"])
    monkeypatch.delenv("PYTHONPATH")
    put_first_on_pythonpath("/wf/src")
    assert os.environ["PYTHONPATH"] == "/wf/src"


def test_version_has_one_home_and_the_cli_prints_it(capsys):
    """``fmscale --version`` prints ``fmscale.__version__``, which pyproject.toml reads."""
    from pathlib import Path

    import tomllib

    from fmscale import __version__
    from fmscale.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"fmscale {__version__}"
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "fmscale.__version__"

"""The codebase's shape: every summary.csv column documented, no import cycle, small modules,
and the torch-free commands start without torch."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fmscale.catalogue import METRICS, metric_of
from fmscale.metrics import distribution_metrics, pca_basis
from fmscale.record import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "fmscale"
MAX_MODULE_LINES = 430


def _documented() -> set[str]:
    text = (ROOT / "docs/metrics.md").read_text()
    return {name for name in text.replace("`", " ").split()}


@pytest.mark.parametrize("study", ["default_study", "real_study", "cpu_validation"])
def test_every_summary_column_of_a_committed_study_is_documented(study):
    columns = pd.read_csv(ROOT / "docs" / study / "summary.csv", nrows=1).columns
    undocumented = [c for c in columns if c not in COLUMNS and metric_of(c) is None]
    assert undocumented == []
    assert not [c for c in columns if c not in _documented() and metric_of(c) is None]


def test_every_metric_the_scorer_returns_is_in_the_catalogue():
    generator = torch.Generator().manual_seed(0)
    real, samples, train = (torch.randn(40, 6, generator=generator) for _ in range(3))
    scores = distribution_metrics(samples, real, train, pca=pca_basis(real, 3))
    assert [k for k in scores if metric_of(k) is None] == []
    assert {m.name for m in METRICS} <= _documented()
    assert set(COLUMNS) <= _documented()


def _render_docs():
    """scripts/render_docs.py, whose import graph docs/architecture.md is drawn from."""
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "scripts/render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_even_through_lazy_imports():
    docs = _render_docs()
    files = docs.modules()
    graph = {n: docs.imports(n, p, files, lazy=True) for n, p in files.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, f"import cycle: {' -> '.join([*trail, name])}"
        state[name] = 1
        for dep in graph[name]:
            visit(dep, [*trail, name])
        state[name] = 2

    for name in graph:
        visit(name, [])


def test_no_module_is_a_warehouse():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    "argv", [["summarize", "--help"], ["analyze", "--help"], ["summarize", "{missing}"]]
)
def test_torch_free_commands_start_without_torch(argv, tmp_path):
    """--help, and a summarize that stops on a missing results folder (exit 2), never import
    torch: the except clauses of the CLI read the torch-free fmscale.errors."""
    argv = [arg.format(missing=tmp_path / "missing") for arg in argv]
    code = (
        "import sys\nfrom fmscale.cli import main\n"
        f"try:\n    code = main({argv!r})\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print(code, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    exit_code, imported = out.stdout.split()[-2:]
    assert imported == "False", out.stdout + out.stderr
    assert exit_code in ("0", "2")

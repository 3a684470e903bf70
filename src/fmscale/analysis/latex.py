"""The analysis's headline tables as LaTeX (booktabs) tabulars: the rows analysis.md shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import atomic_write
from ..record import ANALYSIS_TABLES
from .interaction import CAPACITY_METRIC
from .numbers import ci_text
from .table_rows import collapse_rows, fit_rows, n_star_rows

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#"}


def _latex_cell(text: str) -> str:
    for char, escaped in LATEX_SPECIALS.items():
        text = text.replace(char, escaped)
    return text.replace("<grid", r"$<$grid").replace(">grid", r"$>$grid")


def latex_table(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular of ``rows`` (needs ``\\usepackage{booktabs}``)."""
    lines = [
        r"\begin{tabular}{" + "l" * len(header) + "}",
        r"\toprule",
        " & ".join(_latex_cell(cell) for cell in header) + r" \\",
        r"\midrule",
        *[" & ".join(_latex_cell(cell) for cell in row) + r" \\" for row in rows],
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _capacity_rows(found: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    steps = found.get(CAPACITY_METRIC, {}).get("steps", {})
    header = ["arch", "step", f"{CAPACITY_METRIC}: larger - smaller [95% CI]"]
    rows = [
        [arch, f"{e['a']} - {e['b']}", ci_text(e)] for arch in sorted(steps) for e in steps[arch]
    ]
    return header, rows


def write_tables(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """The ANALYSIS_TABLES under ``out_dir`` as LaTeX (the same rows as analysis.md)."""
    tables = {
        "fits": fit_rows(report["fits"]),
        "n_star": n_star_rows(report),
        "capacity": _capacity_rows(report["interaction"]),
        "collapse": collapse_rows(report["collapse"]),
    }
    paths = []
    for name in ANALYSIS_TABLES:
        path = out_dir / f"{name}.tex"
        atomic_write(path, latex_table(*tables[name]))
        paths.append(path)
    return paths

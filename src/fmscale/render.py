"""Markdown tables and figure files: the one way fmscale writes either. Torch-free.

matplotlib is imported where a figure is drawn, not here: ``save_figure`` takes the figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_path


def markdown_table(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], align: str | None = None
) -> list[str]:
    """The lines of a Markdown table; ``align`` has one letter per column, ``l`` or ``r``
    (default: all left)."""
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns")
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return ["| " + " | ".join(str(h) for h in header) + " |", rule, *body]


def md_cell(text: Any) -> str:
    """``text`` as a Markdown table cell (its pipes escaped)."""
    return str(text).replace("|", "\\|")


FIGURE_METADATA = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
"""Metadata that would make a rerun write other bytes (dates), left out."""


def save_figure(fig: Any, stem: Path, formats: Sequence[str], dpi: int) -> list[Path]:
    """``stem``.<fmt> for each format, atomically and without dates; closes the figure."""
    import matplotlib.pyplot as plt

    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, metadata=FIGURE_METADATA[fmt])
        paths.append(path)
    plt.close(fig)
    return paths


def log_axes(ax: Any, *names: str) -> None:
    """Log scale on the named axes ("x", "y"), labelled only at powers of ten (minor labels
    overlap)."""
    from matplotlib.ticker import NullFormatter

    for name in names:
        getattr(ax, f"set_{name}scale")("log")
        getattr(ax, f"{name}axis").set_minor_formatter(NullFormatter())

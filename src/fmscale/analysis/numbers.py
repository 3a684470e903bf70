"""How the analysis prints a number: three significant digits, with its 95% CI where it has one;
and its Markdown tables."""

from __future__ import annotations

from typing import Any

from ..render import markdown_table


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def with_ci(entry: dict[str, Any]) -> str:
    """``estimate [lo, hi]``; a CI bound beyond the grid shows as < or >."""
    low, high = entry["ci"] or (None, None)
    low_text = "<grid" if low is None else f"{low:.3g}"
    high_text = ">grid" if high is None else f"{high:.3g}"
    return f"{entry['estimate']:.3g} [{low_text}, {high_text}]"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def ci_text(entry: dict[str, Any]) -> str:
    """``estimate [lo, hi]`` of an interaction entry (no CI: the estimate alone, marked)."""
    if entry.get("estimate") is None:
        return "-"
    if entry["ci"] is None:
        return f"{entry['estimate']:.3g} (no CI)"
    low, high = entry["ci"]
    return f"{entry['estimate']:.3g} [{low:.3g}, {high:.3g}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [*markdown_table(header, rows), ""]


def estimate(entry: dict[str, Any]) -> str:
    """``estimate [lo, hi]`` with an ok CI, else the estimate and its verdict, else the verdict."""
    if entry.get("estimate") is None:
        return entry.get("verdict", "-")
    if entry.get("ci") and entry.get("verdict", "ok") == "ok":
        return with_ci(entry)
    return f"{entry['estimate']:.3g} ({entry.get('verdict', 'no CI')})"

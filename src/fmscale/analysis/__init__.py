"""The study's analysis from ``summary.csv`` (and ``trajectories.csv``) alone: scaling-law fits
with bootstrap CIs and named verdicts (``fits``, ``lawfit``, ``bootstrap``), the memorisation
crossover (``crossover``), the capacity x data interaction (``interaction``), paired comparisons
(``compare``) and result checks (``checks``); ``report``, ``figures`` and ``latex`` write them.

Writes ``analysis.json`` (its shape: docs/analysis.md), ``analysis.md``, the figures and the
LaTeX tables under ``analysis/``. Deterministic: every bootstrap draws from a generator seeded
by ``Settings.seed`` and the name of what it resamples. Torch-free.
"""

from .rows import AnalysisError, Settings
from .run import analyze, analyze_rows

__all__ = ["AnalysisError", "Settings", "analyze", "analyze_rows"]

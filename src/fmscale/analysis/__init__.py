"""The study's analysis from ``summary.csv`` (and ``trajectories.csv``) alone.

Rooms, imported by name (this file loads none of them): ``run`` (``analyze``: the analysis of
one results folder), ``rows`` (reading summary.csv, ``Settings``), ``fits`` with ``lawfit`` and
``bootstrap`` (scaling-law fits with bootstrap CIs and named verdicts), ``crossover`` (the
memorisation crossover n*, tau_mem, the ceiling and collapse), ``interaction`` (capacity x
data), ``compare`` (paired comparisons), ``checks`` (result checks); ``report``, ``findings``,
``numbers``, ``table_rows``, ``figures`` and ``latex`` write them; ``recovery`` simulates
studies of known truth to test the method.

Writes ``analysis.json`` (its shape: docs/analysis.md), ``analysis.md``, the figures and the
LaTeX tables under ``analysis/``. Deterministic: every bootstrap draws from a generator seeded
by ``Settings.seed`` and the name of what it resamples. Torch-free.
"""

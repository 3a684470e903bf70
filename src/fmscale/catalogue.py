"""The metrics catalogue: every metric a cell is scored on, declared once.

A ``Metric`` says what the number means, which way is better, which reference rows it is read
against, whether it heads summary.md (with its plots) and whether the analysis compares
architectures on it. summary.csv's columns, summary.md's tables, the plots, the analysis's
paired comparisons and docs/metrics.md are all read from here. Torch-free.

Adding a metric: compute it in ``fmscale.metrics`` (or ``fmscale.evaluate``) under its name,
then add one ``Metric`` below; ``python scripts/render_metrics_doc.py`` regenerates
docs/metrics.md (docs/architectures.md, "Adding an architecture or a metric").
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCES = ("real_holdout", "gaussian_fit", "memoriser", "empirical_flow", "exact_field")
"""The reference rows a model's metrics are read against (``exact_field``: synthetic data only)."""
REFERENCE_MEANING = {
    "real_holdout": "held-out real rows scored as if they were samples: the floor",
    "gaussian_fit": "samples of a Gaussian fitted to the training rows",
    "memoriser": "the training rows themselves: perfect memorisation",
    "empirical_flow": "the exact velocity field of the training rows, sampled like a model",
    "exact_field": "the generating mixture's exact field (synthetic data): the irreducible loss",
}
PCA_SUFFIX = "_pca"
"""A metric computed again in the real data's top-k PCA space carries this suffix."""


@dataclass(frozen=True)
class Metric:
    """One metric of a cell's metrics.json (and column of summary.csv)."""

    name: str
    meaning: str
    """What it measures, with its unit: the docs/metrics.md line."""
    reading: str
    """How to read it (better direction and its references): summary.md's line under its table."""
    references: tuple[str, ...] = ()
    """Reference rows it is read against (REFERENCES)."""
    headline: bool = False
    """Tabled in summary.md (mean ± std over seeds per arch x scale x n_train)."""
    plots: tuple[str, ...] = ()
    """Plots (file stems under plots/) that draw it: ``<name>_vs_params`` has one panel per
    n_train, ``*_vs_n_train`` one panel per metric that names it."""
    synthetic_only: bool = False
    """Needs the generating distribution: scored on synthetic data only."""
    compared: int | None = None
    """Its place among the metrics the analysis compares architectures on, paired by cell
    (``fmscale.analysis``); None: not compared."""
    pca: bool = False
    """Also computed in the PCA space, as ``<name>_pca``."""


_SAMPLE_REFS = ("real_holdout", "gaussian_fit", "memoriser")
METRICS: tuple[Metric, ...] = (
    Metric(
        "val_loss",
        "CFM loss (mean squared error per dimension) on the validation rows, fixed noise and "
        "times, standardised space",
        "lower is better",
        ("exact_field", "empirical_flow"),
    ),
    Metric(
        "val_loss_zero_velocity",
        "the same for v = 0 (about 2.0 on standardised data)",
        "the baseline val_loss_ratio divides by",
    ),
    Metric(
        "val_loss_ratio",
        "val_loss / val_loss_zero_velocity; 1.0 = learned nothing",
        "lower is better; 1.0 = the v = 0 baseline",
        ("exact_field", "empirical_flow"),
        headline=True,
        plots=("val_loss_ratio_vs_params",),
        compared=0,
    ),
    Metric(
        "train_loss",
        "the validation protocol on the cell's own training rows: the same noise and time draws "
        "(as many as validation rows), the rows cycled when there are fewer, each repeat with "
        "new noise and time",
        "lower than val_loss when the model fits its rows",
    ),
    Metric("train_loss_ratio", "train_loss / its v = 0 baseline", "lower is better"),
    Metric(
        "gap",
        "val_loss - train_loss: the generalisation gap; it opens when memorisation starts "
        "(Favero et al. 2025)",
        "0 = generalises; > 0 = fits its training rows better",
    ),
    Metric("gap_se", "standard error of gap over the rows", "the gap's uncertainty"),
    Metric(
        "gap_ratio",
        "val_loss / train_loss",
        "val_loss / train_loss; 1.0 = generalises, > 1 = fits its training rows better",
        headline=True,
        compared=2,
    ),
    Metric(
        "fd",
        "Fréchet distance of Gaussian fits to samples and test rows (squared units of "
        "standardised data)",
        "lower is better; a Gaussian fit wins it by construction (it matches the moments)",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "mmd2",
        "unbiased MMD² with an RBF kernel, bandwidth by the median heuristic (can dip below 0)",
        "lower is better; real_holdout is the floor",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric("mmd2_se", "standard error of mmd2", "the MMD²'s uncertainty", pca=True),
    Metric(
        "precision",
        "share of samples inside some test row's k-NN ball (Naeem et al. 2020)",
        "higher is better (k-NN, Naeem et al. 2020)",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "recall",
        "share of test rows inside some sample's k-NN ball",
        "higher is better",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "density",
        "mean number of test k-NN balls a sample falls in, over k",
        "1.0 = as dense as the data",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "coverage",
        "share of test rows whose k-NN ball holds a sample",
        "higher is better",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "one_nn_acc",
        "leave-one-out 1-NN two-sample accuracy between samples and test rows",
        "0.5 is ideal; 1.0 = samples and real data fully separable",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "sw2",
        "sliced Wasserstein-2 distance, 256 random directions (seeded)",
        "lower is better",
        _SAMPLE_REFS,
        pca=True,
    ),
    Metric(
        "mmd2_pca",
        "mmd2 in the real data's top-k PCA space",
        "lower is better; real_holdout is the floor",
        _SAMPLE_REFS,
        headline=True,
        plots=("mmd2_pca_vs_params", "mmd2_pca_vs_n_train"),
        compared=4,
    ),
    Metric(
        "precision_pca",
        "precision in the PCA space",
        "higher is better (k-NN, Naeem et al. 2020)",
        _SAMPLE_REFS,
        headline=True,
        plots=("precision_pca_vs_params",),
        compared=3,
    ),
    Metric(
        "recall_pca", "recall in the PCA space", "higher is better", _SAMPLE_REFS, headline=True
    ),
    Metric(
        "one_nn_acc_pca",
        "one_nn_acc in the PCA space",
        "0.5 is ideal; 1.0 = samples and real data fully separable",
        _SAMPLE_REFS,
        headline=True,
    ),
    Metric(
        "fd_pca",
        "fd in the PCA space",
        "lower is better; a Gaussian fit wins it by construction (it matches the moments)",
        _SAMPLE_REFS,
        headline=True,
    ),
    Metric(
        "mode_kl",
        "KL(true mixture weights || histogram of the samples' most likely modes), nats",
        "lower is better; KL(true weights || sample mode histogram)",
        ("exact_field", "real_holdout"),
        headline=True,
        plots=("mode_kl_vs_params",),
        synthetic_only=True,
    ),
    Metric(
        "modes_covered",
        "mixture components holding at least a quarter of their expected share of on-mode samples",
        "higher is better; out of modes_total",
        ("exact_field", "real_holdout"),
        headline=True,
        synthetic_only=True,
    ),
    Metric(
        "modes_total",
        "mixture components of the synthetic source",
        "the count modes_covered is out of",
        synthetic_only=True,
    ),
    Metric(
        "on_mode_fraction",
        "share of samples within the 0.999 chi-square quantile (in-plane Mahalanobis) of "
        "their most likely component",
        "higher is better",
        ("exact_field", "real_holdout"),
        synthetic_only=True,
    ),
    Metric(
        "logpdf_per_dim",
        "mean true log-density of the samples, nats per dimension",
        "higher is better, up to the real rows' own",
        ("exact_field", "real_holdout"),
        synthetic_only=True,
    ),
    Metric(
        "variance_ratio",
        "mean over the dimensions that vary of var(samples) / var(test)",
        "1.0 is ideal; > 1 = excess spread / noise",
        _SAMPLE_REFS,
        headline=True,
    ),
    Metric(
        "memorised_fraction",
        "share of samples whose nearest training row is < 1/3 the distance of the second "
        "nearest (Gu et al. 2023), in the full space",
        "lower is better; the memoriser scores 1.0",
        ("memoriser", "real_holdout"),
        headline=True,
        plots=("memorisation_vs_n_train",),
        compared=1,
        pca=True,
    ),
    Metric(
        "nn_train_test_ratio",
        "median over samples of (distance to the nearest training row) / (distance to the "
        "nearest test row)",
        "1.0 = generalises; near 0 = copies the training set",
        ("memoriser", "real_holdout"),
        headline=True,
        plots=("memorisation_vs_n_train",),
        pca=True,
    ),
)
"""Every metric, in summary.csv's order; a ``pca`` metric's ``_pca`` twin follows the full-space
metrics as evaluate writes them."""

BY_NAME = {m.name: m for m in METRICS}
HEADLINE_METRICS = [m.name for m in METRICS if m.headline]
SYNTHETIC_ONLY = tuple(m.name for m in METRICS if m.synthetic_only)
COMPARED_METRICS = tuple(
    m.name for m in sorted((m for m in METRICS if m.compared is not None), key=lambda m: m.compared)
)
DIRECTION = {m.name: m.reading for m in METRICS if m.headline}
"""summary.md's line under each headline table."""


def plot_metrics(stem: str) -> list[str]:
    """The metrics a plot draws, in catalogue order."""
    return [m.name for m in METRICS if stem in m.plots]


def _plots() -> list[str]:
    """Every plot stem, the ``_vs_params`` ones first, each in catalogue order."""
    stems = dict.fromkeys(stem for m in METRICS for stem in m.plots)
    return sorted(stems, key=lambda s: not s.endswith("_vs_params"))


PLOTS = _plots()
SYNTHETIC_PLOTS = tuple(
    stem for stem in PLOTS if all(BY_NAME[m].synthetic_only for m in plot_metrics(stem))
)


def plot_names(synthetic: bool) -> list[str]:
    """The plots ``summarize`` draws for a dataset: every one of PLOTS on synthetic data, all
    but the synthetic-only ones on real data (which would be empty)."""
    return [name for name in PLOTS if synthetic or name not in SYNTHETIC_PLOTS]


def metric_of(column: str) -> Metric | None:
    """The catalogue entry a summary.csv column is (``x_pca`` -> x's, when x has ``pca``)."""
    if column in BY_NAME:
        return BY_NAME[column]
    base = BY_NAME.get(column.removesuffix(PCA_SUFFIX))
    return base if base is not None and base.pca and column.endswith(PCA_SUFFIX) else None

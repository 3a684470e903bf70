"""The scaling law L(N, n) = E + A / N^alpha + B / n^beta, fitted as in Hoffmann et al. 2022
(approach 3): in log space, log L_hat = LSE(a - alpha log N, b - beta log n, e) with E = e^e,
A = e^a, B = e^b, a Huber loss (delta = 1e-3) on log L - log L_hat, L-BFGS-B from a grid of
starting points. Torch-free; numpy and scipy only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3
PARAMETERS = ("e", "a", "b", "alpha", "beta")
"""The order of a parameter vector theta."""
INIT_GRID = {
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
"""Hoffmann et al.'s grid of initialisations (4,500 points)."""
REFIT_GRID = {
    "e": (-1.0, 0.0, 1.0),
    "a": (0.0, 10.0, 20.0),
    "b": (0.0, 10.0, 20.0),
    "alpha": (0.5, 1.5),
    "beta": (0.5, 1.5),
}
"""A coarser grid for bootstrap refits, which also start from the full-data optimum."""
BOUNDS = ((-30.0, 30.0), (-30.0, 60.0), (-30.0, 60.0), (0.0, 5.0), (0.0, 5.0))
"""Box constraints of theta: the exponents are non-negative (the law's terms fall with N, n)."""
NO_PARAMS_TERM = {"a": (-30.0,), "alpha": (0.0,)}
"""The N term held at A = e^-30, alpha = 0 (a constant ~1e-13, inside E): the law in n alone,
L = E + B / n^beta, fitted at one model size."""
N_ONLY_BOUNDS = tuple(
    (NO_PARAMS_TERM[name][0],) * 2 if name in NO_PARAMS_TERM else bound
    for name, bound in zip(PARAMETERS, BOUNDS, strict=True)
)
"""BOUNDS with the N term's parameters pinned at NO_PARAMS_TERM."""
FULL_STARTS = 12
"""L-BFGS-B runs from this many of the best grid points (the grid is scored in one pass)."""
GRADIENT_TOLERANCE = 1e-4
"""Largest projected-gradient norm (of the mean Huber loss / delta) of a converged fit."""
AGREEMENT = 1e-6
"""Starts whose objective lies within AGREEMENT * (1 + best) of the best reached the same optimum
(the objective is a mean absolute log residual, so 1e-6 is far below any visible difference)."""


@dataclass(frozen=True)
class Points:
    """The observations of one fit: log parameters, log n_train and log target per row."""

    log_params: np.ndarray
    log_n: np.ndarray
    log_target: np.ndarray

    def take(self, rows: np.ndarray) -> Points:
        """The points at ``rows`` (repeats allowed: a bootstrap resample)."""
        return Points(self.log_params[rows], self.log_n[rows], self.log_target[rows])


@dataclass(frozen=True)
class Fit:
    """The best optimum found, its objective, and whether it passed the convergence check."""

    theta: np.ndarray
    objective: float
    converged: bool


def grid(axes: dict[str, tuple[float, ...]]) -> np.ndarray:
    """Every combination of the axes' values as rows of theta (in PARAMETERS order)."""
    return np.array(list(itertools.product(*(axes[name] for name in PARAMETERS))))


def log_prediction(theta: np.ndarray, log_params: np.ndarray, log_n: np.ndarray) -> np.ndarray:
    """log L_hat for parameter rows ``theta`` [..., 5] at the points: shape [..., m]."""
    e, a, b, alpha, beta = (theta[..., i, None] for i in range(5))
    return np.logaddexp(np.logaddexp(a - alpha * log_params, b - beta * log_n), e)


def _huber(residual: np.ndarray) -> np.ndarray:
    """The Huber loss of the residuals, divided by delta (so large residuals cost |r|)."""
    small = np.abs(residual) <= HUBER_DELTA
    return np.where(small, 0.5 * residual**2 / HUBER_DELTA, np.abs(residual) - 0.5 * HUBER_DELTA)


def grid_objective(thetas: np.ndarray, points: Points) -> np.ndarray:
    """The mean Huber loss of every parameter row of ``thetas`` [k, 5] (one vectorised pass)."""
    residual = points.log_target - log_prediction(thetas, points.log_params, points.log_n)
    return _huber(residual).mean(axis=-1)


def objective(theta: np.ndarray, points: Points) -> tuple[float, np.ndarray]:
    """The mean Huber loss at ``theta`` and its gradient."""
    e, a, b, alpha, beta = theta
    terms = np.stack(
        [a - alpha * points.log_params, b - beta * points.log_n, np.full_like(points.log_n, e)]
    )
    log_hat = np.logaddexp.reduce(terms, axis=0)
    weights = np.exp(terms - log_hat)  # d log_hat / d (each term)
    residual = points.log_target - log_hat
    slope = -np.clip(residual / HUBER_DELTA, -1.0, 1.0) / len(residual)  # d loss / d log_hat
    gradient = np.array(
        [
            slope @ weights[2],
            slope @ weights[0],
            slope @ weights[1],
            -slope @ (weights[0] * points.log_params),
            -slope @ (weights[1] * points.log_n),
        ]
    )
    return float(_huber(residual).mean()), gradient


def projected_gradient_norm(theta: np.ndarray, gradient: np.ndarray, bounds=BOUNDS) -> float:
    """The gradient's norm ignoring components that push against an active bound."""
    low, high = np.array(bounds).T
    blocked = ((theta <= low) & (gradient > 0)) | ((theta >= high) & (gradient < 0))
    return float(np.linalg.norm(np.where(blocked, 0.0, gradient)))


def _minimise(start: np.ndarray, points: Points, bounds=BOUNDS):
    return minimize(
        objective,
        start,
        args=(points,),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 500, "ftol": 1e-10, "gtol": 1e-8},
    )


def best_starts(axes: dict[str, tuple[float, ...]], points: Points, count: int) -> np.ndarray:
    """The ``count`` grid points of lowest objective (ties broken by grid order)."""
    thetas = grid(axes)
    order = np.argsort(grid_objective(thetas, points), kind="stable")
    return thetas[order[:count]]


def fit(points: Points, starts: np.ndarray, bounds=BOUNDS) -> Fit:
    """L-BFGS-B from each start; the best optimum, checked for convergence.

    Converged: at the best optimum the optimiser reports success and the projected gradient is
    below GRADIENT_TOLERANCE, and more than one start reached it (when more than one was given).
    """
    results = [_minimise(start, points, bounds) for start in starts]
    values = np.array([result.fun for result in results])
    best = results[int(np.argmin(values))]
    gradient = objective(best.x, points)[1]
    stationary = (
        best.success and projected_gradient_norm(best.x, gradient, bounds) < GRADIENT_TOLERANCE
    )
    reached = np.sum(values <= best.fun + AGREEMENT * (1 + abs(best.fun)))
    converged = bool(stationary and (reached > 1 or len(starts) == 1))
    return Fit(best.x, float(best.fun), converged)


def fit_from_grid(points: Points, n_only: bool = False) -> Fit:
    """The full-data fit: L-BFGS-B from the FULL_STARTS best points of INIT_GRID (``n_only``:
    the law in n alone, the N term held, see NO_PARAMS_TERM)."""
    axes, bounds = _space(INIT_GRID, n_only)
    return fit(points, best_starts(axes, points, FULL_STARTS), bounds)


def refit(
    points: Points, optimum: np.ndarray, grid_starts: int, n_only: bool = False
) -> np.ndarray:
    """A bootstrap refit from ``optimum`` and the ``grid_starts`` best points of REFIT_GRID."""
    axes, bounds = _space(REFIT_GRID, n_only)
    starts = np.vstack([optimum[None], best_starts(axes, points, grid_starts)])
    results = [_minimise(start, points, bounds) for start in starts]
    return min(results, key=lambda result: result.fun).x


def _space(axes: dict[str, tuple[float, ...]], n_only: bool) -> tuple[dict, tuple]:
    """The starting grid and bounds of the joint law, or of the law in n alone."""
    return ({**axes, **NO_PARAMS_TERM}, N_ONLY_BOUNDS) if n_only else (axes, BOUNDS)


def natural(theta: np.ndarray) -> dict[str, np.ndarray]:
    """E, A, alpha, B, beta from log-space parameter rows [..., 5]."""
    return {
        "E": np.exp(theta[..., 0]),
        "A": np.exp(theta[..., 1]),
        "alpha": theta[..., 3],
        "B": np.exp(theta[..., 2]),
        "beta": theta[..., 4],
    }

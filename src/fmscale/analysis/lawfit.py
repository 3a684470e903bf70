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
BOUND_MARGIN = 0.01
"""A parameter within this share of its bound's range of a bound sits at the bound."""
BOUND_SHARE = 0.025
"""A parameter at its bound in more refits than this has a CI end on the bound (truncated)."""
EXPONENT_SPAN = 3.0
"""An exponent whose 95% CI is not positive or spans more than this factor (hi / lo) is
unidentified."""
COEFFICIENT_DECADES = 2.0
"""A coefficient (E, A, B) whose 95% CI spans more decades than this is unidentified."""
LOSO_MAX = 0.1
"""Largest mean relative error on the held-out largest scale of a stable fit."""
N_ONLY_FREE = ("e", "b", "beta")
"""The parameters of the law in n alone (the N term is held)."""
NATURAL_NAMES = {"e": "E", "a": "A", "b": "B", "alpha": "alpha", "beta": "beta"}
"""How each log-space parameter is reported."""
BATCH_ITERATIONS = 1000
"""Iteration cap of the batched refit (rows that stop improving leave earlier)."""
BATCH_WINDOW = 50
BATCH_TOLERANCE = 1e-8
"""A batched refit row stops when its loss fell by less than this (relative) over the last
BATCH_WINDOW iterations, or when no step short of a vanishing one lowers it."""
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


def _batch_terms(theta: np.ndarray, points: Points) -> tuple[np.ndarray, np.ndarray]:
    """log L_hat [B, m] and its Jacobian [B, m, 5] for parameter rows ``theta`` [B, 5]."""
    n_term = theta[:, 1, None] - theta[:, 3, None] * points.log_params
    d_term = theta[:, 2, None] - theta[:, 4, None] * points.log_n
    e_term = theta[:, 0, None]
    top = np.maximum(np.maximum(n_term, d_term), e_term)
    w_n, w_d, w_e = np.exp(n_term - top), np.exp(d_term - top), np.exp(e_term - top)
    total = w_n + w_d + w_e
    w_n, w_d, w_e = w_n / total, w_d / total, w_e / total
    jacobian = np.stack([w_e, w_n, w_d, -w_n * points.log_params, -w_d * points.log_n], axis=-1)
    return top + np.log(total), jacobian


def refit_batch(
    points: Points, targets: np.ndarray, starts: np.ndarray, bounds=BOUNDS
) -> tuple[np.ndarray, np.ndarray]:
    """The law fitted to every row of ``targets`` [B, m] at ``points``' design, from
    ``starts`` [B, 5]: the optima [B, 5] and their mean Huber losses [B].

    Bounded Levenberg-Marquardt on the Huber loss's iteratively reweighted least squares
    (weights min(1, delta / |r|)), all rows at once: a step is kept only where it lowers the
    row's loss, parameters at a bound that the step pushes outward are held. It reaches the
    optima L-BFGS-B reaches (benchmarks/recovery.py compares them) at a few numpy passes per
    iteration for all rows, where L-BFGS-B needs ~130 Python-level evaluations per row.
    """
    low, high = np.array(bounds, float).T
    fixed = low == high
    theta = np.clip(starts.astype(float), low, high)
    rows = len(theta)
    damping = np.full(rows, 1e-3)
    log_hat, jac = _batch_terms(theta, points)
    residual = targets - log_hat
    loss = _huber(residual).mean(axis=1)
    active = np.ones(rows, bool)
    eye = np.eye(5)
    checkpoint = loss.copy()
    for iteration in range(1, BATCH_ITERATIONS + 1):
        if iteration % BATCH_WINDOW == 0:
            active &= checkpoint - loss > BATCH_TOLERANCE * (1 + loss)
            checkpoint = loss.copy()
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        r, j = residual[idx], jac[idx]
        weight = np.minimum(1.0, HUBER_DELTA / np.maximum(np.abs(r), 1e-300))
        weighted = j * weight[..., None]
        gradient = -np.matmul((weight * r)[:, None, :], j)[:, 0]  # of 0.5 sum w r^2
        held = (
            fixed | ((theta[idx] <= low) & (gradient > 0)) | ((theta[idx] >= high) & (gradient < 0))
        )
        normal = np.matmul(weighted.transpose(0, 2, 1), j)
        diagonal = np.diagonal(normal, axis1=1, axis2=2)
        floor = 1e-6 * diagonal.max(axis=1, keepdims=True) + 1e-9
        normal = normal + (damping[idx, None] * (diagonal + floor))[:, :, None] * eye
        normal = np.where(held[:, :, None] | held[:, None, :], 0.0, normal) + held[:, :, None] * eye
        step = np.linalg.solve(normal, np.where(held, 0.0, -gradient)[..., None])[..., 0]
        candidate = np.clip(theta[idx] + step, low, high)
        c_log_hat, c_jac = _batch_terms(candidate, points)
        c_residual = targets[idx] - c_log_hat
        c_loss = _huber(c_residual).mean(axis=1)
        better = c_loss < loss[idx]
        keep = idx[better]
        theta[keep], loss[keep] = candidate[better], c_loss[better]
        residual[keep], jac[keep] = c_residual[better], c_jac[better]
        damping[idx] = np.where(better, np.maximum(damping[idx] / 3, 1e-9), damping[idx] * 4)
        done = damping[idx] > 1e12
        active[idx[done]] = False
    return theta, loss


def refit(
    points: Points,
    targets: np.ndarray,
    optimum: np.ndarray,
    grid_starts: int,
    n_only: bool = False,
) -> np.ndarray:
    """Bootstrap refits [B, 5] of the rows of ``targets`` [B, m] at ``points``' design, each
    the better of two starts: the full-data ``optimum`` and (with ``grid_starts``) the row's
    best point of REFIT_GRID."""
    axes, bounds = _space(REFIT_GRID, n_only)
    rows = len(targets)
    candidates = [np.broadcast_to(optimum, (rows, 5))]
    if grid_starts:
        thetas = grid(axes)
        predicted = log_prediction(thetas, points.log_params, points.log_n)  # [k, m]
        scores = _huber(targets[:, None, :] - predicted[None]).mean(axis=-1)
        order = np.argsort(scores, axis=1, kind="stable")[:, :grid_starts]
        candidates += [thetas[order[:, i]] for i in range(grid_starts)]
    results = [refit_batch(points, targets, start, bounds) for start in candidates]
    losses = np.stack([loss for _, loss in results])
    best = np.argmin(losses, axis=0)
    return np.stack([theta for theta, _ in results])[best, np.arange(rows)]


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


def _report_value(name: str, value: float) -> float:
    """A log-space parameter in the units it is reported in (e^value for the coefficients)."""
    return value if name in ("alpha", "beta") else float(np.exp(value))


def at_bound(theta: np.ndarray, bounds=BOUNDS) -> np.ndarray:
    """Per parameter of rows ``theta`` [..., 5]: within BOUND_MARGIN of a bound."""
    low, high = np.array(bounds).T
    margin = BOUND_MARGIN * (high - low)
    return (theta <= low + margin) | (theta >= high - margin)


def judge(
    theta: np.ndarray,
    draws: np.ndarray,
    loso_error: float | None,
    n_only: bool = False,
) -> tuple[list[str], float]:
    """Why a fit's numbers cannot be reported (empty: the fit is ``ok``), and the share of
    bootstrap refits with some parameter at a bound.

    Reasons: a parameter at (within BOUND_MARGIN of) an optimiser bound; a CI end on a bound
    (more than BOUND_SHARE of the refits there); an exponent CI not positive or wider than
    EXPONENT_SPAN; a coefficient CI over COEFFICIENT_DECADES decades; a leave-one-scale-out
    error above LOSO_MAX.
    """
    bounds = N_ONLY_BOUNDS if n_only else BOUNDS
    free = [PARAMETERS.index(name) for name in (N_ONLY_FREE if n_only else PARAMETERS)]
    bound_now, bound_draws = at_bound(theta, bounds), at_bound(draws, bounds)
    reasons, flagged = [], set()
    for i in free:
        label = NATURAL_NAMES[PARAMETERS[i]]
        if bound_now[i]:
            reasons.append(f"at bound: {label} = {_report_value(PARAMETERS[i], theta[i]):.3g}")
        elif bound_draws[:, i].mean() > BOUND_SHARE:
            share = bound_draws[:, i].mean()
            reasons.append(f"CI at bound: {label} at its bound in {share:.0%} of refits")
        else:
            continue
        flagged.add(i)
    for i in free:
        if i in flagged:
            continue
        name = PARAMETERS[i]
        low, high = np.quantile(draws[:, i], [0.025, 0.975], method="inverted_cdf")
        if name in ("alpha", "beta"):
            if low <= 0:
                reasons.append(f"unidentified: {name} CI reaches {low:.3g}")
            elif high / low > EXPONENT_SPAN:
                reasons.append(f"unidentified: {name} spans {high / low:.3g}x")
        elif (decades := (high - low) / np.log(10)) > COEFFICIENT_DECADES:
            reasons.append(f"unidentified: {NATURAL_NAMES[name]} spans {decades:.3g} decades")
    if loso_error is not None and loso_error > LOSO_MAX:
        reasons.append(f"unstable: loso {loso_error:.3g}")
    share = float(bound_draws[:, free].any(axis=1).mean()) if len(draws) else 0.0
    gravity = ("at bound", "CI at bound", "unidentified", "unstable")
    return sorted(reasons, key=lambda reason: gravity.index(reason.split(":")[0])), share

"""The statistics behind the judge's win rates and sanity rates, each small enough to check by hand.

Intervals are 95%; randomness (the bootstrap) comes from a seed, so a report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LENGTH_SLOPE_L2 = 0.01
"""Ridge on the length slope of the LC fit, so perfectly length-separated preferences still fit finitely."""


def bootstrap_ci(values: Sequence[float], seed: int, resamples: int = 2000) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean (resampling the values); None without values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    picks = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def wilson_interval(successes: float, n: int) -> tuple[float, float] | None:
    """95% Wilson score interval of a rate (successes may be fractional: ties count half); None when n = 0."""
    if n == 0:
        return None
    z = 1.959963984540054
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test_p(wins: int, losses: int) -> float | None:
    """One-sided sign test p-value that wins beat losses more often than chance (ties dropped); None without any."""
    if wins + losses == 0:
        return None
    from scipy.stats import binomtest  # here: scipy takes half a second to import

    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def length_controlled_win_rate(preferences: Sequence[float], length_diffs: Sequence[float]) -> float | None:
    """AlpacaEval 2's length-controlled win rate for one model pair (Dubois et al. 2024).

    Fits preference ~ sigmoid(θ0 + θ1·tanh(Δ / std(Δ))) by maximum likelihood (preferences in [0, 1]
    are soft labels; Δ = the model's length minus the reference's, std the population std) and
    returns sigmoid(θ0): the win rate predicted at equal lengths. AlpacaEval's per-instruction
    difficulty term needs many models per prompt and is left out. With no length variation the
    fit is the intercept alone, so LC equals the raw win rate.
    """
    y = np.asarray(preferences, dtype=float)
    if y.size == 0:
        return None
    mean = float(y.mean())
    if mean in (0.0, 1.0):
        return mean
    diffs = np.asarray(length_diffs, dtype=float)
    spread = float(diffs.std())
    x = np.tanh(diffs / spread) if spread > 0 else np.zeros_like(y)
    theta0, _ = fit_length_glm(y, x)
    return float(1.0 / (1.0 + math.exp(-theta0)))


def fit_length_glm(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(θ0, θ1) minimising the logistic loss of y on θ0 + θ1·x plus LENGTH_SLOPE_L2·θ1²/2.

    Newton's method with step halving: the loss is convex, so this converges from the intercept-only start.
    """
    theta = np.array([math.log(y.mean() / (1 - y.mean())), 0.0])
    design = np.column_stack([np.ones_like(x), x])
    ridge = np.diag([0.0, LENGTH_SLOPE_L2])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (p - y) + ridge @ theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        while _loss(theta - step, y, x) > _loss(theta, y, x) and np.max(np.abs(step)) > 1e-12:
            step = step / 2
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def _loss(theta: np.ndarray, y: np.ndarray, x: np.ndarray) -> float:
    z = theta[0] + theta[1] * x
    return float(np.sum(np.logaddexp(0, z) - y * z) + LENGTH_SLOPE_L2 * theta[1] ** 2 / 2)

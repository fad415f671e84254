"""The statistics behind every leaderboard number: bootstrap intervals, paired tests, length control.

- Confidence intervals: 95% percentile bootstrap of the mean (``scipy.stats.bootstrap``, 9,999 resamples,
  fixed seed so a leaderboard is reproducible). Percentile, not BCa, because BCa is undefined when all values
  are equal and unstable at the 10-20 samples a mini benchmark has.
- Paired test against the base model: Wilcoxon signed-rank over the per-prompt differences (prompts matched by
  doc_id), two-sided, mid-ranks for ties, zero differences split between the signs; exact (every sign
  flip enumerated) up to 16 non-zero differences, else the normal approximation with tie correction.
  All differences zero gives p = 1; no pair, no test. The regression gate (leaderboard.check) takes
  scipy.stats.wilcoxon(zero_method="pratt")'s p instead (signed_rank_p says how).
- Length-controlled quality: pool every (model, sample) point, fit by OLS
  quality = a_model + b * log(words + 1), and report a_model + b * c where c is the median log length of all
  points, with the OLS t-interval. Each sample's quality moved to the common length,
  q - b * (log(words + 1) - c), averages exactly to that value per model, so it is paired-testable too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0
ALPHA = 0.05
EXACT_MAX_N = 16
ZERO_METHODS = ("zsplit", "pratt")  # how zero differences count: split between the signs, or ranked only
EXACT_METHODS = ("exact_up_to_16", "scipy_auto")  # when the p-value is exact rather than approximated


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval; ``ci`` is None when there is nothing to resample (no values)."""

    value: float | None
    ci: tuple[float, float] | None
    n: int

    def to_json(self) -> dict:
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "n": self.n}


@dataclass(frozen=True)
class PairedTest:
    """Candidate minus reference over the same prompts: mean difference, Wilcoxon p-value, significance."""

    diff: float
    p: float
    n_pairs: int

    @property
    def significant(self) -> bool:
        return self.p < ALPHA

    def to_json(self) -> dict:
        return {"diff": self.diff, "p": self.p, "n_pairs": self.n_pairs, "significant": self.significant}


def bootstrap_mean(values: list[float] | np.ndarray) -> Estimate:
    """The mean and its 95% percentile-bootstrap interval; one value or all-equal values give a zero-width one."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Estimate(None, None, 0)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return Estimate(mean, (mean, mean), int(x.size))
    result = stats.bootstrap(
        (x,), np.mean, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
        vectorized=True, rng=np.random.default_rng(SEED),
    )
    interval = result.confidence_interval
    return Estimate(mean, (float(interval.low), float(interval.high)), int(x.size))


def paired_test(reference: dict, candidate: dict, zero_method: str = "zsplit", method: str = "exact_up_to_16"
                ) -> PairedTest | None:
    """Wilcoxon signed-rank test of candidate vs reference over the doc_ids both have (values: doc_id -> number);
    ``zero_method`` and ``method`` as signed_rank_p takes them."""
    shared = sorted(set(reference) & set(candidate), key=str)
    if not shared:
        return None
    diffs = np.array([candidate[d] - reference[d] for d in shared], dtype=float)
    mean_diff = float(diffs.mean())
    if np.all(diffs == 0):
        return PairedTest(mean_diff, 1.0, len(shared))
    return PairedTest(mean_diff, signed_rank_p(diffs, zero_method, method), len(shared))


def signed_rank_p(diffs: np.ndarray, zero_method: str = "zsplit", method: str = "exact_up_to_16") -> float:
    """Two-sided Wilcoxon signed-rank p-value with mid-ranks for ties. Zero differences are ranked with the others
    and their ranks split between the signs (``zsplit``) or given to neither (``pratt``, Pratt 1959).

    ``method`` says when the p-value is exact (over every sign flip, ties and all):
    ``exact_up_to_16``: at most EXACT_MAX_N non-zero differences (the leaderboard's, as pre-registered);
    ``scipy_auto``: as scipy.stats.wilcoxon's default picks, at most 13 differences, or at most 50 with neither
    ties nor zeros (the gate's, so its p is scipy's). Otherwise the normal approximation with tie correction,
    scipy.stats.wilcoxon(method="approx")'s formula written out (for Pratt, Cureton's 1967 mean and variance
    without the zeros). The 2^k flips are counted, not listed: mid-ranks are multiples of 1/2, so the number of
    flips giving each positive-rank sum grows one rank at a time (a polynomial product). Both keep the check and
    `selflengthen power`'s thousands of tests fast (scipy's own exact path for 13 tied differences takes 0.2 s).
    """
    if zero_method not in ZERO_METHODS:
        raise ValueError(f"zero_method must be one of {', '.join(ZERO_METHODS)}, got {zero_method!r}")
    if method not in EXACT_METHODS:
        raise ValueError(f"method must be one of {', '.join(EXACT_METHODS)}, got {method!r}")
    ranks, ties = _mid_ranks(np.abs(diffs))
    nonzero = diffs != 0
    zeros = int((~nonzero).sum())
    zero_share = ranks[~nonzero].sum() / 2 if zero_method == "zsplit" else 0.0
    observed = ranks[diffs > 0].sum() + zero_share
    if method == "exact_up_to_16":
        exact = nonzero.sum() <= EXACT_MAX_N
    else:
        exact = diffs.size <= 13 or (diffs.size <= 50 and not zeros and np.all(ties == 1))
    if not exact:
        n = diffs.size
        mean, spread2 = n * (n + 1.0) / 4, n * (n + 1.0) * (2.0 * n + 1.0)
        if zero_method == "pratt" and zeros:  # the zeros' ranks leave the statistic, and their tie group the correction
            mean -= zeros * (zeros + 1.0) / 4
            spread2 -= zeros * (zeros + 1.0) * (2.0 * zeros + 1.0)
            ties = ties[1:]  # zero is the smallest |difference|: its tie group comes first
        spread = np.sqrt((spread2 - (ties ** 3 - ties).sum() / 2) / 24)
        return float(2 * special.ndtr(-abs((observed - mean) / spread)))
    center = ranks[nonzero].sum() / 2 + zero_share
    flips = np.ones(1)  # flips[s]: sign flips whose positive ranks sum to s / 2
    for step in np.rint(2 * ranks[nonzero]).astype(int):
        grown = np.zeros(flips.size + step)
        grown[:flips.size] += flips
        grown[step:] += flips
        flips = grown
    flipped = np.arange(flips.size) / 2 + zero_share
    return float(flips[np.abs(flipped - center) >= abs(observed - center) - 1e-9].sum() / flips.sum())


def _mid_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average (scipy.stats.rankdata's), and the size of each tie group."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2, sizes)
    return ranks, sizes


@dataclass(frozen=True)
class LengthControl:
    """The pooled OLS fit quality = intercept[model] + slope * log(words + 1), and each model's value at c."""

    slope: float
    common_log_words: float
    intercepts: dict[str, float]
    estimates: dict[str, Estimate]

    def adjusted(self, quality: float, words: float) -> float:
        """One sample's quality moved along the fitted slope to the common length."""
        return float(quality - self.slope * (np.log(words + 1) - self.common_log_words))

    def to_json(self) -> dict:
        return {
            "method": "OLS quality ~ model + log(words+1), evaluated at the median log length",
            "slope": self.slope,
            "common_log_words": self.common_log_words,
            "common_words": float(np.expm1(self.common_log_words)),
            "intercepts": self.intercepts,
        }


def fit_length_control(points: dict[str, list[tuple[float, float]]]) -> LengthControl | None:
    """Fit on {model: [(words, quality), ...]}; None when the slope is not identifiable (one length, no points)."""
    models = [m for m, pts in points.items() if pts]
    if not models:
        return None
    words = np.array([w for m in models for w, _ in points[m]], dtype=float)
    quality = np.array([q for m in models for _, q in points[m]], dtype=float)
    group = np.array([i for i, m in enumerate(models) for _ in points[m]])
    log_words = np.log(words + 1)
    group_means = np.array([log_words[group == g].mean() for g in range(len(models))])
    if np.allclose(log_words, group_means[group]):
        return None
    design = np.zeros((len(words), len(models) + 1))
    design[np.arange(len(words)), group] = 1.0
    design[:, -1] = log_words
    coef, *_ = np.linalg.lstsq(design, quality, rcond=None)
    common = float(np.median(log_words))
    dof = len(words) - design.shape[1]
    covariance = None
    if dof > 0:
        residual = quality - design @ coef
        sigma2 = float(residual @ residual) / dof
        covariance = sigma2 * np.linalg.pinv(design.T @ design)
    t = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) if dof > 0 else None
    estimates = {}
    for i, model in enumerate(models):
        contrast = np.zeros(design.shape[1])
        contrast[i], contrast[-1] = 1.0, common
        value = float(contrast @ coef)
        ci = None
        if covariance is not None:
            half = t * float(np.sqrt(max(contrast @ covariance @ contrast, 0.0)))
            ci = (value - half, value + half)
        estimates[model] = Estimate(value, ci, len(points[model]))
    intercepts = {m: float(coef[i]) for i, m in enumerate(models)}
    return LengthControl(float(coef[-1]), common, intercepts, estimates)

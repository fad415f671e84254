"""The statistics of the leaderboard, checked against hand computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scipy import stats

from leaderboard.stats import bootstrap_mean, fit_length_control, paired_test, signed_rank_p


def exact_percentile_interval(data: list[float]) -> tuple[float, float, np.ndarray]:
    """The percentile bootstrap by enumeration: all n**n equally likely resamples, their means and CDF."""
    means = np.array([np.mean(c) for c in itertools.product(data, repeat=len(data))])
    values, counts = np.unique(means, return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    return values[np.searchsorted(cdf, 0.025)], values[np.searchsorted(cdf, 0.975)], cdf


def test_bootstrap_interval_matches_the_enumerated_percentile_bootstrap():
    data = [3, 3, 4, 9, 20]
    low, high, cdf = exact_percentile_interval(data)
    # The 2.5% and 97.5% points sit on atoms whose CDF steps are far from the cut-offs, so 9,999 random
    # resamples land on the same atoms: (3.2, 14.4) by enumeration of the 3,125 resamples.
    assert (low, high) == (pytest.approx(3.2), pytest.approx(14.4))
    estimate = bootstrap_mean(data)
    assert estimate.value == pytest.approx(7.8)
    assert estimate.ci == (pytest.approx(low), pytest.approx(high))
    assert estimate.n == 5


def test_bootstrap_interval_of_equal_values_has_zero_width():
    assert bootstrap_mean([0.5] * 12).ci == (0.5, 0.5)


def test_bootstrap_of_one_value_is_that_value_and_of_none_is_empty():
    assert bootstrap_mean([7.0]).ci == (7.0, 7.0)
    empty = bootstrap_mean([])
    assert (empty.value, empty.ci, empty.n) == (None, None, 0)


def test_bootstrap_is_reproducible_between_calls():
    data = [12.0, 40.5, 33.1, 80.2, 5.5, 61.0, 47.3, 29.9]
    assert bootstrap_mean(data).ci == bootstrap_mean(data).ci


def test_paired_test_of_a_candidate_better_on_all_six_prompts_gives_the_exact_wilcoxon_p():
    reference = {i: float(i) for i in range(6)}
    candidate = {i: i + 0.5 * (i + 1) for i in range(6)}
    test = paired_test(reference, candidate)
    # All six signed ranks positive: the exact two-sided p-value is 2 / 2**6.
    assert test.p == pytest.approx(2 / 64)
    assert test.diff == pytest.approx(1.75)
    assert test.significant and test.n_pairs == 6


def test_paired_test_direction_follows_the_candidate():
    reference = {i: 50.0 + i for i in range(12)}
    worse = {i: 50.0 + i - 3 - 0.1 * i for i in range(12)}
    test = paired_test(reference, worse)
    assert test.diff < 0 and test.significant


def test_paired_test_of_identical_scores_is_not_significant():
    scores = {i: 1.0 for i in range(10)}
    test = paired_test(scores, dict(scores))
    assert (test.p, test.diff, test.significant) == (1.0, 0.0, False)


def test_paired_test_with_ties_and_tiny_n_does_not_crash_and_is_not_significant():
    test = paired_test({0: 1.0, 1: 0.0, 2: 0.5}, {0: 1.0, 1: 1.0, 2: 1.0})
    assert test.n_pairs == 3 and not test.significant


def test_paired_test_uses_only_shared_doc_ids_and_none_when_there_are_none():
    test = paired_test({0: 1.0, 1: 2.0, 5: 9.0}, {1: 3.0, 0: 2.0, 7: 0.0})
    assert test.n_pairs == 2 and test.diff == pytest.approx(1.0)
    assert paired_test({0: 1.0}, {1: 1.0}) is None


def test_length_control_recovers_the_known_slope_and_levels_without_noise():
    rng = np.random.default_rng(3)
    truth = {"short": 10.0, "long": 4.0}
    words = {"short": rng.integers(100, 400, 15), "long": rng.integers(1000, 4000, 15)}
    points = {m: [(float(w), truth[m] + 2.0 * np.log(w + 1)) for w in words[m]] for m in truth}
    fit = fit_length_control(points)
    common = np.median(np.log(np.concatenate(list(words.values())) + 1))
    assert fit.slope == pytest.approx(2.0)
    assert fit.common_log_words == pytest.approx(common)
    for model, intercept in truth.items():
        assert fit.estimates[model].value == pytest.approx(intercept + 2.0 * common)
        low, high = fit.estimates[model].ci
        assert high - low == pytest.approx(0.0, abs=1e-6)


def test_length_control_ranks_a_model_that_only_writes_longer_below_a_better_short_one():
    rng = np.random.default_rng(4)
    points = {
        "better-short": [(float(w), 20 + 3 * np.log(w + 1) + rng.normal(0, 1)) for w in rng.integers(150, 300, 20)],
        "verbose": [(float(w), 17 + 3 * np.log(w + 1) + rng.normal(0, 1)) for w in rng.integers(2000, 4000, 20)],
    }
    raw = {m: np.mean([q for _, q in pts]) for m, pts in points.items()}
    fit = fit_length_control(points)
    assert raw["verbose"] > raw["better-short"]
    assert fit.estimates["better-short"].value > fit.estimates["verbose"].value
    for model, true_level in (("better-short", 20), ("verbose", 17)):
        low, high = fit.estimates[model].ci
        assert low <= true_level + 3 * fit.common_log_words <= high


def test_length_adjusted_samples_average_to_the_model_estimate():
    rng = np.random.default_rng(5)
    points = {m: [(float(w), rng.normal(50, 5) + np.log(w + 1)) for w in rng.integers(100, 3000, 14)]
              for m in ("a", "b", "c")}
    fit = fit_length_control(points)
    for model, pts in points.items():
        adjusted = [fit.adjusted(q, w) for w, q in pts]
        assert np.mean(adjusted) == pytest.approx(fit.estimates[model].value)


def test_length_control_is_undefined_when_every_model_writes_one_length():
    assert fit_length_control({"a": [(100.0, 1.0), (100.0, 2.0)], "b": [(300.0, 4.0)]}) is None
    assert fit_length_control({}) is None


def test_signed_rank_p_with_ties_and_zeros_matches_scipys_exact_permutation():
    diffs = np.array([1.0, 1.0, 2.0, 0.0, -1.0, 3.0, 3.0, 2.0])
    expected = stats.wilcoxon(diffs, zero_method="zsplit", method=stats.PermutationMethod()).pvalue
    assert signed_rank_p(diffs) == pytest.approx(expected)


def test_signed_rank_p_without_ties_matches_the_exact_wilcoxon_distribution():
    diffs = np.random.default_rng(0).normal(0.5, 1, 14)
    assert signed_rank_p(diffs) == pytest.approx(stats.wilcoxon(diffs, method="exact").pvalue)


def test_signed_rank_p_beyond_the_exact_limit_uses_the_normal_approximation():
    diffs = np.concatenate([np.arange(1.0, 31.0), [-2.0, -5.0]])
    assert signed_rank_p(diffs) == pytest.approx(stats.wilcoxon(diffs, zero_method="zsplit", method="approx").pvalue)

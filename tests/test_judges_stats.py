"""Win-rate and sanity statistics against hand-worked cases and independent fits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import binom

from judges.stats import LENGTH_SLOPE_L2, bootstrap_ci, fit_length_glm, length_controlled_win_rate, sign_test_p, wilson_interval


def test_lc_win_rate_equals_the_raw_win_rate_when_lengths_never_differ():
    preferences = [1, 0, 0.5, 1, 1, 0.25]
    assert length_controlled_win_rate(preferences, [0] * 6) == pytest.approx(np.mean(preferences))


def test_lc_win_rate_equals_the_raw_win_rate_when_every_length_difference_is_equal():
    assert length_controlled_win_rate([1, 0, 1, 1], [120] * 4) == pytest.approx(0.75)


def test_lc_win_rate_matches_an_independent_fit_of_the_same_likelihood():
    preferences = np.array([1, 1, 1, 0.5, 0, 1, 0, 0, 1, 0.75])
    diffs = np.array([300, 250, 40, 0, -100, 500, -300, 20, 120, -50], dtype=float)
    x = np.tanh(diffs / diffs.std())

    def loss(theta):
        z = theta[0] + theta[1] * x
        return np.sum(np.log1p(np.exp(z)) - preferences * z) + LENGTH_SLOPE_L2 * theta[1] ** 2 / 2

    independent = minimize(loss, x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10_000}).x
    assert fit_length_glm(preferences, x) == pytest.approx(tuple(independent), abs=1e-5)
    expected = 1 / (1 + np.exp(-independent[0]))
    assert length_controlled_win_rate(preferences, diffs) == pytest.approx(expected, abs=1e-6)
    # the model wins mostly when longer, so controlling for length lowers its win rate
    assert length_controlled_win_rate(preferences, diffs) < preferences.mean()


def test_lc_win_rate_is_finite_when_length_separates_the_preferences_perfectly():
    lc = length_controlled_win_rate([1, 1, 0, 0], [100, 50, -50, -100])
    assert lc == pytest.approx(0.5, abs=1e-6)


def test_lc_win_rate_of_an_all_win_model_is_one():
    assert length_controlled_win_rate([1, 1, 1], [5, -3, 2]) == 1.0


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [1, 0, 1, 1, 0.5, 0, 1, 1]
    first, second = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    assert first == second and first[0] < np.mean(values) < first[1]
    assert bootstrap_ci([], seed=0) is None


def test_wilson_interval_matches_the_textbook_value():
    # 8 of 10: Wilson 95% interval (0.4902, 0.9433).
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_sign_test_is_the_one_sided_binomial_tail():
    assert sign_test_p(8, 2) == pytest.approx(binom.sf(7, 10, 0.5))
    assert sign_test_p(0, 0) is None

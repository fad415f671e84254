"""Agreement statistics between judge repeats, checked against hand-computed and published values."""

from __future__ import annotations

import math

import pytest

from judges import JudgeError, ReliabilityConfig, krippendorff_alpha_interval
from judges.reliability import agreement, mean_pairwise_spearman, score_spread


def test_krippendorff_alpha_matches_a_hand_computed_case():
    # Two repeats, three samples: (1, 2), (3, 3), (5, 4); n = 6 pairable values.
    # D_o = [2·1²/1 + 0 + 2·1²/1] / 6 = 2/3.
    # D_e: values 1, 2, 3, 3, 5, 4; Σ over ordered pairs of (a − b)² = 2·(6·64 − 18²) = 120; D_e = 120 / (6·5) = 4.
    # alpha = 1 − (2/3) / 4 = 5/6.
    assert krippendorff_alpha_interval([[1, 3, 5], [2, 3, 4]]) == pytest.approx(5 / 6)


def test_krippendorff_alpha_matches_the_published_example_with_missing_values():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units, interval alpha = 0.849.
    ratings = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    assert krippendorff_alpha_interval(ratings) == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_is_one_for_identical_repeats():
    assert krippendorff_alpha_interval([[10.0, 50.0, 90.0], [10.0, 50.0, 90.0]]) == 1.0


def test_krippendorff_alpha_ignores_units_with_a_single_value_and_nan():
    with_lonely_units = [[1, 3, 5, 7.0, None], [2, 3, 4, math.nan, 9]]
    assert krippendorff_alpha_interval(with_lonely_units) == pytest.approx(5 / 6)


def test_krippendorff_alpha_is_undefined_without_variation_or_pairs():
    assert krippendorff_alpha_interval([[3, 3], [3, 3]]) is None
    assert krippendorff_alpha_interval([[1, None], [None, 2]]) is None


def test_krippendorff_alpha_is_undefined_with_a_single_pairable_sample():
    assert krippendorff_alpha_interval([[45.0, None, 10.0], [55.0, 20.0, None]]) is None


def test_krippendorff_alpha_is_negative_for_systematic_disagreement():
    assert krippendorff_alpha_interval([[1, 5, 1, 5], [5, 1, 5, 1]]) < 0


def test_spearman_is_one_for_same_ranking_and_minus_one_for_reversed():
    rho, pairs = mean_pairwise_spearman([[1, 2, 3, 4], [10, 20, 30, 40], [4, 3, 2, 1]])
    assert pairs == pytest.approx([1.0, -1.0, -1.0])
    assert rho == pytest.approx(-1 / 3)


def test_spearman_skips_failed_samples_and_constant_repeats():
    rho, pairs = mean_pairwise_spearman([[1, 2, None, 4], [1, 2, 3, 4], [5, 5, 5, 5]])
    assert pairs[0] == pytest.approx(1.0)
    assert pairs[1:] == [None, None]
    assert rho == pytest.approx(1.0)


def test_score_spread_is_the_population_std_per_sample():
    assert score_spread([[0, 10, None], [50, 10, 3]]) == [25.0, 0.0, None]


def test_agreement_summarizes_alpha_spearman_and_spread():
    report = agreement([[1, 3, 5], [2, 3, 4]])
    assert report["samples_compared"] == 3
    assert report["krippendorff_alpha"] == pytest.approx(5 / 6)
    assert report["spearman"] == pytest.approx(1.0)
    assert report["mean_std"] == pytest.approx(1 / 3) and report["max_std"] == 0.5


def test_reliability_needs_at_least_two_repeats():
    with pytest.raises(JudgeError, match="repeats must be at least 2"):
        ReliabilityConfig(repeats=1)

"""The paired test's p-value is computed fast (the check and `selflengthen power` run thousands) and gives what
the slow definitions give: every sign flip listed (exact) and scipy's normal approximation (many pairs)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from leaderboard.stats import EXACT_MAX_N, signed_rank_p


def tied_differences(rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    """Small whole or half differences, so ties and zeros are common."""
    return rng.integers(-3, 4, size=rng.integers(low, high)).astype(float) * rng.choice([1.0, 0.5, 3.3])


@pytest.mark.parametrize("zero_method", ["zsplit", "pratt"])
def test_the_counted_exact_p_equals_listing_every_sign_flip(zero_method):
    """Zero differences' ranks split between the signs (zsplit) or given to neither (pratt)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        diffs = tied_differences(rng, 1, 13)
        if not diffs.any():
            continue
        ranks = stats.rankdata(np.abs(diffs))
        nonzero = diffs != 0
        zero_share = ranks[~nonzero].sum() / 2 if zero_method == "zsplit" else 0.0
        center, observed = ranks[nonzero].sum() / 2 + zero_share, ranks[diffs > 0].sum() + zero_share
        signs = (np.arange(2 ** nonzero.sum())[:, None] >> np.arange(nonzero.sum())) & 1
        listed = np.mean(np.abs(signs @ ranks[nonzero] + zero_share - center) >= abs(observed - center) - 1e-9)
        assert signed_rank_p(diffs, zero_method) == pytest.approx(listed, abs=1e-12)


def test_the_written_out_normal_approximation_equals_scipys():
    rng = np.random.default_rng(1)
    for _ in range(200):
        diffs = tied_differences(rng, EXACT_MAX_N + 1, 90) if rng.random() < 0.7 else rng.normal(size=40)
        if (diffs != 0).sum() <= EXACT_MAX_N:
            continue
        expected = stats.wilcoxon(diffs, zero_method="zsplit", method="approx").pvalue
        assert signed_rank_p(diffs) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_the_gates_p_equals_scipys_default_wilcoxon_with_pratts_zeros():
    """The gate's p is scipy.stats.wilcoxon(zero_method="pratt")'s at its default method: exact up to 13 pairs (a
    permutation test when there are ties or zeros), exact up to 50 without either, else the normal approximation."""
    rng = np.random.default_rng(2)
    checked = 0
    for _ in range(120):
        small = rng.random() < 0.1  # scipy's own exact path with ties takes 0.2 s: a few suffice
        diffs = tied_differences(rng, 1, 14) if small else (tied_differences(rng, 14, 70) if rng.random() < 0.7
                                                            else rng.normal(size=rng.integers(14, 60)))
        if not diffs.any():
            continue
        expected = stats.wilcoxon(diffs, zero_method="pratt").pvalue
        assert signed_rank_p(diffs, "pratt", "scipy_auto") == pytest.approx(expected, rel=1e-9, abs=1e-12)
        checked += 1
    assert checked > 100


def test_an_unknown_zero_method_or_exactness_is_refused():
    with pytest.raises(ValueError, match="zero_method"):
        signed_rank_p(np.array([1.0, -2.0]), "wilcox")
    with pytest.raises(ValueError, match="method"):
        signed_rank_p(np.array([1.0, -2.0]), "pratt", "exact")

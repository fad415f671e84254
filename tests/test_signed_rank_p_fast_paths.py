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


def test_the_counted_exact_p_equals_listing_every_sign_flip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        diffs = tied_differences(rng, 1, 13)
        if not diffs.any():
            continue
        ranks = stats.rankdata(np.abs(diffs))
        nonzero = diffs != 0
        zero_share, center = ranks[~nonzero].sum() / 2, ranks.sum() / 2
        observed = ranks[diffs > 0].sum() + zero_share
        signs = (np.arange(2 ** nonzero.sum())[:, None] >> np.arange(nonzero.sum())) & 1
        listed = np.mean(np.abs(signs @ ranks[nonzero] + zero_share - center) >= abs(observed - center) - 1e-9)
        assert signed_rank_p(diffs) == pytest.approx(listed, abs=1e-12)


def test_the_written_out_normal_approximation_equals_scipys():
    rng = np.random.default_rng(1)
    for _ in range(200):
        diffs = tied_differences(rng, EXACT_MAX_N + 1, 90) if rng.random() < 0.7 else rng.normal(size=40)
        if (diffs != 0).sum() <= EXACT_MAX_N:
            continue
        expected = stats.wilcoxon(diffs, zero_method="zsplit", method="approx").pvalue
        assert signed_rank_p(diffs) == pytest.approx(expected, rel=1e-12, abs=1e-15)

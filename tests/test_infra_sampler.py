"""The in-process engine's per-row token choice."""

from __future__ import annotations

import torch
from scipy.stats import chisquare

from infra.sampler import TokenSampler
from infra.sampling import SamplingConfig

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
NO_SEEN = torch.tensor([], dtype=torch.long)


def frequencies(sampling: SamplingConfig, draws: int = 4000) -> torch.Tensor:
    sampler = TokenSampler(tokenizer=None, default_top_k=LOGITS.numel())
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(LOGITS.numel())
    for _ in range(draws):
        counts[sampler.choose(LOGITS, sampling, NO_SEEN, generator).token] += 1
    return counts


def test_sampling_that_cuts_nothing_draws_from_the_whole_tempered_distribution():
    counts = frequencies(SamplingConfig(temperature=0.7, top_p=1.0))  # top_k unset: the whole vocabulary
    expected = (LOGITS / 0.7).softmax(-1) * counts.sum()
    assert chisquare(counts.numpy(), expected.numpy()).pvalue > 0.001


def test_top_k_and_top_p_draw_only_from_what_they_keep():
    counts = frequencies(SamplingConfig(temperature=1.0, top_k=3, top_p=0.7), draws=1000)
    kept = LOGITS[:3].softmax(-1)  # top-3, then top-p 0.7 keeps the first two (0.63 < 0.7 <= 0.86)
    assert counts[2:].sum() == 0 and counts[:2].sum() == 1000
    expected = kept[:2] / kept[:2].sum() * 1000
    assert chisquare(counts[:2].numpy(), expected.numpy()).pvalue > 0.001

"""The in-process engine's per-row token choice."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from infra.sampler import TokenSampler, draw
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


def verified_frequencies(sampling: SamplingConfig, draft: int, draws: int = 4000) -> tuple[torch.Tensor, int]:
    """Token counts over `draws` seeded verifications of `draft`, and how often the draft was kept."""
    sampler = TokenSampler(tokenizer=None, default_top_k=LOGITS.numel())
    generator = torch.Generator().manual_seed(1)
    counts, kept = torch.zeros(LOGITS.numel()), 0
    for _ in range(draws):
        choice, accepted = sampler.verify(LOGITS, sampling, NO_SEEN, generator, draft)
        counts[choice.token] += 1
        kept += accepted
    return counts, kept


@pytest.mark.parametrize("draft", [0, 1, 2])
def test_a_verified_draft_leaves_the_sampled_distribution_unchanged(draft):
    """Speculative sampling is exact: keeping the draft with its probability, else drawing from the rest
    renormalised, gives the target's frequencies whichever token was drafted."""
    sampling = SamplingConfig(temperature=0.7)
    counts, kept = verified_frequencies(sampling, draft)
    target = (LOGITS / 0.7).softmax(-1)
    assert 0 < kept < 4000 and abs(kept / 4000 - float(target[draft])) < 0.03
    assert chisquare(counts.numpy(), (target * 4000).numpy()).pvalue > 0.001
    # The classic mistake, redrawing from the whole target after a rejection, is what the test must catch.
    draft_again = target * (1 - target[draft]) + target[draft] * torch.nn.functional.one_hot(
        torch.tensor(draft), LOGITS.numel())
    assert chisquare(counts.numpy(), (draft_again * 4000).numpy()).pvalue < 0.001


def test_a_draft_that_top_k_cuts_is_never_kept():
    counts, kept = verified_frequencies(SamplingConfig(temperature=1.0, top_k=2), draft=3, draws=500)
    assert kept == 0 and counts[2:].sum() == 0


def test_a_greedy_row_keeps_the_draft_exactly_when_it_is_the_argmax():
    sampler = TokenSampler(tokenizer=None, default_top_k=LOGITS.numel())
    assert sampler.verify(LOGITS, SamplingConfig(), NO_SEEN, None, 0) == (sampler.choose(LOGITS, SamplingConfig(), NO_SEEN, None), True)
    choice, kept = sampler.verify(LOGITS, SamplingConfig(), NO_SEEN, None, 1)
    assert (choice.token, kept) == (0, False)


def test_draw_never_picks_a_token_without_weight():
    generator = torch.Generator().manual_seed(0)
    weights = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0])
    assert {draw(weights, generator) for _ in range(2000)} == {1, 3}
    assert {draw(weights, generator, first=0) for _ in range(2000)} == {1, 3}  # a draft without weight
    assert {draw(weights, generator, first=3) for _ in range(2000)} == {1, 3}

"""How the in-process engine picks a row's next token from its logits, one row at a time.

Per row, so that nothing a row computes depends on its neighbours (batch invariance, see
`infra.decoder`): a batched top-k over the widest row's k, or a softmax over a padded width, sums
in an order that depends on who else is in the step. The order is transformers' logits processors:
repetition penalty, then the JSON schema's mask, then temperature, top-k and top-p; a seeded row
draws from its own `torch.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from infra.backend import TokenLogprob
from infra.sampling import SamplingConfig


def warp_top_k_top_p(scores, temperature, top_k: list[int], top_p):
    """Per-row temperature, top-k and top-p over each row's k best tokens: (values, token ids).

    `scores` is [rows, vocab]; `temperature` and `top_p` are [rows] tensors, `top_k` one int per row.
    Keeps the same tokens as transformers' Temperature -> TopK -> TopP warpers (up to ties at the k-th
    score), but sorts only max(top_k) candidates instead of the whole vocabulary: with SmolLM2's
    49k-token vocabulary that is about 3 ms instead of about 50 ms per 16 rows on one core.
    Dropped candidates get -inf.
    """
    widest = min(max(top_k), scores.size(-1))
    values, indices = scores.topk(widest, dim=-1)  # sorted, best first
    values = values / temperature.unsqueeze(-1)
    rank = torch.arange(widest, device=scores.device).unsqueeze(0)
    values = values.masked_fill(rank >= torch.tensor(top_k, device=scores.device).unsqueeze(-1), -float("inf"))
    probs = values.softmax(dim=-1)
    drop = (probs.cumsum(dim=-1) - probs) >= top_p.unsqueeze(-1)
    drop[..., 0] = False
    return values.masked_fill(drop, -float("inf")), indices


def penalize_repeats(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' repetition penalty on one row: the `seen` token ids' positive logits divided by
    `penalty`, negative ones multiplied. Touches only the seen tokens, not the whole vocabulary."""
    picked = scores[seen]
    scores = scores.clone()
    scores[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return scores


@dataclass
class Choice:
    """A row's next token and, when asked for, its log-probability entry."""

    token: int
    logprob: TokenLogprob | None = None


class TokenSampler:
    """Chooses next tokens for rows of a given tokenizer; `default_top_k` and `default_repetition_penalty`
    (the model's generation_config, `infra.sampling.model_sampling_defaults`) apply where a request sets none."""

    def __init__(self, tokenizer, default_top_k: int, default_repetition_penalty: float | None = None) -> None:
        self.tokenizer = tokenizer
        self.default_top_k = default_top_k
        self.default_repetition_penalty = default_repetition_penalty

    def choose(self, logits: torch.Tensor, sampling: SamplingConfig, seen: torch.Tensor,
               generator: torch.Generator | None) -> Choice:
        """The next token for one row from its float32 `logits` [vocab] (a JSON schema's mask already
        applied: -inf stays -inf under the penalty); `seen` holds the token ids the repetition penalty
        applies to."""
        return self.verify(logits, sampling, seen, generator, None)[0]

    def verify(self, logits: torch.Tensor, sampling: SamplingConfig, seen: torch.Tensor,
               generator: torch.Generator | None, draft: int | None) -> tuple[Choice, bool]:
        """The row's token at one position where `draft` is the drafter's guess, and whether it is the draft.

        Speculative sampling with a one-hot draft (Leviathan et al. 2023; vLLM's rejection sampler): the
        draft is kept with the target's probability of it, otherwise the token is drawn from the target
        with the draft removed and renormalised, so the token has exactly the target's distribution. Both
        come from one uniform per position (`draw` with the draft first), which is why a seeded row writes
        the same text whether a position's guess was verified as a draft or only ordered its draw.
        Greedy rows keep the draft if it is the argmax.
        """
        scores = logits
        penalty = sampling.repetition_penalty
        if penalty is None:
            penalty = self.default_repetition_penalty
        if penalty not in (None, 1.0):
            scores = penalize_repeats(scores, seen, penalty)
        if not sampling.do_sample:
            token = int(scores.argmax())
            return Choice(token, self._logprob(token, sampling, scores.log_softmax(-1), None)), token == draft
        top_k = min(sampling.top_k or self.default_top_k, scores.numel())
        if top_k == scores.numel() and sampling.top_p >= 1.0:  # nothing is cut: no sort of the vocabulary
            values, candidates = scores / float(sampling.temperature), None
        else:
            values, candidates = warp_top_k_top_p(
                scores.unsqueeze(0), torch.tensor([float(sampling.temperature)], device=scores.device), [top_k],
                torch.tensor([float(sampling.top_p)], device=scores.device))
            values, candidates = values[0], candidates[0]
        slot = None if draft is None else draft if candidates is None else _slot_of(candidates, draft)
        pick = draw(values.softmax(-1), generator, first=slot)
        token = pick if candidates is None else int(candidates[pick])
        return Choice(token, self._logprob(token, sampling, values.log_softmax(-1), candidates)), pick == slot

    def _logprob(self, token: int, sampling: SamplingConfig, logprobs, token_ids) -> TokenLogprob | None:
        """`token`'s log-probability and the `top_logprobs` best finite alternatives, from a distribution
        over the vocabulary (`token_ids` None) or over candidate `token_ids`. Alternatives that decode to
        the same text (byte pieces of one character) share an entry holding their summed probability."""
        top_n = sampling.top_logprobs
        if top_n is None:
            return None
        best = logprobs.topk(min(top_n, logprobs.numel()))
        if token_ids is None:
            chosen = float(logprobs[token])
            best_ids = best.indices.tolist()
        else:
            chosen = float(logprobs[(token_ids == token).nonzero()[0, 0]])
            best_ids = token_ids[best.indices].tolist()
        top: dict[str, float] = {}
        for token_id, value in zip(best_ids, best.values.tolist()):
            if value == -math.inf:
                break
            text = self.tokenizer.decode([token_id])
            top[text] = _log_add(top[text], value) if text in top else value
        return TokenLogprob(self.tokenizer.decode([token]), chosen, top)


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def draw(weights: torch.Tensor, generator: torch.Generator | None, first: int | None = None) -> int:
    """An index drawn with probability proportional to `weights` (non-negative, not all zero), by inverting
    the cumulative sum at one uniform draw, with index `first` (if given) placed before the others.

    Exact like `torch.multinomial`, and about 30x faster over a 49k-token vocabulary on a CPU (2.5 ms ->
    0.08 ms), where it had been a tenth of a decode step. With `first`: the draw is `first` with its
    probability, else one of the others with theirs renormalised (a speculative draft's verification).
    """
    cumulative = weights.double().cumsum(0)
    point = torch.rand(1, generator=generator, dtype=torch.float64, device=weights.device) * cumulative[-1]
    if first is not None:
        head = weights[first].double()
        if bool(point < head):
            return first
        point = point - head
        cumulative[first:] -= head  # the others' cumulative sum, `first` left out
    index = int(torch.searchsorted(cumulative, point, right=True)[0])
    if index == weights.numel():  # `point` rounded up to the total: the last token that has weight
        index = int(weights.nonzero()[-1, 0]) if first is None else _last_other(weights, first)
    return index


def _last_other(weights: torch.Tensor, first: int) -> int:
    """The last index other than `first` that has weight (`first` itself when nothing else has any)."""
    others = weights.clone()
    others[first] = 0
    held = others.nonzero()
    return int(held[-1, 0]) if held.numel() else first


def _slot_of(candidates: torch.Tensor, token: int) -> int | None:
    """Where `token` stands among a row's candidates, or None if top-k/top-p dropped it (probability 0)."""
    where = (candidates == token).nonzero()
    return int(where[0, 0]) if where.numel() else None

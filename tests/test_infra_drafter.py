"""n-gram drafts for speculative decoding: what followed the latest earlier occurrence of a row's last words."""

from __future__ import annotations

from infra.drafter import NgramDrafter


def test_a_draft_is_what_followed_the_latest_earlier_occurrence_of_the_longest_matching_suffix():
    drafter = NgramDrafter([1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 5, 2, 3], longest=3, shortest=1)
    # suffix (5, 2, 3) never occurred before; (2, 3) last ended at index 8, followed by 7; then (2, 3, 7)
    # ended at index 9 (followed by 8), and (3, 7, 8) at index 10 (followed by 5)
    assert drafter.propose(3) == [7, 8, 5]
    assert drafter.propose(1) == [7]


def test_a_longer_match_wins_over_a_later_shorter_one():
    drafter = NgramDrafter([4, 2, 3, 6, 0, 3, 5, 4, 2, 3], longest=3, shortest=1)
    assert drafter.propose(2) == [6, 0]  # (4, 2, 3) matches; the later (3,) alone would give [5, 4]


def test_no_match_no_draft_and_the_shortest_suffix_is_respected():
    assert NgramDrafter([1, 2, 3, 4], longest=3, shortest=1).propose(4) == []
    assert NgramDrafter([5, 1, 6, 1], longest=3, shortest=2).propose(4) == []  # only (1,) repeats
    assert NgramDrafter([5, 1, 6, 1], longest=3, shortest=1).propose(4) == [6, 1, 6, 1]


def test_a_loop_predicts_itself_for_as_many_tokens_as_asked():
    drafter = NgramDrafter([7, 8, 7, 8], longest=2, shortest=1)
    assert drafter.propose(5) == [7, 8, 7, 8, 7]  # each draft extends the loop the next one is read from
    drafter.extend([7, 8, 7])
    assert drafter.propose(3) == [8, 7, 8]
    assert drafter.context == [7, 8, 7, 8, 7, 8, 7]  # drafting leaves the context as it was


def test_each_draft_is_what_one_token_drafts_give_once_the_drafts_before_it_are_written():
    """A position's draft depends on the text before it only, not on how many tokens a step drafts."""
    tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5]
    for end in range(3, len(tokens)):
        drafter = NgramDrafter(tokens[:end], longest=3, shortest=1)
        drafts = drafter.propose(6)
        for position, token in enumerate(drafts):
            written = NgramDrafter(tokens[:end] + drafts[:position], longest=3, shortest=1)
            assert written.propose(1) == [token], (end, position)
        if len(drafts) < 6:  # the chain stopped where one-token drafting finds nothing either
            assert NgramDrafter(tokens[:end] + drafts, longest=3, shortest=1).propose(1) == []


def test_growing_the_context_step_by_step_drafts_as_building_it_at_once():
    tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5]
    grown = NgramDrafter(tokens[:5], longest=3, shortest=1)
    for end in range(5, len(tokens) + 1):
        assert grown.propose(4) == NgramDrafter(tokens[:end], longest=3, shortest=1).propose(4)
        if end < len(tokens):
            grown.extend([tokens[end]])

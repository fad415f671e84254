"""The method's steps under broken backends (fault injection), and their small pure parts."""

import asyncio
from collections import Counter

import pytest

from harness.config import from_dict
from selflengthen.config import SelfInstructConfig, SelfLengthenConfig
from selflengthen.extender import extend_request, extend_response
from selflengthen.generator import generate_initial
from infra.journal import Journal
from infra.limiter import PriorityLimiter
from infra.recorded_model import RecordedModel, RequestStats
from infra.rng import item_rng
from selflengthen.self_instruct import (
    InstructionPool,
    first_paragraph,
    is_yes,
    load_seed_instructions,
    self_instruct,
    suitability_schema,
)
from tests.fakes import ScriptedBackend

CONFIG = from_dict(
    SelfLengthenConfig,
    {
        "self_instruct": {"max_attempts": 3},
        "generator": {"max_attempts": 4},
        "extender": {"max_attempts": 2, "rounds": 3},
    },
)
POOL = ["Write a long essay about rivers.", "Write a long story about a lighthouse keeper."]


def recorded(backend, tmp_path, limit: int = 4) -> RecordedModel:
    return RecordedModel(backend, Journal(tmp_path / "requests.jsonl"), PriorityLimiter(limit), RequestStats())


def test_a_finished_request_is_replayed_from_the_ledger_not_sent_again(tmp_path):
    backend = ScriptedBackend("garbage ###")
    first = recorded(backend, tmp_path)
    assert asyncio.run(first.chat("k/0", [], CONFIG.sampling)) == "garbage ###"
    first.ledger.close()
    again = recorded(backend, tmp_path)
    assert asyncio.run(again.chat("k/0", [], CONFIG.sampling)) == "garbage ###"
    assert backend.calls == 1 and again.stats.replayed == 1 and again.stats.sent == 0


def test_a_backend_exception_is_counted_and_not_journaled(tmp_path):
    model = recorded(ScriptedBackend(ConnectionError("refused")), tmp_path)
    assert asyncio.run(model.complete("k/0", "prompt", CONFIG.sampling)) is None
    assert model.stats.errors == 1 and "k/0" not in model.ledger


def test_a_reply_without_text_counts_as_empty(tmp_path):
    model = recorded(ScriptedBackend(None), tmp_path)
    assert asyncio.run(model.chat("k/0", [], CONFIG.sampling)) == ""
    assert model.stats.empty == 1


def test_requests_in_flight_never_exceed_the_cap(tmp_path):
    backend = ScriptedBackend("x", delay=0.01)
    model = recorded(backend, tmp_path, limit=3)

    async def many():
        await asyncio.gather(*(model.chat(f"k/{i}", [], CONFIG.sampling) for i in range(12)))

    asyncio.run(many())
    assert backend.most_in_flight == 3


def test_generate_initial_gives_up_after_max_attempts_on_garbage(tmp_path):
    backend, tally = ScriptedBackend("@@ ## !! $$ no end"), Counter()
    assert asyncio.run(generate_initial(recorded(backend, tmp_path), "Write.", "en", "gen/x", CONFIG, tally)) is None
    assert backend.calls == 4 and tally == {"generate.no_terminal_punctuation": 4}


def test_generate_initial_survives_a_backend_that_raises(tmp_path):
    backend, tally = ScriptedBackend(TimeoutError("slow")), Counter()
    assert asyncio.run(generate_initial(recorded(backend, tmp_path), "Write.", "en", "gen/x", CONFIG, tally)) is None
    assert tally == {"generate.error": 4}


def test_self_instruct_gives_up_on_empty_completions_without_asking_the_judge(tmp_path):
    backend, tally = ScriptedBackend(""), Counter()
    assert asyncio.run(self_instruct(recorded(backend, tmp_path), InstructionPool(POOL), "si/en/0", "en", CONFIG, tally)) is None
    assert backend.calls == 3 and tally == {"self_instruct.length": 3}


def test_self_instruct_never_accepts_what_the_judge_did_not_approve(tmp_path):
    backend, tally = ScriptedBackend("Describe at length the life of bees in winter."), Counter()
    assert asyncio.run(self_instruct(recorded(backend, tmp_path), InstructionPool(POOL), "si/en/0", "en", CONFIG, tally)) is None
    assert backend.calls == 6 and tally == {"self_instruct.unsuitable": 3}


def test_self_instruct_counts_a_failed_write_request_as_an_error_not_as_a_wrong_length(tmp_path):
    backend, tally = ScriptedBackend(ConnectionError("refused")), Counter()
    assert asyncio.run(self_instruct(recorded(backend, tmp_path), InstructionPool(POOL), "si/en/0", "en", CONFIG, tally)) is None
    assert backend.calls == 3 and tally == {"self_instruct.error": 3}


def test_self_instruct_counts_a_failed_suitability_question_as_an_error_not_as_unsuitable(tmp_path):
    instruction = "Describe at length the life of bees in winter."
    backend = ScriptedBackend(script=lambda text, sampling, n: (TimeoutError("slow") if "Would the following" in text
                                                                else instruction))
    tally = Counter()
    assert asyncio.run(self_instruct(recorded(backend, tmp_path), InstructionPool(POOL), "si/en/0", "en", CONFIG, tally)) is None
    assert backend.calls == 6 and tally == {"self_instruct.judge.error": 3}


CONSTRAINED = from_dict(SelfLengthenConfig, {"self_instruct": {"max_attempts": 3, "constrained_judge": True}})


def test_a_constrained_judge_holds_the_reply_to_yes_or_no_and_accepts_its_quoted_yes(tmp_path):
    """The schema makes the reply a JSON string; its quotes are punctuation, so '"yes"' accepts."""
    instruction = "Describe at length the life of bees in winter."
    backend = ScriptedBackend(features={"json_schema"},
                              script=lambda text, sampling, n: '"yes"' if "Would the following" in text else instruction)
    tally = Counter()
    got = asyncio.run(self_instruct(recorded(backend, tmp_path), InstructionPool(POOL), "si/en/0", "en", CONSTRAINED,
                                    tally))
    assert got == instruction and tally == {}
    write, judge = backend.sent
    assert write.sampling.json_schema is None
    assert judge.sampling.json_schema == {"type": "string", "enum": ["yes", "no"]}


def test_an_unconstrained_judge_sends_no_schema():
    assert suitability_schema(CONFIG.self_instruct, "en") is None
    assert suitability_schema(CONSTRAINED.self_instruct, "zh") == {"type": "string",
                                                                    "enum": ["是", "是的", "否", "不是"]}


def test_a_constrained_judge_without_a_no_answer_for_a_language_is_refused():
    with pytest.raises(ValueError, match="^self_instruct.constrained_judge needs yes_answers.en and no_answers.en"):
        SelfLengthenConfig(self_instruct=SelfInstructConfig(constrained_judge=True, no_answers={"en": []}))
    only_zh = SelfInstructConfig(constrained_judge=True, yes_answers={"zh": ["是"]},
                                 no_answers={"en": [], "zh": ["否"]})
    assert SelfLengthenConfig(languages=["zh"], self_instruct=only_zh).self_instruct.constrained_judge


def test_the_in_process_engine_answers_a_constrained_suitability_question_with_yes_or_no_only(tiny_model_dir):
    """The real engine under the schema: every sampled reply, even from random weights, is a yes or a no."""
    from infra.inprocess import InProcessBackend, InProcessConfig
    from infra.sampling import SamplingConfig
    from selflengthen.prompts import render_prompt

    question = [{"role": "user", "content": render_prompt("judge_instruction", "en", instruction=POOL[0])}]
    sampling = SamplingConfig(temperature=1.0, max_tokens=CONSTRAINED.self_instruct.judge_max_tokens,
                              json_schema=suitability_schema(CONSTRAINED.self_instruct, "en"))

    async def twelve(backend):
        return await asyncio.gather(*(backend.chat(question, sampling) for _ in range(12)))

    with InProcessBackend(InProcessConfig(tiny_model_dir, torch_threads=1)) as backend:
        replies = asyncio.run(twelve(backend))
    assert {r.text for r in replies} <= {'"yes"', '"no"'}
    assert {r.finish_reason for r in replies} == {"stop"}


def test_two_slots_writing_the_same_instruction_at_once_keep_it_once(tmp_path):
    instruction = "Describe at length the life of bees in winter."
    backend = ScriptedBackend(script=lambda text, sampling, n: "Yes." if "Would the following" in text else instruction)
    model, pool, tally = recorded(backend, tmp_path), InstructionPool(POOL), Counter()

    async def two_slots():
        return await asyncio.gather(*(self_instruct(model, pool, f"si/en/{i}", "en", CONFIG, tally) for i in range(2)))

    assert sorted(asyncio.run(two_slots()), key=str) == [instruction, None]
    assert pool.instructions == [*POOL, instruction] and tally == {"self_instruct.duplicate": 3}


@pytest.mark.parametrize("reply", ["", None, "no end ###"])
def test_extend_response_returns_none_for_unusable_replies(tmp_path, reply):
    backend, tally = ScriptedBackend(reply), Counter()
    model = recorded(backend, tmp_path)
    result = asyncio.run(extend_response(model, "Write.", "One.\n\nTwo.\n\nThree.", "en", "ext/x", CONFIG, tally))
    assert result is None and tally["extend.too_little_growth"] == 2


def test_extend_response_counts_a_backend_that_raises_as_errors_not_as_missing_enrichments(tmp_path):
    backend, tally = ScriptedBackend(RuntimeError("boom")), Counter()
    result = asyncio.run(extend_response(recorded(backend, tmp_path), "Write.", "One.", "en", "ext/x", CONFIG, tally))
    assert result is None and tally["extend.error"] == 6 and "extend.no_enrichment" not in tally


def test_extender_enriches_the_first_half_then_continues_after_the_whole_answers_request(tmp_path):
    answer = "One.\n\nTwo.\n\nThree.\n\nFour."
    backend = ScriptedBackend("A.\n\nB.\n\nC.")  # the same three paragraphs for every request
    model = recorded(backend, tmp_path)
    asyncio.run(extend_response(model, "Write.", answer, "en", "ext/x", CONFIG, Counter()))
    enrich, continuation = backend.sent[:2]
    assert enrich.kind == "chat" and enrich.prompt == extend_request("Write.", "One.\n\nTwo.", "en")
    assert (
        continuation.kind == "complete"
        and continuation.prompt == backend.apply_chat_template(extend_request("Write.", answer, "en")) + "A.\n\nB."
    )


def test_each_extension_round_starts_from_the_best_answer_so_far(tmp_path):
    backend = ScriptedBackend("A.\n\nB.\n\nC.")
    asyncio.run(extend_response(recorded(backend, tmp_path), "Write.", "One.", "en", "ext/x", CONFIG, Counter()))
    # Round 1 grows "One." into "A.\n\nB.A.\n\nB.\n\nC."; round 2 asks to extend that.
    second_enrich = backend.sent[2].text
    assert "A.\n\nB.A." in second_enrich and "One." not in second_enrich


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_extend_request_holds_the_instruction_and_the_answer(lang):
    [message] = extend_request("INSTRUCTION-TEXT", "ANSWER-TEXT", lang)
    assert message["role"] == "user"
    assert message["content"].index("INSTRUCTION-TEXT") < message["content"].index("ANSWER-TEXT")


def test_is_yes_ignores_case_spaces_and_punctuation():
    assert is_yes(" Yes.\n", ["yes"]) and is_yes("是。", ["是"]) and not is_yes("Yes, but", ["yes"])


def test_is_yes_reads_the_configured_answers_as_it_reads_the_reply():
    """A yes answer written "Yes." or "是的！" matches the replies "yes" and "是的", as its help text says."""
    assert is_yes("yes", ["Yes."]) and is_yes("是的", ["是的！"]) and not is_yes("no", ["Yes."])


def test_first_paragraph_stops_at_the_first_blank_line():
    assert first_paragraph(" Write a saga of a family.\n\nInstruction 4: more") == "Write a saga of a family."


def test_item_rng_depends_only_on_seed_and_key():
    assert item_rng(1, "a").random() == item_rng(1, "a").random() != item_rng(1, "b").random()


def test_seed_file_needs_two_instructions(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"prompt": "Only one."}\n')
    with pytest.raises(ValueError, match="at least 2"):
        load_seed_instructions(path)


def test_seed_file_line_without_prompt_is_named(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"prompt": "One."}\n{"text": "Two."}\n')
    with pytest.raises(ValueError, match="seeds.jsonl line 2: expected a non-empty string field 'prompt'"):
        load_seed_instructions(path)


def test_shipped_seed_files_load(data_dir):
    for lang in ("en", "zh"):
        assert len(load_seed_instructions(data_dir / f"seed_instructions_{lang}.jsonl")) >= 2


def test_extender_keeps_two_thirds_of_a_rewrite_whose_paragraphs_are_single_lines(tmp_path):
    backend, tally = ScriptedBackend("A.\nB.\nC."), Counter()
    model = recorded(backend, tmp_path)
    asyncio.run(extend_response(model, "Write.", "One.\n\nTwo.\n\nThree.", "en", "ext/x", CONFIG, tally))
    continuation = backend.sent[1]
    assert continuation.prompt.endswith("A.\nB.") and "extend.enrichment_discarded" not in tally


def test_extender_counts_a_one_paragraph_rewrite_whose_enrichment_is_discarded(tmp_path):
    backend, tally = ScriptedBackend("One long enriched paragraph."), Counter()
    model = recorded(backend, tmp_path)
    asyncio.run(extend_response(model, "Write.", "One.\n\nTwo.\n\nThree.", "en", "ext/x", CONFIG, tally))
    assert tally["extend.enrichment_discarded"] == 6

"""Schema-constrained self-curation ratings and AgentWrite plans (issue #38 item 1): the schema is sent where the
backend takes one, the constrained reply is read (a cut-off one too), and a backend without schemas gets the
free-text request, counted as without the flag."""

from __future__ import annotations

import json

import pytest

from harness.config import from_dict
from harness.errors import UserError
from selflengthen.baselines import BacktranslationConfig
from selflengthen.baselines.constrained import plan_schema, rating_schema, read_plan, read_rating
from selflengthen.baselines.parsing import PlanSection
from tests.fakes import ScriptedBackend, kind_of, replies_by_kind
from tests.test_baselines_steps import (INSTRUCTION, PLAN, PROMPT_KINDS, backtranslation_config, imitation_config,
                                        paragraphs, run_backtranslation, run_imitation, section_reply, write_corpus,
                                        write_instructions)

RATED = json.dumps({"rating": 5, "reason": "It is what the request asks for."})
PLANNED = json.dumps({"sections": [{"text": "Origins", "words": 30}, {"text": "Today", "words": 20}]})


def schema_teacher(**replies) -> ScriptedBackend:
    return ScriptedBackend(script=replies_by_kind(PROMPT_KINDS, replies), features={"json_schema"})


def schemas_sent(backend: ScriptedBackend, kind: str) -> list[dict | None]:
    return [r.sampling.json_schema for r in backend.sent if kind_of(r.text, PROMPT_KINDS) == kind]


def test_a_constrained_rating_is_read_from_its_json():
    assert read_rating(RATED, 5) == 5


def test_a_constrained_rating_cut_off_in_its_reason_still_gives_the_number_it_began_with():
    assert read_rating('{"rating": 2, "reason": "The text is about tax', 5) == 2


def test_a_constrained_rating_off_the_scale_is_no_rating():
    assert read_rating('{"rating": 7, "reason": "x"}', 5) is None


def test_a_constrained_plan_numbers_its_sections_in_order():
    assert read_plan(PLANNED, None) == [PlanSection(1, "Origins", 30), PlanSection(2, "Today", 20)]


def test_a_constrained_plan_cut_off_keeps_its_complete_sections():
    cut = '{"sections": [{"text": "Origins", "words": 30}, {"text": "Today", "words": 20}, {"text": "Tomor'
    assert read_plan(cut, None) == [PlanSection(1, "Origins", 30), PlanSection(2, "Today", 20)]


def test_a_plan_reply_without_json_sections_is_read_by_the_free_parser():
    assert [s.words for s in read_plan(PLAN, None)] == [30, 20]


def test_the_schemas_hold_the_scale_and_the_section_counts():
    assert rating_schema(7)["properties"]["rating"] == {"type": "integer", "minimum": 1, "maximum": 7}
    sections = plan_schema(2, 9)["properties"]["sections"]
    assert (sections["minItems"], sections["maxItems"]) == (2, 9)


def test_a_constrained_rating_is_sent_with_its_schema_and_keeps_the_pair(tmp_path):
    backend = schema_teacher(instruction=INSTRUCTION, rating=RATED)
    config = backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)]), constrained_rating=True)
    result = run_backtranslation(backend, config, tmp_path / "bt")
    assert schemas_sent(backend, "rating") == [rating_schema(5)] and schemas_sent(backend, "instruction") == [None]
    assert result.outcomes == {"kept": 1}


def test_without_schema_support_the_rating_is_asked_and_counted_as_free_text(tmp_path):
    backend = ScriptedBackend(script=replies_by_kind(PROMPT_KINDS, {"instruction": INSTRUCTION,
                                                                    "rating": ["Great text!", "Score: 4"]}))
    config = backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)]), constrained_rating=True)
    result = run_backtranslation(backend, config, tmp_path / "bt")
    assert schemas_sent(backend, "rating") == [None, None]
    assert result.outcomes == {"kept": 1} and result.rejections == {"rating.unparsed": 1}


def test_a_constrained_plan_is_sent_with_its_schema_and_its_sections_written(tmp_path):
    backend = schema_teacher(plan=PLANNED, section=section_reply)
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"), max_instructions=1, constrained_plan=True)
    result = run_imitation(backend, config, tmp_path / "im")
    assert schemas_sent(backend, "plan") == [plan_schema(2, 30)] and set(schemas_sent(backend, "section")) == {None}
    assert result.samples == 1


def test_without_schema_support_the_plan_is_asked_and_counted_as_free_text(tmp_path):
    backend = ScriptedBackend(script=replies_by_kind(PROMPT_KINDS, {"plan": "I will write it all at once.",
                                                                    "section": section_reply}))
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"), max_instructions=1, constrained_plan=True)
    result = run_imitation(backend, config, tmp_path / "im")
    assert schemas_sent(backend, "plan") == [None, None]
    assert result.outcomes == {"no_plan": 1} and result.rejections == {"plan.unparsed": 2}


def test_a_constrained_rating_without_curation_is_refused_by_name():
    with pytest.raises(UserError, match="constrained_rating needs min_rating"):
        from_dict(BacktranslationConfig, {"corpus": "c.jsonl", "min_rating": None, "constrained_rating": True})


@pytest.mark.parametrize(("schema", "reply"), [
    (rating_schema(5), RATED),
    (plan_schema(2, 30), PLANNED),
])
def test_the_in_process_engine_compiles_each_schema_and_holds_its_whitespace_to_one_space(schema, reply, tiny_model_dir):
    from transformers import AutoTokenizer

    from infra.structured import SchemaGuide

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    guide = SchemaGuide(tokenizer, len(tokenizer), {tokenizer.eos_token_id})

    def consumed(text: str) -> bool:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        return guide.matcher(schema).try_consume_tokens(tokens) == len(tokens)

    assert consumed(reply) and not consumed("{\n")  # json.dumps writes ", " and ": ", as the schema does

"""Both baselines' steps driven by a scripted teacher (fault injection): the paths that need parseable replies.

The tiny test model writes noise, so plans and ratings never parse there; here a backend that
answers each kind of prompt with a chosen (good, bad or failing) reply drives every branch.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from harness.config import from_dict
from selflengthen.baselines import (
    BacktranslationConfig,
    ImitationConfig,
    build_backtranslation_data,
    build_imitation_data,
    train_baseline,
)
from selflengthen.baselines.backtranslation import clean_instruction
from selflengthen.baselines.imitation import NOTHING_WRITTEN, clean_section, join_sections, load_instructions
from infra.journal import read_jsonl
from selflengthen.text import count_words
from tests.fakes import ScriptedBackend, kind_of, replies_by_kind

PLAN = "Here is my plan.\nSection 1 - Main point: Origins - Word count: 30 words\nSection 2 - Main point: Today - Word count: 20 words"
INSTRUCTION = "Write an essay arguing that a firm union of the states guards their peace and their trade."


PROMPT_KINDS = {
    "instruction": ("[Beginning of the text]", "【文章开头】"),
    "rating": ("[Request]", "【请求】"),
    "plan": ("Break the following writing task", "请把下面的写作任务拆分"),
    "section": ("[Text written so far]", "【已经写好的内容】"),
    "self_instruct": ("Instruction 3:", "指令3："),
    "judge": ("Would the following instruction",),
}
"""Each kind of prompt the baselines send, told apart by marker strings of its template."""


def teacher(**replies) -> ScriptedBackend:
    """Fault injection: a backend answering each kind of prompt with `replies[kind]` (see `replies_by_kind`)."""
    return ScriptedBackend(script=replies_by_kind(PROMPT_KINDS, replies))


def sent_of(backend: ScriptedBackend, kind: str) -> list[str]:
    """The prompt texts of one kind the backend received, in order."""
    return [request.text for request in backend.sent if kind_of(request.text, PROMPT_KINDS) == kind]


def kinds_sent(backend: ScriptedBackend) -> list[str]:
    return [kind_of(request.text, PROMPT_KINDS) for request in backend.sent]


def paragraphs(count: int, words: int, tag: str = "p") -> str:
    return "\n\n".join(" ".join(f"{tag}{i}w{j}" for j in range(words)) + "." for i in range(count))


def write_corpus(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return path


def backtranslation_config(corpus: Path, **fields) -> BacktranslationConfig:
    data = {"corpus": str(corpus), "max_in_flight": 2, "shown_words": 12, "rating_attempts": 2, **fields}
    return from_dict(BacktranslationConfig, data)


def run_backtranslation(backend, config, work_dir):
    return asyncio.run(build_backtranslation_data(backend, config, work_dir))


def rows(work_dir: Path) -> list[dict]:
    return read_jsonl(work_dir / "data.jsonl")


# --- backtranslation -----------------------------------------------------------------------------


def test_a_well_rated_pair_is_kept_with_an_about_n_words_demand_the_text_meets(tmp_path):
    text = paragraphs(9, 250)  # 2250 words
    backend = teacher(instruction=f"{INSTRUCTION}\n\nI hope this helps.", rating="Score: 5")
    result = run_backtranslation(backend, backtranslation_config(write_corpus(tmp_path / "c.jsonl", [text])), tmp_path / "bt")
    [row] = rows(tmp_path / "bt")
    user, answer = row["messages"][0]["content"], row["messages"][1]["content"]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"] and answer == text
    assert INSTRUCTION in user and "I hope this helps" not in user
    demanded = int(re.search(r"(\d+) words", user).group(1))
    assert demanded == 2000 and 0.8 * demanded <= count_words(text) <= 1.2 * demanded
    assert result.samples == 1 and result.outcomes == {"kept": 1}


def test_the_model_sees_the_beginning_of_the_text_and_its_total_length(tmp_path):
    text = paragraphs(3, 10, tag="x")
    backend = teacher(instruction=INSTRUCTION, rating="Score: 4")
    run_backtranslation(backend, backtranslation_config(write_corpus(tmp_path / "c.jsonl", [text])), tmp_path / "bt")
    for prompt in sent_of(backend, "instruction") + sent_of(backend, "rating"):
        assert "x0w0 x0w1" in prompt and "x1w0 x1w1" in prompt and "x1w2" not in prompt
        assert "30 words long" in prompt.replace("\n", " ")
    assert INSTRUCTION in sent_of(backend, "rating")[0]


def test_a_pair_rated_below_min_rating_is_dropped(tmp_path):
    backend = teacher(instruction=INSTRUCTION, rating="I rate it 2 out of 5.")
    config = backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)]), min_rating=3)
    result = run_backtranslation(backend, config, tmp_path / "bt")
    record = read_jsonl(tmp_path / "bt" / "pairs.jsonl")[0]
    assert (record["rating"], record["outcome"]) == (2, "low_rating")
    assert result.samples == 0 and rows(tmp_path / "bt") == []


def test_an_unreadable_rating_is_retried_then_counted_as_unrated(tmp_path):
    backend = teacher(instruction=INSTRUCTION, rating=["Great text!", "very good"])
    result = run_backtranslation(
        backend, backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)])), tmp_path / "bt"
    )
    assert len(sent_of(backend, "rating")) == 2
    assert result.outcomes == {"unrated": 1} and result.rejections == {"rating.unparsed": 2}


def test_a_rating_read_on_the_second_try_counts(tmp_path):
    backend = teacher(instruction=INSTRUCTION, rating=["Great text!", "Score: 4"])
    result = run_backtranslation(
        backend, backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)])), tmp_path / "bt"
    )
    assert result.samples == 1 and result.rejections == {"rating.unparsed": 1}


def test_without_curation_no_rating_is_asked_and_every_pair_is_kept(tmp_path):
    backend = teacher(instruction=INSTRUCTION)
    corpus = write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20), paragraphs(3, 20)])
    result = run_backtranslation(backend, backtranslation_config(corpus, min_rating=None), tmp_path / "bt")
    assert result.samples == 2 and sent_of(backend, "rating") == []


def test_an_instruction_of_the_wrong_length_is_retried_then_the_text_given_up(tmp_path):
    backend = teacher(instruction=["Essay.", ""], rating="Score: 5")
    config = backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)]), instruction_attempts=2)
    result = run_backtranslation(backend, config, tmp_path / "bt")
    assert result.outcomes == {"no_instruction": 1} and result.rejections == {"instruction.length": 2}


def test_a_text_too_long_for_the_trainer_is_cut_at_a_paragraph_or_skipped(tmp_path):
    text = paragraphs(3, 80)  # 240 words; 200 tokens fit at 1 token per word
    corpus = write_corpus(tmp_path / "c.jsonl", [text])
    limits = {"tokens_per_word": 1.0, "prompt_tokens_reserved": 100, "train": {"max_length": 300}}
    backend = teacher(instruction=INSTRUCTION, rating="Score: 5")
    run_backtranslation(backend, backtranslation_config(corpus, **limits), tmp_path / "cut")
    record = read_jsonl(tmp_path / "cut" / "pairs.jsonl")[0]
    assert record["truncated"] and record["words"] == 160
    assert rows(tmp_path / "cut")[0]["messages"][1]["content"] == "\n\n".join(text.split("\n\n")[:2])
    skipping = teacher(instruction=INSTRUCTION, rating="Score: 5")
    result = run_backtranslation(skipping, backtranslation_config(corpus, long_texts="skip", **limits), tmp_path / "skip")
    assert result.outcomes == {"too_long": 1} and skipping.sent == []


def test_document_and_sample_caps_bound_the_work_and_the_data(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 10 + i) for i in range(6)])
    backend = teacher(instruction=INSTRUCTION, rating="Score: 5")
    result = run_backtranslation(backend, backtranslation_config(corpus, max_documents=4, max_samples=3), tmp_path / "bt")
    assert result.items == 4 and len(sent_of(backend, "instruction")) == 4
    assert result.samples == len(rows(tmp_path / "bt")) == 3


def test_stats_json_matches_the_data_it_describes(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20), paragraphs(4, 30)])
    backend = teacher(instruction=INSTRUCTION, rating=lambda prompt: "Score: 5")
    run_backtranslation(backend, backtranslation_config(corpus), tmp_path / "bt")
    stats = json.loads((tmp_path / "bt" / "stats.json").read_text())
    answers = [row["messages"][1]["content"] for row in rows(tmp_path / "bt")]
    assert stats["arm"] == "backtranslation" and stats["samples"] == len(answers) == 2
    assert stats["answer_words_mean"] == sum(count_words(a) for a in answers) / 2 == (40 + 120) / 2
    assert stats["train_tokens"] is None and stats["requests"]["sent"] == 4


def test_a_finished_run_reruns_without_sending_anything(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20), paragraphs(3, 20)])
    config = backtranslation_config(corpus)
    run_backtranslation(teacher(instruction=INSTRUCTION, rating="Score: 5"), config, tmp_path / "bt")
    first = (tmp_path / "bt" / "data.jsonl").read_text()
    broken = teacher(instruction=AssertionError("sent"), rating=AssertionError("sent"))
    again = run_backtranslation(broken, config, tmp_path / "bt")
    assert broken.sent == [] and again.samples == 2 and (tmp_path / "bt" / "data.jsonl").read_text() == first


def test_a_failing_backend_is_counted_not_crashed_on(tmp_path):
    backend = teacher(instruction=ConnectionError("refused"))
    result = run_backtranslation(
        backend, backtranslation_config(write_corpus(tmp_path / "c.jsonl", [paragraphs(2, 20)])), tmp_path / "bt"
    )
    assert result.outcomes == {"no_instruction": 1} and result.requests.errors == 3
    assert not (tmp_path / "bt" / "pairs.jsonl").read_text() == ""


@pytest.mark.parametrize(
    "reply, instruction",
    [
        (f"{INSTRUCTION}\n\nI hope this helps.", INSTRUCTION),
        (f'Request: "{INSTRUCTION}"', INSTRUCTION),
        (f"**Instruction:** {INSTRUCTION}", INSTRUCTION),
        ("请求：“写一篇关于长江的长文。”", "写一篇关于长江的长文。"),
        ('Write about "the union" of states.', 'Write about "the union" of states.'),
    ],
)
def test_a_written_instruction_loses_its_label_quotes_and_what_follows_it(reply, instruction):
    assert clean_instruction(reply) == instruction


# --- behaviour imitation -------------------------------------------------------------------------


def section_reply(prompt: str) -> str:
    number = re.search(r"Now write section (\d+)", prompt).group(1)
    return f"Section {number}: The text of part {number}.\n"


def write_instructions(path: Path) -> Path:
    records = [
        {"key": "si/en/0", "lang": "en", "instruction": "Write a long history of the lighthouse."},
        {"key": "si/en/1", "lang": "en", "instruction": None},
        {"key": "si/zh/0", "lang": "zh", "instruction": "写一篇关于长江的长文。"},
        {"key": "si/en/2", "lang": "en", "instruction": "Write a detailed guide to winter beekeeping."},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def imitation_config(instructions: Path | None, **fields) -> ImitationConfig:
    data = {"max_in_flight": 2, "plan_attempts": 2, "section_attempts": 2, "tokens_per_word": 2.0, **fields}
    if instructions is not None:
        data["instructions_file"] = str(instructions)
    data.setdefault("sampling", {"max_tokens": 50})
    return from_dict(ImitationConfig, data)


def run_imitation(backend, config, work_dir):
    return asyncio.run(build_imitation_data(backend, config, work_dir))


def test_a_planned_answer_is_its_sections_written_in_turn_and_joined(tmp_path):
    backend = teacher(plan=PLAN, section=section_reply)
    config = imitation_config(write_instructions(tmp_path / "instructions.jsonl"), max_instructions=1)
    result = run_imitation(backend, config, tmp_path / "im")
    [row] = rows(tmp_path / "im")
    assert row["messages"][1]["content"] == "The text of part 1.\n\nThe text of part 2."
    first, second = sent_of(backend, "section")
    assert NOTHING_WRITTEN["en"] in first and "The text of part 1." in second
    for prompt in (first, second):
        assert "Section 1 - Origins - 30 words\nSection 2 - Today - 20 words" in prompt
        assert row["messages"][0]["content"] in prompt
    assert [r.sampling.max_tokens for r in backend.sent if kind_of(r.text, PROMPT_KINDS) == "section"] == [50, 40]
    assert result.samples == 1 and result.answer_words_mean == 10


def test_an_unparseable_plan_is_retried_then_counted(tmp_path):
    backend = teacher(plan="I will write it all at once.", section=section_reply)
    result = run_imitation(backend, imitation_config(write_instructions(tmp_path / "i.jsonl")), tmp_path / "im")
    assert result.outcomes == {"no_plan": 2} and result.rejections == {"plan.unparsed": 4}
    assert sent_of(backend, "section") == [] and result.samples == 0


def test_a_plan_with_too_few_sections_is_retried(tmp_path):
    backend = teacher(plan=["1. Everything (500 words)", PLAN], section=section_reply)
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"), max_instructions=1)
    result = run_imitation(backend, config, tmp_path / "im")
    assert result.samples == 1 and result.rejections == {"plan.too_few_sections": 1}


def test_a_section_that_stays_empty_gives_the_answer_up(tmp_path):
    backend = teacher(plan=PLAN, section=["Opening text.", "  ", "\n"])
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"), max_instructions=1)
    result = run_imitation(backend, config, tmp_path / "im")
    assert result.outcomes == {"section_failed": 1} and result.rejections == {"section.empty": 2}
    assert read_jsonl(tmp_path / "im" / "answers.jsonl")[0]["plan"][1] == {"number": 2, "point": "Today", "words": 20}


def test_instructions_come_from_a_self_lengthen_instructions_file_in_the_chosen_languages(tmp_path):
    backend = teacher(plan=PLAN, section=section_reply)
    run_imitation(backend, imitation_config(write_instructions(tmp_path / "i.jsonl")), tmp_path / "im")
    answered = sorted(r["instruction_key"] for r in read_jsonl(tmp_path / "im" / "answers.jsonl"))
    assert answered == ["si/en/0", "si/en/2"]


def test_a_self_lengthen_iteration_folder_is_read_for_its_instructions(tmp_path):
    write_instructions(tmp_path / "instructions.jsonl")
    plan = "第1部分 - 主要内容：源头 - 字数要求：30字\n第2部分 - 主要内容：入海 - 字数要求：20字"
    backend = teacher(plan=plan, section="长江东流。")
    result = run_imitation(backend, imitation_config(tmp_path, languages=["zh"]), tmp_path / "im")
    assert result.samples == 1 and rows(tmp_path / "im")[0]["messages"][1]["content"] == "长江东流。\n\n长江东流。"
    assert "现在请写计划中的第1部分（源头），约30字" in sent_of(backend, "section")[0]


def test_without_an_instructions_file_the_self_instruct_step_writes_them(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["Write a long essay on rivers.", "Write a long story."]))
    # Both slots write the same text at once: the candidate is reserved while it is judged, so
    # the second slot sees a duplicate and only one instruction is kept.
    reply = " Write a long history of bridges and their builders.\n\nInstruction 4:"

    def write(prompt: str) -> str:
        return reply

    def judge(prompt: str) -> str:
        return "Yes."

    backend = teacher(self_instruct=write, judge=judge, plan=PLAN, section=section_reply)
    config = imitation_config(
        None, seed_files={"en": str(seeds)}, self_instruct={"instructions_per_language": 2, "max_attempts": 2}
    )
    progress: list[str] = []
    result = asyncio.run(build_imitation_data(backend, config, tmp_path / "im", on_item_done=progress.append))
    instructions = read_jsonl(tmp_path / "im" / "instructions.jsonl")
    assert [r["instruction"] for r in instructions] == ["Write a long history of bridges and their builders.", None]
    assert result.rejections == {"self_instruct.duplicate": 2} and result.samples == 1
    assert progress.count("instructions") == 2 and progress.count("answers") == 1


def test_only_the_last_words_written_are_shown_when_the_context_is_capped(tmp_path):
    backend = teacher(plan=PLAN, section=["alpha beta gamma delta.", "done."])
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"), max_instructions=1, written_context_words=2)
    run_imitation(backend, config, tmp_path / "im")
    second = sent_of(backend, "section")[1]
    assert "gamma delta." in second and "alpha" not in second


def test_an_imitation_run_resumes_without_resending(tmp_path):
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"))
    run_imitation(teacher(plan=PLAN, section=section_reply), config, tmp_path / "im")
    broken = teacher(plan=AssertionError("sent"), section=AssertionError("sent"))
    again = run_imitation(broken, config, tmp_path / "im")
    assert broken.sent == [] and again.samples == 2


class Crash(BaseException):
    """Stands for the process dying mid-run (what `kill -9` does to the journals' last lines aside)."""


def test_a_crashed_run_resumes_keeping_finished_answers_and_replaying_finished_requests(tmp_path):
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"), max_in_flight=1)
    crashing = teacher(plan=PLAN, section=["First part.", "Second part.", "Third part.", Crash()])
    with pytest.raises(Crash):
        run_imitation(crashing, config, tmp_path / "im")
    assert len(read_jsonl(tmp_path / "im" / "answers.jsonl")) == 1
    working = teacher(plan=PLAN, section=section_reply)
    result = run_imitation(working, config, tmp_path / "im")
    assert result.samples == 2 and result.requests.replayed == 2  # the second plan and its first section
    assert kinds_sent(working) == ["section"]


@pytest.mark.parametrize(
    "reply, text",
    [
        ("Section 2: The storm came.", "The storm came."),
        ("**Paragraph 3** - The storm came.", "The storm came."),
        ("## Section 2\nThe storm came.", "The storm came."),
        ("第二部分：风暴来了。", "风暴来了。"),
        ("Part 1 of the story is told by the keeper.", "Part 1 of the story is told by the keeper."),
        ("  The storm came.  \n", "The storm came."),
    ],
)
def test_a_section_loses_its_echoed_label_but_not_its_text(reply, text):
    assert clean_section(reply) == text


def test_sections_join_with_one_blank_line_between_two():
    assert join_sections([" One.\n", "Two.", "Three. "]) == "One.\n\nTwo.\n\nThree."


# --- training ------------------------------------------------------------------------------------


def test_training_on_an_arm_without_samples_is_refused_with_the_reasons(tmp_path):
    backend = teacher(plan="no plan here", section=section_reply)
    run_imitation(backend, imitation_config(write_instructions(tmp_path / "i.jsonl")), tmp_path / "im")
    with pytest.raises(ValueError, match=r"imitation data in .* has no training samples \(no_plan 2\)"):
        train_baseline(tmp_path / "im", "unused-model", from_dict(ImitationConfig, {}).train)


@pytest.mark.slow
def test_training_on_imitation_data_merges_the_training_tokens_into_stats(tmp_path, tiny_model_dir, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    config = imitation_config(write_instructions(tmp_path / "i.jsonl"))
    run_imitation(teacher(plan=PLAN, section=section_reply), config, tmp_path / "im")
    train = from_dict(ImitationConfig, {"train": {"max_steps": 1, "torch_threads": 1, "logging_steps": 1}}).train
    stats = train_baseline(tmp_path / "im", str(tiny_model_dir), train)
    assert (tmp_path / "im" / "adapter" / "adapter_model.safetensors").is_file()
    assert stats == json.loads((tmp_path / "im" / "stats.json").read_text())
    assert stats["samples"] == stats["training"]["samples"] == 2 and stats["steps"] == 1
    assert stats["train_tokens"] > stats["loss_tokens"] > 0
    assert stats["answer_words_mean"] == stats["training"]["answer_words_mean"]


def test_the_instructions_self_lengthen_answered_are_read_once_each_with_their_instruction_keys(tmp_path):
    answers = [
        {"key": "gen/seed/en/0/0", "instruction_key": "seed/en/0", "lang": "en", "instruction": "Write about rivers.",
         "answer": "Rivers flow."},
        {"key": "gen/seed/en/0/1", "instruction_key": "seed/en/0", "lang": "en", "instruction": "Write about rivers.",
         "answer": None},
        {"key": "gen/si/en/3/0", "instruction_key": "si/en/3", "lang": "en", "instruction": "Describe a fox.",
         "answer": "A fox."},
        {"key": "gen/si/zh/1/0", "instruction_key": "si/zh/1", "lang": "zh", "instruction": "写一篇文章。", "answer": "文。"},
    ]
    path = tmp_path / "initial_answers.jsonl"
    path.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    assert load_instructions(path, ["en"]) == [("seed/en/0", "en", "Write about rivers."),
                                               ("si/en/3", "en", "Describe a fox.")]


def test_an_instruction_record_without_its_fields_is_named_by_its_line_in_the_file(tmp_path):
    path = tmp_path / "instructions.jsonl"
    good = json.dumps({"key": "si/en/0", "lang": "en", "instruction": "Describe a fox."})
    path.write_text(f"{good}\n\n{json.dumps({'key': 'si/en/1'})}\n", encoding="utf-8")  # a blank line 2
    with pytest.raises(ValueError, match=r"instructions\.jsonl line 3: expected a Self-Lengthen instruction record"):
        load_instructions(path, ["en"])

"""lm-eval end to end: our task folder through lm_eval.simple_evaluate on the tiny model.

The metrics lm-eval prints must equal `score_predictions` on the samples lm-eval logged, so
`selflengthen eval` (lm-eval) and `selflengthen score` (our code) cannot disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.scoring import score_predictions

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
METRICS = {
    "longen_mini": ["overall", "about", "range", "above", "below"],
    "longbench_write_en_mini": ["S_l"],
    "longwrite_ruler_mini": ["words", "length_ratio", "S_l"],
}


@pytest.fixture(scope="module")
def evaluation(tiny_model_dir, data_dir):
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(1)
    return simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_model_dir}",
        device="cpu",
        tasks=list(METRICS),
        task_manager=TaskManager(include_path=str(TASKS_DIR), metadata={"data_dir": str(data_dir)}),
        limit=3,
        # Sampling from random weights writes varied tokens, so the scores are not all zero.
        gen_kwargs="do_sample=True,temperature=1.0,max_gen_toks=256",
        apply_chat_template=True,
        log_samples=True,
    )


def rows_from_samples(samples: list[dict]) -> list[dict]:
    return [{**s["doc"], "doc_id": s["doc_id"], "response": s["filtered_resps"][0]} for s in samples]


@pytest.mark.slow
@pytest.mark.parametrize("task", list(METRICS))
def test_lm_eval_metrics_equal_score_predictions_on_its_logged_samples(evaluation, task):
    reported = evaluation["results"][task]
    ours = score_predictions(task, rows_from_samples(evaluation["samples"][task]))
    assert ours["n"] == 3
    for metric in METRICS[task]:
        if ours[metric] is None:  # a LonGen type absent from the first docs: lm-eval reports nothing
            assert f"{metric},none" not in reported
        else:
            assert reported[f"{metric},none"] == pytest.approx(ours[metric], abs=1e-12), metric


@pytest.mark.slow
def test_lm_eval_generated_real_text_for_the_check_to_mean_something(evaluation):
    rows = rows_from_samples(evaluation["samples"]["longbench_write_en_mini"])
    assert any(score_predictions("longbench_write_en_mini", rows)["samples"][i]["words"] > 0 for i in range(3))


@pytest.mark.slow
def test_lm_eval_prompts_are_the_mini_texts_with_scaled_demands(evaluation):
    docs = [s["doc"] for s in evaluation["samples"]["longen_mini"]]
    assert all(100 <= int(s) <= 800 for d in docs for s in re.findall(r"\d+", d["constraint"]))

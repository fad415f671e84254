"""examples/small.yaml keeps issue #23's sizing rules against the data files, and plans the six pre-registered rows."""

from __future__ import annotations

import re
from pathlib import Path

from harness.run.experiment_config import load_experiment
from harness.run.plan import plan_stages
from tasks.data import load_benchmark

SMALL = Path(__file__).resolve().parent.parent / "examples" / "small.yaml"
TOKENS_PER_WORD = 1.454
"""SmolLM2's tokens per LongBench-Write word on the 40 longbench_write_en_small prompts, the largest of the
ratios measured for the YAML header (seed instructions 1.435, LonGen queries 1.305, Federalist 1.214)."""


def largest_demand(task: str, data_dir: Path) -> int:
    rows = load_benchmark(task, data_dir)
    if task.startswith("longen"):
        return max(int(n) for row in rows for n in re.findall(r"\d+", row["constraint"]))
    return max(int(row["length"]) for row in rows)


def test_small_eval_cap_is_at_least_1_3_times_the_largest_demand_of_its_prompts_in_tokens(data_dir):
    config = load_experiment(SMALL)
    demand = max(largest_demand(task, data_dir) for task in config.tasks)
    assert demand == 1200
    assert config.eval.max_gen_toks >= 1.3 * demand * TOKENS_PER_WORD


def test_small_decodes_as_each_task_publishes_on_40_prompts_per_task(data_dir):
    config = load_experiment(SMALL)
    assert config.eval.sampling is None and config.limit is None
    assert {task: len(load_benchmark(task, data_dir)) for task in config.tasks} == {
        "longbench_write_en_small": 40, "longen_en_small": 40}


def test_small_plans_the_six_preregistered_rows_and_no_judge(data_dir):
    stages, _ = plan_stages(load_experiment(SMALL))
    scored = [stage.name.removeprefix("score/longbench_write_en_small/") for stage in stages
              if stage.name.startswith("score/longbench_write_en_small/")]
    assert {stage.name.split("/")[1] for stage in stages if stage.name.startswith("score/")} == set(
        load_experiment(SMALL).tasks)
    assert scored == ["base", "self_lengthen/iter_1/generator", "self_lengthen/iter_2/generator",
                      "self_lengthen/final", "backtranslation", "imitation"]
    assert not [stage.name for stage in stages if stage.name.startswith("judge")]

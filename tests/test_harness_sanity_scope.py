"""`judge.sanity_scope: base` (the base arm's answers degraded once, other runs take that verdict), and the
experiment's judging of several runs at the same time.

The judge is a real in-process server on the tiny random model (its replies fail to parse, which
does not matter here); the server's access log counts the requests each run sent.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.errors import UserError
from harness.run.experiment_config import ExperimentConfig, validate_experiment
from harness.run.judge_stages import judge_together
from harness.scoring.judging import JUDGE_SANITY, JudgeRunConfig, judge_run
from harness.serving.serve import ServerConfig, serve

ANSWERS = ["Rivers carve valleys. They carry silt to the sea.\n\nFloods renew the plains.",
           "Mountains rise slowly. Ice and rain wear them down.\n\nTheir stones end as sand.",
           "Forests breathe. Their leaves fall and feed the soil.\n\nFire clears room for seedlings."]
TASK = "longbench_write_en_mini"


def write_run(run_dir: Path, model: str) -> Path:
    samples = [{"doc_id": i, "prompt": f"Write about {i * 100 + 100} words on nature.", "response": a}
               for i, a in enumerate(ANSWERS)]
    run_dir.mkdir(parents=True)
    (run_dir / "scores.json").write_text(json.dumps({"model": model, "tasks": {TASK: {"samples": samples}}}))
    return run_dir


def requests_sent(log: Path) -> int:
    return log.read_text().count("POST /v1/chat/completions")


@pytest.mark.slow
def test_a_run_given_the_base_sanity_report_judges_only_its_own_answers(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = write_run(tmp_path / "base", "base")
    arm = write_run(tmp_path / "arm", "arm")
    config = JudgeRunConfig(model=str(tiny_model_dir), max_tokens=24, max_retries=0, sanity_subset=3, top_logprobs=0)

    log = tmp_path / "server.log"
    with serve(str(tiny_model_dir), ServerConfig(kind="inprocess", torch_threads=1), log_path=log) as endpoint:
        judge_run(base, endpoint, config)
        base_requests = requests_sent(log)
        judgements = judge_run(arm, endpoint, config, sanity_from=base)
        arm_requests = requests_sent(log) - base_requests

    base_report = json.loads((base / JUDGE_SANITY).read_text())
    assert json.loads((arm / JUDGE_SANITY).read_text()) == {**base_report, "answers_from": "base"}
    assert arm_requests == len(ANSWERS)  # its own answers, no degraded ones
    assert base_requests == 2 * len(ANSWERS) + 3 * len(ANSWERS)  # judged, then the sanity originals and degradations
    base_trust = json.loads((base / "judgements.json").read_text())["tasks"][TASK]["trust"]
    assert judgements["tasks"][TASK]["trust"]["sanity"] == base_trust["sanity"]


def test_a_run_given_an_unjudged_base_is_refused_before_judging(tmp_path):
    arm = write_run(tmp_path / "arm", "arm")
    config = JudgeRunConfig(model="smollm2-135m")
    with pytest.raises(UserError, match="judge_sanity.json not found"):
        judge_run(arm, endpoint=None, config=config, sanity_from=tmp_path / "base")


@pytest.mark.parametrize("fields, message", [
    ({"sanity_scope": "arms"}, "must be every_run or base"),
    ({"sanity_scope": "base", "sanity_subset": 0}, "not used with judge.sanity_subset: 0"),
])
def test_a_bad_sanity_scope_is_refused(fields, message):
    with pytest.raises(UserError, match=message):
        JudgeRunConfig(model="smollm2-135m", **fields)


def test_sanity_scope_base_without_a_base_arm_is_refused():
    config = ExperimentConfig(judge=JudgeRunConfig(sanity_scope="base"))
    config.arms.base = False
    with pytest.raises(UserError, match="needs arms.base"):
        validate_experiment(config)


@pytest.mark.slow
def test_runs_judged_together_each_get_judgements_and_a_failing_one_does_not_stop_the_others(tiny_model_dir, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = write_run(tmp_path / "base", "base")
    arms = [write_run(tmp_path / f"arm{i}", f"arm{i}") for i in range(3)]
    broken = tmp_path / "broken"  # no scores.json: its judge_run refuses
    broken.mkdir()
    config = JudgeRunConfig(model=str(tiny_model_dir), max_tokens=16, max_retries=0, sanity_subset=2, top_logprobs=0,
                            sanity_scope="base")
    todo = [([TASK], d, False) for d in [*arms, broken]]
    with serve(str(tiny_model_dir), ServerConfig(kind="inprocess", torch_threads=1)) as endpoint:
        judge_run(base, endpoint, config)
        with pytest.raises(UserError, match="scores.json not found"):
            judge_together(todo, endpoint, config, Console(file=io.StringIO()), base)

    for arm in arms:
        assert json.loads((arm / "judgements.json").read_text())["tasks"][TASK]["n"] == len(ANSWERS)
        assert json.loads((arm / JUDGE_SANITY).read_text())["answers_from"] == "base"

"""`selflengthen report`: an experiment's wall time per stage and training-data yield, read from its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.run.report import experiment_report


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def marker(name: str, seconds: float, finished: bool = True) -> dict:
    return {"name": name, "fingerprint": "f", "inputs": {}, "finished": finished, "seconds": seconds}


@pytest.fixture
def experiment(tmp_path) -> Path:
    out = tmp_path / "small"
    write(out / "experiment.json", {"checkpoints": []})
    write(out / "leaderboard/stage.json", marker("leaderboard", 0.4))
    write(out / "runs/imitation/score.longen.stage.json", marker("score/longen/imitation", 30.0))
    write(out / "runs/base/score.longen.stage.json", marker("score/longen/base", 31.0))
    write(out / "runs/base/judge.longen.stage.json", marker("judge/longen/base", 60.0, finished=False))
    write(out / "runs/imitation/judge_pairwise.longen.stage.json", marker("judge_pairwise/longen/imitation", 12.0))
    write(out / "train/self_lengthen/iter_2/stage.json", marker("self_lengthen/iter_2/synthesis", 200.0))
    write(out / "train/self_lengthen/iter_1/stage.json", marker("self_lengthen/iter_1/synthesis", 100.0))
    write(out / "train/self_lengthen/iter_1.stale/stage.json", marker("self_lengthen/iter_1/synthesis", 999.0))
    for k, examples in ((1, 18), (2, 20)):
        write(out / f"train/self_lengthen/iter_{k}/synthesis.json",
              {"instructions": 40, "initial_answers": 50, "extended_answers": 30, "generator_examples": examples,
               "extender_examples": examples, "requests": {"sent": 120, "errors": 0},
               "rejections": {"extend.meta_words": k, "extend.enrichment_discarded": 3 * k}, "seconds": 1800.0})
    write(out / "train/backtranslation/stats.json",
          {"items": 32, "samples": 5, "answer_words_mean": 290.5, "outcomes": {"kept": 5, "unrated": 27},
           "rejections": {"rating.unparsed": 40}, "requests": {"sent": 90}, "seconds": 300.0})
    return out


def test_stages_are_listed_in_run_order_with_the_base_first_and_stale_folders_skipped(experiment):
    report = experiment_report(experiment)
    names = [line.split(" | ")[0].lstrip("| ") for line in report.splitlines() if line.startswith("| ")]
    stages = names[1:names.index("iteration")]
    assert stages == ["self_lengthen/iter_1/synthesis", "self_lengthen/iter_2/synthesis", "score/longen/base",
                      "score/longen/imitation", "judge/longen/base", "judge_pairwise/longen/imitation", "leaderboard"]
    assert "999" not in report
    assert "| judge/longen/base | 60.0 | **no** |" in report


def test_synthesis_rows_take_the_stage_seconds_so_both_tables_agree(experiment):
    report = experiment_report(experiment)
    assert "| self_lengthen/iter_1/synthesis | 100.0 | yes |" in report
    assert "| 1 | 40 | 50 | 30 | 18 | 18 | 120 | 0 | 100.0 | 648.0 |" in report  # 18 examples in 100 s of the stage
    assert "| 2 | 40 | 50 | 30 | 20 | 20 | 120 | 0 | 200.0 | 360.0 |" in report


def test_without_a_stage_record_the_synthesis_row_takes_its_own_seconds(experiment):
    (experiment / "train/self_lengthen/iter_2/stage.json").unlink()
    assert "| 2 | 40 | 50 | 30 | 20 | 20 | 120 | 0 | 1800.0 | 40.0 |" in experiment_report(experiment)


def test_rejections_fill_zeros_where_a_source_has_no_such_filter(experiment):
    report = experiment_report(experiment)
    assert "| filter | iteration 1 | iteration 2 | backtranslation |" in report
    assert "| extend.meta_words | 1 | 2 | 0 |" in report
    assert "| rating.unparsed | 0 | 0 | 40 |" in report
    assert "| backtranslation | 32 | 5 | 290.5 | kept 5, unrated 27 | 90 | 300.0 |" in report


def test_a_discarded_enrichment_is_counted_apart_from_the_rejections(experiment):
    report = experiment_report(experiment)
    rejections, others = report.split("Counted alongside, not rejections")
    assert "extend.enrichment_discarded" not in rejections.split("## Rejections per filter")[1]
    assert "| extend.enrichment_discarded | 3 | 6 | 0 |" in others


def test_a_folder_that_is_no_experiment_is_refused(tmp_path):
    with pytest.raises(UserError, match="holds no experiment"):
        experiment_report(tmp_path)


def test_malformed_stats_give_one_error_line_naming_the_file(experiment):
    (experiment / "train/backtranslation/stats.json").write_text("{oops", encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SELFLENGTHEN_DEBUG", None)
    result = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(experiment)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stats.json line 1: malformed JSON" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_report_is_written_to_out_and_escapes_the_folder_name(experiment, tmp_path):
    hostile = experiment.rename(experiment.parent / "<b>x")
    target = tmp_path / "docs" / "report.md"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(hostile), "--out", str(target)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Experiment report: &lt;b&gt;x\n")
    assert "<b>" not in text


def test_failed_requests_are_shown_apart_from_the_filters_rejections(experiment):
    path = experiment / "train/self_lengthen/iter_1/synthesis.json"
    synthesis = json.loads(path.read_text(encoding="utf-8"))
    synthesis["rejections"] |= {"self_instruct.error": 4, "self_instruct.judge.error": 2, "self_instruct.unsuitable": 5}
    write(path, synthesis)
    report = experiment_report(experiment)
    rejections, failed = report.split("## Failed requests per step")
    assert "| self_instruct.unsuitable | 5 | 0 | 0 |" in rejections and ".error" not in rejections
    assert "| step | iteration 1 | iteration 2 | backtranslation |" in failed
    assert "| self_instruct.error | 4 | 0 | 0 |" in failed and "| self_instruct.judge.error | 2 | 0 | 0 |" in failed

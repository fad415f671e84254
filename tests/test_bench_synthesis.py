"""benchmarks/bench_synthesis.py on the tiny model: both clients run the same workload end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.scripts import load_script

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synthesis.py"


def load_bench():
    return load_script(BENCH, "bench_synthesis")


@pytest.fixture(scope="module")
def bench():
    return load_bench()


@pytest.fixture()
def seed_file(tmp_path) -> Path:
    """Three seeds, answered too (include_seeds), so the generate and extend steps get slots even
    when the random tiny model writes no acceptable instruction."""
    path = tmp_path / "seeds.jsonl"
    seeds = ["Write a long story about a lighthouse.", "Write an essay on city gardens.", "Describe a winter market."]
    path.write_text("".join(json.dumps({"prompt": seed}) + "\n" for seed in seeds), encoding="utf-8")
    return path


def test_workload_refuses_a_zero_cap(bench):
    with pytest.raises(ValueError, match="cap must be at least 1"):
        bench.SynthesisWorkload(cap=0)


def test_workload_sets_the_pipeline_to_the_same_sizes_and_bounds(bench, seed_file):
    config = bench.SynthesisWorkload(instructions=3, answers=2, max_tokens=64, cap=5, max_attempts=4,
                                     seed_file=seed_file).method_config()
    assert (config.self_instruct.instructions_per_language, config.generator.samples_per_instruction) == (3, 2)
    assert (config.max_in_flight, config.sampling.max_tokens) == (5, 64)
    assert config.self_instruct.max_attempts == config.generator.max_attempts == config.extender.max_attempts == 4
    assert (config.sampling.temperature, config.sampling.top_p, config.sampling.top_k) == (0.7, 0.8, 20)


@pytest.mark.slow
def test_both_clients_run_the_same_slots_and_report_well_formed_numbers(bench, tiny_model_dir, seed_file, tmp_path,
                                                                         capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nsynthesis: 1.5x, efficiency 0.4\n", encoding="utf-8")
    report = bench.main([
        "--model", str(tiny_model_dir), "--instructions", "2", "--answers", "1", "--extensions", "1",
        "--max-tokens", "8", "--cap", "4", "--include-seeds", "--seed-file", str(seed_file),
        "--log-dir", str(tmp_path / "logs"), "--record", str(results),
    ])
    reference, pipeline = report["reference"], report["pipeline"]
    # the same workload: every instruction slot, and every seed answered once (accepted instructions too)
    assert reference["instruction_slots"] == pipeline["instruction_slots"] == 2
    for run in (reference, pipeline):
        assert run["answer_slots"] == 3 + run["instructions"]
        assert run["extension_slots"] == run["answers"]
        assert run["seconds"] > 0 and run["requests"] >= 2 + 3  # at least one write per slot, one answer per seed
        assert 0 < run["completion_tokens"] <= run["requests"] * 8
        assert run["prompt_tokens"] > run["requests"]  # every prompt holds the template and an instruction
        assert run["tokens_per_s"] == pytest.approx(run["completion_tokens"] / run["seconds"], rel=0.05, abs=0.01)
    if reference["instructions"] == pipeline["instructions"]:
        assert reference["answer_slots"] == pipeline["answer_slots"]
    assert 0 < report["ceiling"]["tokens"] <= 4 * 8 and report["ceiling"]["concurrent"] == 4
    decoding = report["pipeline_decoding"]
    assert 0 < decoding["mean_rows_per_step"] <= 4 and decoding["prefills"] >= 1
    assert 0 < decoding["prefill_share"] + decoding["decode_share"] <= 1.01
    # wall times are reported to 0.01 s and the ratio to 0.01, so bound it by the rounding of both
    lowest = (reference["seconds"] - 0.005) / (pipeline["seconds"] + 0.005) - 0.005
    highest = (reference["seconds"] + 0.005) / (pipeline["seconds"] - 0.005) + 0.005
    assert lowest <= report["ratio"] <= highest
    efficiency = pipeline["tokens_per_s"] / report["ceiling"]["tokens_per_s"]
    assert report["efficiency"] == pytest.approx(efficiency, rel=0.05, abs=0.01)
    printed = capsys.readouterr().out
    assert re.search(r"^synthesis: [0-9.]+x, efficiency [0-9.]+$", printed, re.MULTILINE)
    recorded = results.read_text(encoding="utf-8")
    assert recorded.startswith("# Benchmark results\n\nsynthesis: 1.5x, efficiency 0.4\n")
    assert f"synthesis: {report['ratio']}x, efficiency {report['efficiency']}" in recorded
    assert recorded.count("| reference") == recorded.count("| pipeline") == 1

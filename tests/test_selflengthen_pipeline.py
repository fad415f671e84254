"""run_synthesis end to end on the real in-process engine with the tiny random-weight model;
schedules and faults that model cannot be made to produce are injected with tests/fakes.py."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config import from_dict
from infra.inprocess import InProcessBackend, InProcessConfig
from selflengthen.config import SelfLengthenConfig
from selflengthen.filters import passes_filters
from infra.journal import read_jsonl
from selflengthen.pipeline import run_synthesis
from selflengthen.self_instruct import load_seed_instructions
from selflengthen.text import count_words
from tests.fakes import ScriptedBackend, held_until


REPO = Path(__file__).resolve().parent.parent
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}
SEEDS = [
    "Write a long essay about the history of the river and the people who live near it.",
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Write a detailed guide to keeping bees through a cold winter.",
]


def tiny_config(seed_file: Path, **overrides) -> SelfLengthenConfig:
    """A small run on the tiny model. Its random weights write noise, so the punctuation rule
    accepts any ending (the other filters still apply) to let answers reach the Extender."""
    data = {
        "languages": ["en"],
        "seed_files": {"en": str(seed_file)},
        "seed": 3,
        "max_in_flight": 2,
        "sampling": {
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
            "repetition_penalty": 1.1,
            "max_tokens": 12,
            "stop": ["\n\n\n"],
        },
        "self_instruct": {"instructions_per_language": 2, "max_attempts": 2, "include_seeds": True},
        "generator": {"samples_per_instruction": 2, "max_attempts": 3},
        "extender": {"extensions_per_answer": 1, "max_attempts": 2, "rounds": 2},
        "filters": {"terminal_punctuation": [""]},
    }
    data.update(overrides)
    return from_dict(SelfLengthenConfig, data)


def write_seeds(path: Path) -> Path:
    path.write_text("".join(json.dumps({"prompt": seed}) + "\n" for seed in SEEDS))
    return path


def journal_keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def engine(model_dir: Path) -> InProcessBackend:
    """The production in-process engine on the tiny model, one torch thread (the machine is shared)."""
    return InProcessBackend(InProcessConfig(model=model_dir, max_batch_size=4, torch_threads=1))


def requests_run(backend: InProcessBackend) -> int:
    """Requests the engine ran: each is admitted by exactly one prefill."""
    return sum(backend.stats.prefill_sizes)


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tmp_path_factory):
    """One complete pipeline run on the tiny model: (work_dir, config, result, requests the engine ran, progress events)."""
    root = tmp_path_factory.mktemp("synthesis")
    config = tiny_config(write_seeds(root / "seeds.jsonl"))
    events: list[str] = []
    with engine(tiny_model_dir) as backend:
        result = asyncio.run(run_synthesis(backend, backend, config, root / "iter_1", on_item_done=events.append))
    return root / "iter_1", config, result, requests_run(backend), events


@pytest.mark.slow
def test_every_slot_of_every_step_is_journaled_exactly_once(finished_run):
    work_dir, config, result, _, _ = finished_run
    instructions = journal_keys(work_dir / "instructions.jsonl")
    answers = journal_keys(work_dir / "initial_answers.jsonl")
    extensions = journal_keys(work_dir / "extended_answers.jsonl")
    assert sorted(instructions) == ["si/en/0", "si/en/1"]
    assert len(answers) == len(set(answers)) == (len(SEEDS) + result.instructions) * 2
    assert len(extensions) == len(set(extensions)) == result.initial_answers
    assert (
        result.initial_answers + result.initial_slots_failed,
        result.extended_answers + result.extension_slots_failed,
    ) == (len(answers), len(extensions))


@pytest.mark.slow
def test_every_kept_answer_passes_the_filters_and_every_extension_grew(finished_run):
    work_dir, config, _, _, _ = finished_run
    for record in read_jsonl(work_dir / "initial_answers.jsonl"):
        assert record["answer"] is None or passes_filters(record["answer"], "en", config.filters)[0]
    for record in read_jsonl(work_dir / "extended_answers.jsonl"):
        if record["extended"] is not None:
            assert passes_filters(record["extended"], "en", config.filters)[0]
            assert count_words(record["extended"]) > 1.2 * count_words(record["initial"])


@pytest.mark.slow
def test_training_sets_are_chat_messages_from_the_extended_answers(finished_run):
    work_dir, _, result, _, _ = finished_run
    generator_rows = read_jsonl(work_dir / "generator_data.jsonl")
    extender_rows = read_jsonl(work_dir / "extender_data.jsonl")
    extended = {r["extended"] for r in read_jsonl(work_dir / "extended_answers.jsonl") if r["extended"]}
    assert len(generator_rows) == len(extender_rows) == result.generator_examples <= result.extended_answers
    for row in generator_rows + extender_rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][1]["content"] in extended


@pytest.mark.slow
def test_requests_are_counted_and_each_finished_one_is_in_the_ledger(finished_run):
    work_dir, _, result, engine_requests, events = finished_run
    ledger = journal_keys(work_dir / "requests.jsonl")
    assert len(ledger) == len(set(ledger)) == result.requests.sent == engine_requests
    assert events.count("initial_answers") == result.initial_answers + result.initial_slots_failed
    assert json.loads((work_dir / "synthesis.json").read_text())["requests"]["sent"] == engine_requests
    for step in ("instructions", "initial_answers", "extended_answers"):
        assert (work_dir / f"{step}.done.json").is_file()


ANSWER = "Rivers carve valleys.\n\nTowns grow on their banks.\n\nBridges join the towns.\n\nFloods test the bridges."


def test_an_extension_starts_before_the_last_answer_is_written(tmp_path):
    # The last seed's answers are held until an extension request arrives: a pipeline that
    # waited for every answer before extending would time them out and fail this test.
    extension_sent = asyncio.Event()

    def script(text, sampling, call_number):
        if text == SEEDS[-1]:
            return held_until(extension_sent, ANSWER, deadline_s=5)
        if text not in SEEDS:  # not an answer request: an extension's
            extension_sent.set()
        return ANSWER

    backend = ScriptedBackend(script=script)
    config = tiny_config(write_seeds(tmp_path / "seeds.jsonl"), self_instruct={"instructions_per_language": 0, "include_seeds": True})
    result = asyncio.run(run_synthesis(backend, backend, config, tmp_path / "iter_1"))
    ledger = journal_keys(tmp_path / "iter_1" / "requests.jsonl")
    extensions = [i for i, key in enumerate(ledger) if key.startswith("ext/")]
    last_answer = max(i for i, key in enumerate(ledger) if key.startswith("gen/"))
    assert result.initial_answers == len(SEEDS) * 2 and extensions and extensions[0] < last_answer


@pytest.mark.slow
def test_rerunning_a_finished_run_sends_nothing_and_rebuilds_the_same_data(finished_run, tmp_path):
    work_dir, config, result, _, _ = finished_run
    copy = tmp_path / "iter_1"
    shutil.copytree(work_dir, copy)
    backend = ScriptedBackend(AssertionError("a finished run must not send requests"))
    again = asyncio.run(run_synthesis(backend, backend, config, copy))
    assert backend.calls == 0 and again.requests.sent == result.requests.sent  # totals: the first attempt's
    for name in ("generator_data.jsonl", "extender_data.jsonl"):
        assert (copy / name).read_text() == (work_dir / name).read_text()


@pytest.mark.parametrize("reply", ["", None, OSError("down")])
def test_a_broken_backend_ends_the_run_with_nothing_produced_and_no_crash(tmp_path, reply):
    backend = ScriptedBackend(reply)
    config = tiny_config(write_seeds(tmp_path / "seeds.jsonl"), filters={})
    result = asyncio.run(run_synthesis(backend, backend, config, tmp_path / "iter_1"))
    assert (result.instructions, result.initial_answers, result.generator_examples) == (0, 0, 0)
    assert result.initial_slots_failed == len(SEEDS) * 2
    assert result.requests.empty + result.requests.errors == backend.calls


def test_the_cut_off_abandons_stragglers_and_a_rerun_does_not_revive_them(tmp_path):
    # Only the seeds are answered. The last seed's two answer slots wait for an event that never
    # comes; the other four fail at once, which is the 60% share the cut-off waits for.
    config = tiny_config(
        write_seeds(tmp_path / "seeds.jsonl"),
        stop_at_fraction=0.6,
        max_in_flight=6,
        self_instruct={"instructions_per_language": 0, "include_seeds": True},
    )
    never = asyncio.Event()
    stragglers = ScriptedBackend(script=lambda text, sampling, n: held_until(never, "") if text == SEEDS[-1] else "")
    result = asyncio.run(run_synthesis(stragglers, ScriptedBackend(""), config, tmp_path / "iter_1"))
    answers = read_jsonl(tmp_path / "iter_1" / "initial_answers.jsonl")
    abandoned = sorted(r["key"] for r in answers if r.get("abandoned"))
    assert len(answers) == len(SEEDS) * 2 and abandoned == ["gen/seed/en/2/0", "gen/seed/en/2/1"]
    assert result.abandoned_slots == len(abandoned) and result.initial_slots_failed == 4
    backend = ScriptedBackend(AssertionError("abandoned slots must stay abandoned"))
    rerun = asyncio.run(run_synthesis(backend, backend, config, tmp_path / "iter_1"))
    assert rerun.requests.sent == result.requests.sent  # totals over both attempts: the rerun sent nothing


def test_without_a_cut_off_every_slot_finishes(tmp_path):
    config = tiny_config(write_seeds(tmp_path / "seeds.jsonl"), max_in_flight=1)
    result = asyncio.run(
        run_synthesis(ScriptedBackend("", delay=0.001), ScriptedBackend(""), config, tmp_path / "iter_1")
    )
    assert result.abandoned_slots == 0 and result.initial_slots_failed == len(SEEDS) * 2


def test_both_languages_run_from_the_shipped_seed_files(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("SELFLENGTHEN_DATA_DIR", str(data_dir))
    config = tiny_config(tmp_path / "unused.jsonl", languages=["en", "zh"], seed_files={})
    backend = ScriptedBackend("")
    result = asyncio.run(run_synthesis(backend, backend, config, tmp_path / "iter_1"))
    slots = journal_keys(tmp_path / "iter_1" / "instructions.jsonl")
    assert sorted(slots) == ["si/en/0", "si/en/1", "si/zh/0", "si/zh/1"]
    seeds = sum(len(load_seed_instructions(data_dir / f"seed_instructions_{lang}.jsonl")) for lang in ("en", "zh"))
    assert result.initial_slots_failed == 2 * seeds
    assert any("指令1：" in request.prompt for request in backend.sent if request.kind == "complete")


def test_a_missing_seed_file_fails_before_any_request(tmp_path):
    backend = ScriptedBackend("")
    with pytest.raises(ValueError, match="seed instruction file not found"):
        asyncio.run(run_synthesis(backend, backend, tiny_config(tmp_path / "absent.jsonl"), tmp_path / "iter_1"))
    assert backend.calls == 0


def run_until_killed(command: list[str], ledger: Path, after: int, deadline_s: float = 120,
                     stderr=subprocess.DEVNULL, env: dict | None = None) -> bool:
    """Start `command` and kill -9 it once `ledger` holds `after` finished requests (within `deadline_s`);
    says whether it was killed (False: it ended first)."""
    process = subprocess.Popen(command, cwd=REPO, env=env or OFFLINE, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + deadline_s
    try:
        while process.poll() is None:
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= after:
                os.kill(process.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, f"{ledger} did not reach {after} requests within {deadline_s} s"
            time.sleep(0.01)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_loses_nothing_and_resends_no_finished_request(tiny_model_dir, tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"seed_file": str(write_seeds(tmp_path / "seeds.jsonl"))}))
    work_dir = tmp_path / "iter_1"
    command = [
        sys.executable,
        "-m",
        "tests.test_selflengthen_pipeline",
        str(config_file),
        str(tiny_model_dir),
        str(work_dir),
    ]
    assert run_until_killed([*command, str(tmp_path / "requests_1.txt")], work_dir / "requests.jsonl", after=25), \
        "the run ended before it could be killed"
    finished_before = set(journal_keys(work_dir / "requests.jsonl"))
    answers_before = journal_keys(work_dir / "initial_answers.jsonl")

    subprocess.run([*command, str(tmp_path / "requests_2.txt")], check=True, cwd=REPO, env=OFFLINE, timeout=300)

    ledger = journal_keys(work_dir / "requests.jsonl")
    assert len(ledger) == len(set(ledger))
    assert set(ledger) >= finished_before
    requests_after_restart = int((tmp_path / "requests_2.txt").read_text())
    assert requests_after_restart == len(ledger) - len(finished_before)
    answers = journal_keys(work_dir / "initial_answers.jsonl")
    assert answers[: len(answers_before)] == answers_before and len(answers) == len(set(answers))
    result = json.loads((work_dir / "synthesis.json").read_text())
    assert len(answers) == (len(SEEDS) + result["instructions"]) * 2
    extensions = journal_keys(work_dir / "extended_answers.jsonl")
    assert len(extensions) == len(set(extensions)) == result["initial_answers"]
    assert len(read_jsonl(work_dir / "generator_data.jsonl")) == result["generator_examples"]


def _main(config_file: str, model_dir: str, work_dir: str, requests_file: str) -> None:
    """Run one synthesis on the tiny model, then write how many requests the engine ran (for the
    kill -9 test, which runs this in a subprocess)."""
    settings = json.loads(Path(config_file).read_text())
    with engine(Path(model_dir)) as backend:
        asyncio.run(run_synthesis(backend, backend, tiny_config(Path(settings["seed_file"])), Path(work_dir)))
    Path(requests_file).write_text(str(requests_run(backend)))


if __name__ == "__main__":
    _main(*sys.argv[1:])

"""Every field of an experiment is honoured or refused: a walk over all of them (issue #9).

Each dataclass field reachable from `ExperimentConfig`, set alone to a valid value other than the
one in examples/tiny.yaml, must do one of:

  (a) change the plan at the stage that consumes it: that stage's own inputs (so its fingerprint:
      `run --plan` says stale and `run` redoes it), or which stages exist;
  (b) change the process the harness starts for it: a server's command line
      (`harness.serving.serve.server_command`), or whether a server is started at all;
  (c) be refused at load with a one-line UserError naming its full dotted path (EXPECTED_REFUSALS);

or be in NO_EFFECT_ON_RESULTS, each entry with its reason. Server fields must do (b) or (c): a
fingerprint that changes while the server's command does not means the setting is recorded, not used.
Nothing loads a model: the plan is computed from the config alone.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import types
import typing
from pathlib import Path

import pytest
import yaml

import harness.serving.serve
from harness.errors import UserError
from harness.run.experiment_config import ExperimentConfig, load_experiment
from harness.run.plan import plan_stages
from harness.serving.serve import server_command

ROOT = Path(__file__).resolve().parent.parent

NO_EFFECT_ON_RESULTS = {
    # How fast a stage runs, not what it produces (harness.run.stages.SPEED_ONLY_FIELDS, docs/run_directory.md).
    "*.max_in_flight": "requests in flight; every item's randomness is seeded per item, not by order",
    "*.max_concurrency": "judge requests in flight",
    "*.num_concurrent": "lm-eval requests in flight",
    "backend.max_batch_size": "requests decoded together by the in-process synthesis engine",
    "backend.torch_threads": "CPU threads of the in-process synthesis engine",
    "*.train.torch_threads": "CPU threads of the trainer",
    "*.startup_timeout": "how long to wait for a server's health check",
    "*.train.logging_steps": "how often the trainer logs the loss",
    # Where, not what.
    "out_dir": "where everything is written; every stage's output and marker move with it",
}

EXPECTED_REFUSALS = {
    # What examples/tiny.yaml's setup (in-process synthesis, in-process eval and judge servers, no judge
    # repeats) cannot honour.
    "self_lengthen.work_dir": "run sets it (out_dir/train/self_lengthen)",
    "judge.cache_path": "run sets it per run directory",
    "judge.api_key_env": "only with judge.endpoint",
    "judge.repeat_subset": "only with judge.repeat",
    "judge.server.continuous_batching": "a transformers-only flag; the judge server is inprocess",
    "judge.server.cb_num_blocks": "a transformers-only flag",
    "judge.server.cb_max_batch_tokens": "a transformers-only flag",
    "judge.server.lora_adapters": "a vllm-only flag",
    "judge.server.dtype": "a vllm-only flag",
    "judge.server.data_parallel_size": "a vllm-only flag",
    "eval.server.continuous_batching": "a transformers-only flag; the eval server is inprocess",
    "eval.server.cb_num_blocks": "a transformers-only flag",
    "eval.server.cb_max_batch_tokens": "a transformers-only flag",
    "eval.server.lora_adapters": "a vllm-only flag",
    "eval.server.dtype": "a vllm-only flag",
    "eval.server.data_parallel_size": "a vllm-only flag",
    "eval.sampling.max_tokens": "answer length is eval.max_gen_toks",
    "eval.sampling.json_schema": "lm-eval generates free text",
    "eval.sampling.top_logprobs": "lm-eval returns no log-probabilities",
    "eval.sampling.seed": "each answer is seeded from eval.seed and its prompt",
    "backend.server.*": "synthesis runs in-process: no server is started",
    "backend.ray.*": "only with backend.kind: ray",
    "arms.base": "judge.sanity_scope: base degrades the base arm's answers",
    "backtranslation.sampling.max_tokens": "instruction_max_tokens and rating_max_tokens set each request's length",
}

CONSUMERS = {
    # field path (exact, or a prefix ending in ".") -> name prefix of the stages that consume it
    "self_lengthen.iterations": "self_lengthen/iter_3/",
    "self_lengthen.train.": "self_lengthen/iter_1/train_",
    "self_lengthen.final_data.": "self_lengthen/final/data",
    "self_lengthen.": "self_lengthen/iter_1/synthesis",
    "backtranslation.train.": "backtranslation/train",
    "backtranslation.": "backtranslation/data",
    "imitation.train.": "imitation/train",
    "imitation.": "imitation/data",
    "backend.": "self_lengthen/iter_1/synthesis",
    "model": "self_lengthen/iter_1/synthesis",
    "seed": "self_lengthen/iter_1/synthesis",
    "arms.base": "score/longbench_write_en_mini/base",
    "arms.self_lengthen": "self_lengthen/",
    "arms.backtranslation": "backtranslation/",
    "arms.imitation": "imitation/",
    "tasks": "score/",
    "limit": "score/",
    "data_dir": "score/",
    "eval.": "score/",
    "judge.": "judge",
    "judge_enabled": "judge",
    "matched_budget.": "self_lengthen/iter_1/train_generator",
}

SERVERS = {"eval.": "eval.server", "backend.": "backend.server", "judge.": "judge.server"}


class Together(dict):
    """Several dotted assignments that make one change (a field that is only valid with another)."""


def hand_values(tmp: Path, data_dir: Path) -> dict[str, object]:
    """Values that cannot be derived from the field's type: names, paths, schemas, linked settings.

    Input files are fingerprinted by content, so another file is one with other rows, not a copy."""
    seeds = tmp / "other_seeds.jsonl"
    seeds.write_text((data_dir / "seed_instructions_en.jsonl").read_text().splitlines()[0] + "\n")
    corpus = tmp / "other_corpus.jsonl"
    corpus.write_text((data_dir / "federalist.jsonl").read_text().splitlines()[0] + "\n")
    other_data = tmp / "other_data"
    other_data.mkdir(exist_ok=True)
    for file in data_dir.glob("*.jsonl"):
        (other_data / file.name).unlink(missing_ok=True)
        (other_data / file.name).symlink_to(file.resolve())
    (other_data / "longen.jsonl").unlink()
    (other_data / "longen.jsonl").write_text((data_dir / "longen.jsonl").read_text().replace("Write", "Compose"))
    values = {
        "model": "other/model",
        "out_dir": str(tmp / "elsewhere"),
        "data_dir": str(other_data),
        "tasks": ["longen_mini"],
        "backend.kind": Together({"backend.kind": "endpoint", "backend.server.kind": "vllm"}),
        "eval.backend": Together({"eval.backend": "hf", "eval.server": {}}),  # {}: the default server section
        "self_lengthen.languages": ["en", "zh"],
        "self_lengthen.seed_files": {"en": str(seeds)},
        "self_lengthen.work_dir": str(tmp / "work"),
        "imitation.languages": ["en", "zh"],
        "imitation.seed_files": {"en": str(seeds)},
        "imitation.instructions_file": str(seeds),
        "backtranslation.corpus": str(corpus),
        "backtranslation.language": "zh",
        "backtranslation.tokenizer": "other/tokenizer",
        "backtranslation.demand_weights": {"about": 1.0, "range": 1.0},
        "judge.model": "other/judge",
        "judge.rubric": "longen",
        "judge.structured": "never",
        "judge.repeat": 2,
        "judge.cache_path": str(tmp / "cache.sqlite"),
        "judge.endpoint": "http://127.0.0.1:9/v1",
        "judge.api_key_env": "JUDGE_API_KEY",
        "judge.server.kind": "vllm",
        "eval.server.lora_adapters": {"a": str(tmp)},
    }
    deepspeed = tmp / "ds_z3.json"
    deepspeed.write_text('{"zero_optimization": {"stage": 3}}')
    for section in ("self_lengthen", "backtranslation", "imitation"):
        values.update({f"{section}.train.target_modules": "q_proj", f"{section}.train.lr_scheduler_type": "linear",
                       f"{section}.train.precision": "fp32", f"{section}.train.max_steps": 5,
                       f"{section}.train.deepspeed_config": str(deepspeed)})
    for section in ("eval", "self_lengthen", "backtranslation", "imitation"):
        values.update({f"{section}.sampling.json_schema": {"type": "object"},
                       f"{section}.sampling.repetition_penalty": 1.3})
    for server in ("eval.server", "backend.server", "judge.server"):
        values[f"{server}.lora_adapters"] = {"a": str(tmp)}
    return values


CONTEXT = {
    # Settings on both sides of the comparison, for fields that only exist once another is set.
    "backtranslation.corpus_hf.": {"backtranslation.corpus": None, "backtranslation.corpus_hf.name": "local/corpus"},
}


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted path, type) of every non-dataclass field under `cls`, through optional sections."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        nested = tp if dataclasses.is_dataclass(tp) else (inner[0] if len(inner) == 1 and
                                                        dataclasses.is_dataclass(inner[0]) else None)
        found += leaf_fields(nested, f"{prefix}{f.name}.") if nested else [(f"{prefix}{f.name}", tp)]
    return found


FIELDS = leaf_fields(ExperimentConfig)


def other_value(tp: object, current: object) -> object:
    """A valid value of type `tp` other than `current`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return other_value(inner, None) if current is None else other_value(inner, current)
    if origin is typing.Literal:
        return next(a for a in args if a != current)
    if tp is bool:
        return not current
    if tp is int:
        return 2 if current is None else current + 1
    if tp is float:
        return 0.5 if not current else current / 2
    if tp is str:
        return f"{current or 'x'}-other"
    if origin is list:
        return list(current or []) + ["###"]
    if origin is dict and typing.get_origin(args[1]) is list:
        return {key: list(value) + ["okay"] for key, value in current.items()}
    if origin is dict and args[1] is float:
        first = next(iter(current))
        return {**current, first: current[first] * 2 + 1}
    raise AssertionError(f"no automatic value for {tp}: add one to hand_values")


def lookup(config: object, path: str) -> object:
    for key in path.split("."):
        config = getattr(config, key) if config is not None else None
    return config


def assign(raw: dict, path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        if not isinstance(raw.get(key), dict):
            raw[key] = {}
        raw = raw[key]
    raw[leaf] = value


def matches(path: str, patterns: dict) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(path, p)), None)


def consumer(path: str) -> str:
    return next(stage for key, stage in CONSUMERS.items()
                if path == key or (key.endswith(".") and path.startswith(key)))


def started_server(config: ExperimentConfig, section: str) -> list[str] | None:
    """The command line of the server `section` starts, or None when it starts none."""
    server = {
        "eval.server": config.eval.server if config.eval.backend == "endpoint" else None,
        "backend.server": config.backend.server if config.backend.kind == "endpoint" else None,
        "judge.server": config.judge.server if config.judge_enabled and not config.judge.endpoint else None,
    }[section]
    return None if server is None else server_command("the-model", server, 8000)


@pytest.fixture(scope="module")
def walk(tmp_path_factory, data_dir):
    """Loads examples/tiny.yaml with one change and says what the change did."""
    tmp = tmp_path_factory.mktemp("fields")
    base = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    base.update(out_dir=str(tmp / "exp"), data_dir=str(data_dir))
    hand = hand_values(tmp, data_dir)

    def load(raw: dict, name: str) -> ExperimentConfig:
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_experiment(path)

    def change(path: str) -> tuple[str, object]:
        context = next((c for prefix, c in CONTEXT.items() if path.startswith(prefix)), {})
        before_raw = copy.deepcopy(base)
        for key, value in context.items():
            assign(before_raw, key, value)
        before = load(before_raw, "before")
        tp = dict(FIELDS)[path]
        value = hand.get(path, None)
        if path not in hand:
            value = other_value(tp, lookup(before, path))
        after_raw = copy.deepcopy(before_raw)
        for key, item in (value.items() if isinstance(value, Together) else [(path, value)]):
            assign(after_raw, key, item)
        try:
            after = load(after_raw, "after")
        except UserError as exc:
            return "refused", str(exc)
        return "loaded", (before, after)

    return change


def own_inputs(config: ExperimentConfig) -> dict[str, dict]:
    return {s.name: {k: v for k, v in s.inputs.items() if k != "upstream"} for s in plan_stages(config)[0]}


def changed_stages(before: ExperimentConfig, after: ExperimentConfig) -> set[str]:
    old, new = own_inputs(before), own_inputs(after)
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


@pytest.mark.parametrize("path", [path for path, _ in FIELDS])
def test_every_field_changes_its_stage_or_its_server_or_is_refused_by_name(walk, path, monkeypatch):
    monkeypatch.setattr(harness.serving.serve, "_console_script", lambda name: name)  # vllm need not be installed
    outcome, detail = walk(path)
    if refusal := matches(path, EXPECTED_REFUSALS):
        assert outcome == "refused", f"{path} loaded, but should be refused: {EXPECTED_REFUSALS[refusal]}"
        assert path in detail and "\n" not in detail, detail
        return
    assert outcome == "loaded", f"{path} was refused: {detail}"
    before, after = detail
    server = next((s for prefix, s in SERVERS.items() if path.startswith(prefix)), None)
    reached_server = server is not None and started_server(before, server) != started_server(after, server)
    changed = changed_stages(before, after)
    reached_stage = any(name.startswith(consumer(path)) for name in changed)
    if matches(path, NO_EFFECT_ON_RESULTS):
        assert not reached_stage and not reached_server, f"{path} is allow-listed but changes {changed or server}"
    elif server and path.startswith(server + "."):
        assert reached_server, f"{path} changes no server command (stages changed: {sorted(changed)})"
    else:
        assert reached_stage or reached_server, f"{path} changes no {consumer(path)} stage nor server: {changed}"


def test_every_listed_exception_names_a_real_field():
    paths = [path for path, _ in FIELDS]
    for pattern in {**NO_EFFECT_ON_RESULTS, **EXPECTED_REFUSALS, **dict.fromkeys(CONTEXT)}:
        assert any(fnmatch.fnmatchcase(p, pattern) or p.startswith(pattern) for p in paths), pattern


def test_a_partial_judge_server_section_keeps_the_judge_servers_kind(data_dir, tmp_path):
    raw = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    raw.update(out_dir=str(tmp_path / "exp"), data_dir=str(data_dir))
    raw["judge"]["server"] = {"torch_threads": 1}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_experiment(path).judge.server.kind == "inprocess"

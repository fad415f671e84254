"""`selflengthen judge`: put an LLM judge behind an endpoint and grade a run's answers.

On CPU the judge runs on the in-process server (`selflengthen serve`), which honours each
request's sampling, the rubric's JSON schema and logprobs (so scores are probability-weighted);
on GPU on vLLM. A transformers server cannot do either and, with continuous batching, keeps the
first request's sampling, so the reliability pass gets a server of its own there. Each judged
run also gets the sanity check (degraded answers must score lower) and a trust verdict per task;
pairwise mode compares a run with the base arm's answers. Judgements are cached per run
directory, so a re-run or a crash costs nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape

from harness.errors import UserError
from harness.serving.client import EndpointClient
from harness.serving.models import DEFAULT_MODEL, resolve_model
from harness.serving.serve import Endpoint, ServerConfig, check_reachable, serve
from infra.compute import compute_threads
from infra.journal import json_object
from infra.journal import write_json_atomically as write_json
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.judgements import ProgressOption, judge_scores
from judges.pairwise import PairwiseConfig, judge_pairwise
from judges.reliability import ReliabilityConfig, measure_reliability
from judges.sanity import SanityConfig, check_sanity
from judges.trust import with_trust

JUDGE_CACHE = "judge_cache.sqlite"
JUDGE_SANITY = "judge_sanity.json"
JUDGE_RELIABILITY = "judge_reliability.json"
JUDGE_PAIRWISE = "pairwise.json"


@dataclass
class JudgeRunConfig(JudgeConfig):
    """The judge (every `judges.config.JudgeConfig` field, inherited, not copied) and where it runs.

    Fields added here:
        endpoint: base URL of a running judge server; None starts one with `server`.
        api_key_env: environment variable with that server's API key (only with `endpoint`).
        server: how to start the judge's server. Not continuous batching by default: such a
            transformers server fixes sampling from its first (greedy) request, so retries at
            `retry_temperature` would silently repeat the greedy configuration.
        repeat: re-judge a subset this many times and report agreement (0: off; else at least 2).
        repeat_subset: samples per task re-judged.
        sanity_subset: answers per task degraded for the sanity check (0: off; the quality column is
            then marked unreliable, as nothing shows the judge can see quality).
        sanity_scope: `every_run` degrades each run's own answers; `base` (`run` only) degrades the
            base arm's answers once and gives every run that verdict. The check asks whether the
            judge sees quality on a task, so one measurement serves all arms at a fraction of the calls.
        pairwise: also compare each run with the base arm's answers in both orders (`run` only).
    `cache_path` is set per run directory and refused here.
    """

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Judge model: Hub id, local path or smollm2-135m."})
    endpoint: str | None = field(default=None, metadata={"help": "Base URL of a running judge server."})
    api_key_env: str | None = field(default=None, metadata={"help": "Env var with the judge endpoint's API key."})
    server: ServerConfig = field(default_factory=lambda: ServerConfig(kind="inprocess"),
                                 metadata={"help": "How to start the judge server (CPU: inprocess; GPU: vllm)."})
    repeat: int = field(default=0, metadata={"help": "Re-judge a subset R times and report agreement (0: off)."})
    repeat_subset: int = field(default=20, metadata={"help": "Samples per task re-judged when repeat > 1."})
    sanity_subset: int = field(default=20, metadata={"help": "Answers per task degraded for the sanity check (0: off)."})
    sanity_scope: Literal["every_run", "base"] = field(
        default="every_run", metadata={"help": "Whose answers the sanity check degrades: each run's own, or once "
                                               "the base arm's for every run (`run` only)."})
    pairwise: bool = field(default=False, metadata={"help": "Also judge each run against the base arm, both orders."})

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except JudgeError as exc:
            raise UserError(str(exc).replace("JudgeConfig.", "judge.")) from None
        if self.repeat == 1 or self.repeat < 0:
            raise UserError(f"judge.repeat must be 0 (off) or at least 2, got {self.repeat}")
        if self.repeat_subset < 1:
            raise UserError(f"judge.repeat_subset must be at least 1, got {self.repeat_subset}")
        if self.sanity_subset == 1 or self.sanity_subset < 0:
            raise UserError(f"judge.sanity_subset must be 0 (off) or at least 2, got {self.sanity_subset}")
        if self.sanity_scope not in ("every_run", "base"):
            raise UserError(f"judge.sanity_scope must be every_run or base, got {self.sanity_scope!r}")
        if self.sanity_scope == "base" and not self.sanity_subset:
            raise UserError("judge.sanity_scope is not used with judge.sanity_subset: 0 (no sanity check); remove it")
        if self.cache_path is not None:
            raise UserError("judge.cache_path is set per run directory (judge_cache.sqlite there); remove it")
        if self.api_key_env and not self.endpoint:
            raise UserError("judge.api_key_env is only used with judge.endpoint")
        if self.endpoint and self.server != JudgeRunConfig.__dataclass_fields__["server"].default_factory():
            raise UserError("judge.server is not used with judge.endpoint (the harness starts no judge server)")
        if (not self.endpoint and self.server.kind == "transformers" and self.server.continuous_batching
                and self.max_retries > 0 and self.retry_temperature > 0):
            raise UserError("judge.retry_temperature cannot be honoured: a transformers server with continuous "
                            "batching keeps the first (greedy) request's sampling; set judge.server."
                            "continuous_batching: false, or judge.max_retries: 0")


def check_rubric(rubric: str, field_name: str = "rubric") -> None:
    """'auto', a packaged rubric or a readable rubric YAML; anything else is refused before a judge starts."""
    if rubric == "auto":
        return
    from judges.rubric import load_rubric

    try:
        load_rubric(rubric)
    except JudgeError as exc:
        raise UserError(f"{field_name}: {exc}") from None


@contextlib.contextmanager
def judge_endpoint(config: JudgeRunConfig, log_path: Path, busy_processes: int = 1) -> Iterator[Endpoint]:
    """The judge's endpoint: the given one, or a local server started for the block."""
    if config.endpoint:
        endpoint = Endpoint(base_url=config.endpoint.rstrip("/"), model=config.model, api_key_env=config.api_key_env)
        check_reachable(endpoint)
        yield endpoint
        return
    server = config.server
    if server.torch_threads is None:
        server = dataclasses.replace(server, torch_threads=compute_threads(busy_processes))
    with serve(resolve_model(config.model), server, log_path=log_path) as endpoint:
        yield endpoint


def judge_run(run_dir: Path, endpoint: Endpoint, config: JudgeRunConfig, console: Console | None = None,
              sanity_from: Path | None = None, progress: ProgressOption = True, tasks: list[str] | None = None) -> dict:
    """Grade `run_dir/scores.json` into `run_dir/judgements.json`, with the sanity check and a trust verdict per task.

    `sanity_from`: a run directory whose sanity report (judged already) this run's trust uses instead
    of degrading its own answers; the copy names where it came from. `progress`: a rich Progress
    shared with runs judged at the same time, or True for bars of its own. `tasks`: grade only these
    (`run` judges each task as a stage of its own); the reports keep the run's other tasks' entries,
    and every task's trust is given again from the merged reports. None: every task, nothing kept.
    """
    console = console or Console(stderr=True)
    scores, keep, judge_config = _inputs(run_dir, config, tasks)
    if sanity_from is not None and not (sanity_from / JUDGE_SANITY).is_file():
        raise UserError(f"{sanity_from / JUDGE_SANITY} not found: judge {sanity_from} first (judge.sanity_scope: base)")
    judged = _run(functools.partial(judge_scores, progress=progress), scores, endpoint, judge_config)
    if not judged["tasks"]:
        raise UserError(f"nothing to judge in {run_dir / 'scores.json'}: no task has both samples and a rubric "
                        f"(judge.rubric: {config.rubric})")
    sanity = None
    if sanity_from is not None:
        sanity = _sanity_of(sanity_from, list(judged["tasks"]))
    elif config.sanity_subset:
        sanity = _run(functools.partial(check_sanity, progress=progress), scores, endpoint, judge_config,
                      SanityConfig(subset_size=config.sanity_subset))
    if sanity is not None:
        sanity = _merged(run_dir / JUDGE_SANITY, sanity, keep)
        write_json(run_dir / JUDGE_SANITY, sanity)
    judgements = with_trust(_merged(run_dir / "judgements.json", judged, keep), sanity,
                            _read_optional(run_dir / JUDGE_RELIABILITY))
    write_json(run_dir / "judgements.json", judgements)
    if judgements["judge"].get("schema_refused"):
        console.print(escape(f"the judge endpoint refused the rubric's JSON schema "
                             f"({judgements['judge']['schema_refused']}); replies were free text, parsed"),
                      highlight=False)
    for task in judged["tasks"]:
        entry = judgements["tasks"][task]
        trust = entry["trust"]
        verdict = "reliable" if trust["reliable"] else "unreliable: " + "; ".join(trust["unreliable_reasons"])
        parsed_only = (f"; {entry['without_logprobs']} scored from the parsed reply (the endpoint returned no "
                       "logprobs)") if entry.get("without_logprobs") else ""
        console.print(escape(f"{task}: S_q={_fmt(entry['S_q'])} over {entry['n'] - entry['failures']}/{entry['n']} "
                             f"judged ({entry['failures']} failures{parsed_only}); judge {verdict}"), highlight=False)
    return judgements


def judge_reliability(run_dir: Path, endpoint: Endpoint, config: JudgeRunConfig, console: Console | None = None,
                      tasks: list[str] | None = None) -> dict:
    """Re-judge a subset `config.repeat` times into `run_dir/judge_reliability.json`; the agreement joins the trust.

    `tasks`: re-judge only these, keeping the report's entries of the run's other tasks (as `judge_run`).
    """
    console = console or Console(stderr=True)
    scores, keep, judge_config = _inputs(run_dir, config, tasks)
    reliability = ReliabilityConfig(repeats=config.repeat, subset_size=config.repeat_subset)
    measured = _run(measure_reliability, scores, endpoint, judge_config, reliability)
    report = _merged(run_dir / JUDGE_RELIABILITY, measured, keep)
    write_json(run_dir / JUDGE_RELIABILITY, report)
    judgements = _read_optional(run_dir / "judgements.json")
    if judgements is not None:
        write_json(run_dir / "judgements.json", with_trust(judgements, _read_optional(run_dir / JUDGE_SANITY), report))
    for task, entry in measured["tasks"].items():
        agreement = json.dumps({k: v for k, v in entry.items() if k != "samples"})
        console.print(escape(f"{task}: judge agreement {agreement}"), highlight=False)
    return report


def judge_against_reference(run_dir: Path, reference_dir: Path, endpoint: Endpoint, config: JudgeRunConfig,
                            console: Console | None = None, tasks: list[str] | None = None) -> dict:
    """Pairwise: each answer of `run_dir` against `reference_dir`'s on the same prompt, in both orders (pairwise.json).

    `tasks`: compare only these, keeping the report's entries of the run's other tasks (as `judge_run`).
    """
    console = console or Console(stderr=True)
    scores, keep, judge_config = _inputs(run_dir, config, tasks)
    reference, _, _ = _inputs(reference_dir, config)
    compare = lambda answers, client, settings: judge_pairwise(answers, reference, client, settings, PairwiseConfig())  # noqa: E731
    compared = _run(compare, scores, endpoint, judge_config)
    compared["reference"] = reference.get("model")
    write_json(run_dir / JUDGE_PAIRWISE, _merged(run_dir / JUDGE_PAIRWISE, compared, keep))
    for task, entry in compared["tasks"].items():
        console.print(escape(f"{task}: against {compared['reference']}: win rate {_fmt_rate(entry.get('win_rate'))} "
                             f"{entry.get('win_rate_ci')}, length-controlled {_fmt_rate(entry.get('lc_win_rate'))}, "
                             f"position bias {_fmt_rate(entry.get('position_bias_rate'))}"), highlight=False)
    return compared


def reliability_server(config: JudgeRunConfig) -> JudgeRunConfig:
    """The judge config for repeats that must really sample: no shared generation config."""
    if config.endpoint or config.server.kind != "transformers":
        return config
    return dataclasses.replace(config, server=dataclasses.replace(config.server, continuous_batching=False))


def judge_servers(config: JudgeRunConfig, passes: list[str]) -> list[tuple[JudgeRunConfig, list[str]]]:
    """The judge servers these passes (judge, judge_repeat, judge_pairwise) need, in order, each with its passes.

    A 72B judge loads for minutes, so passes whose judge config is the same share one server: all of
    them, except on a transformers server, whose sampled repeats need one without continuous batching.
    """
    servers: list[tuple[JudgeRunConfig, list[str]]] = []
    for kind in passes:
        judge = reliability_server(config) if kind == "judge_repeat" else config
        shared = next((kinds for server, kinds in servers if server == judge), None)
        if shared is None:
            servers.append((judge, [kind]))
        else:
            shared.append(kind)
    return servers


def judge_and_repeat(run_dirs: list[Path], config: JudgeRunConfig, console: Console) -> None:
    """`selflengthen judge`: every run judged, then its repeats with `config.repeat`, on the servers `judge_servers`
    gives (one for both, as in `run`, unless a transformers server's repeats need their own)."""
    steps = {"judge": judge_run, "judge_repeat": judge_reliability}
    for judge, passes in judge_servers(config, ["judge", *(["judge_repeat"] if config.repeat else [])]):
        with judge_endpoint(judge, run_dirs[0] / f"{passes[0]}_server.log") as endpoint:
            for kind in passes:
                for run_dir in run_dirs:
                    steps[kind](run_dir, endpoint, judge, console)


def _inputs(run_dir: Path, config: JudgeRunConfig, tasks: list[str] | None = None
            ) -> tuple[dict, list[str], JudgeConfig]:
    """The run's scores (only `tasks`' when given), the run's other tasks (whose report entries are kept), and
    the judges' config."""
    scores_path = run_dir / "scores.json"
    if not scores_path.is_file():
        raise UserError(f"{scores_path} not found: run `selflengthen eval --out {run_dir}` first")
    scores = json.loads(scores_path.read_text(encoding="utf-8"))
    if tasks is None:
        return scores, [], judge_settings(config, run_dir)
    every = scores.get("tasks") if isinstance(scores.get("tasks"), dict) else {}
    missing = [task for task in tasks if task not in every]
    if missing:
        raise UserError(f"{scores_path} holds no scores for {', '.join(missing)}: score them first")
    return ({**scores, "tasks": {task: every[task] for task in tasks}}, [task for task in every if task not in tasks],
            judge_settings(config, run_dir))


def _merged(path: Path, report: dict, keep: list[str]) -> dict:
    """`report` with the entries the report at `path` holds for the tasks in `keep` (judged by stages of their own),
    tasks in name order; an unreadable earlier report keeps none (their stages then plan todo and rewrite them)."""
    earlier = json_object(path, "tasks")
    kept = {task: earlier[task] for task in keep if task in earlier}
    return {**report, "tasks": dict(sorted({**kept, **report["tasks"]}.items()))}


def _sanity_of(run_dir: Path, tasks: list[str]) -> dict:
    """The sanity report of `run_dir` (the base arm's, judge.sanity_scope: base) for `tasks`, naming its source."""
    report = json.loads((run_dir / JUDGE_SANITY).read_text(encoding="utf-8"))
    missing = [task for task in tasks if task not in report.get("tasks", {})]
    if missing:
        raise UserError(f"{run_dir / JUDGE_SANITY} has no sanity check of {', '.join(missing)}: judge {run_dir} "
                        "on it first (judge.sanity_scope: base)")
    return {**report, "tasks": {task: report["tasks"][task] for task in tasks}, "answers_from": run_dir.name}


def judge_settings(config: JudgeRunConfig, run_dir: Path) -> JudgeConfig:
    """The judges package's config: every JudgeConfig field of `config`, with the run's cache file."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(JudgeConfig)}
    return JudgeConfig(**{**values, "cache_path": str(run_dir / JUDGE_CACHE)})


_steps_lock = threading.Lock()
_steps: set[tuple[asyncio.AbstractEventLoop, asyncio.Task]] = set()
"""The judging steps running now, each in its own thread's event loop."""
_stopping = threading.Event()


@contextlib.contextmanager
def stop_judging_threads_on_error() -> Iterator[None]:
    """An exception in the block (Ctrl-C, SIGTERM or a failure) cancels the judging steps of every thread.

    A thread pool's exit waits for its threads; without this an interrupted `run` ended only when all
    judging had. Cancelled steps stop within moments: replies already cached stay in the judge cache
    (each one a committed SQLite row), no judgements.json is written, and a re-run resumes from the cache.
    """
    _stopping.clear()
    try:
        yield
    except BaseException:
        _stopping.set()
        with _steps_lock:
            for loop, task in _steps:
                loop.call_soon_threadsafe(task.cancel)
        raise


def _run(step, scores: dict, endpoint: Endpoint, judge_config: JudgeConfig, *extra):
    async def go():
        entry = (asyncio.get_running_loop(), asyncio.current_task())
        with _steps_lock:
            if _stopping.is_set():  # started after the others were cancelled
                raise asyncio.CancelledError
            _steps.add(entry)
        client = EndpointClient(endpoint, max_concurrency=judge_config.max_concurrency)
        try:
            return await step(scores, client, judge_config, *extra)
        finally:
            with _steps_lock:
                _steps.discard(entry)
            await client.close()

    try:
        return asyncio.run(go())
    except JudgeError as exc:
        raise UserError(str(exc)) from None


def _read_optional(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _fmt_rate(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"

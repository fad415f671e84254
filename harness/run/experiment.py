"""`selflengthen run EXPERIMENT.yaml`: train every arm, score every checkpoint, judge, rank.

Arms: the base model, Self-Lengthen's iteration Generators 1..K and its final model (the base
fine-tuned on the length-following data: the paper's headline model), instruction backtranslation and
behaviour imitation. Each stage leaves its outputs in `out_dir` with a fingerprint of what produced them
(harness/run/stages.py): a stage whose fingerprint still matches is skipped, one whose settings or
inputs changed is stale and redone with everything downstream of it, so the same command resumes
after a crash and after the config changes (`--plan` shows which stages would run):

    out_dir/train/<arm>/          synthesis, data and adapters of each trained arm
    out_dir/runs/<checkpoint>/    one run directory per scored checkpoint (docs/run_directory.md)
    out_dir/leaderboard/          leaderboard.json (the truth), .md and .html
    out_dir/experiment.json       what was trained and scored, and what was skipped and why
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from harness.errors import UserError
from harness.run.experiment_config import ExperimentConfig, eval_config
from harness.run.plan import arm_settings, imitation_instructions, plan_stages, slug, task_stage, training_config
from harness.run.stages import DONE, StageRecorder, redo_stale
from harness.run.train import FINAL_ARM, checkpoint_arm, matched_data, run_training
from harness.scoring.evaluate import check_tasks, run_eval
from harness.scoring.judging import (JudgeRunConfig, judge_against_reference, judge_endpoint, judge_reliability,
                                     judge_run, judge_servers, stop_judging_threads_on_error)
from harness.serving.models import check_model_available, merge_once, resolve_model
from harness.synthesis.backends import role_backends
from infra.journal import iter_jsonl, json_object
from infra.journal import write_json_atomically as write_json
from selflengthen.baselines import (
    build_backtranslation_data,
    build_imitation_data,
    finished_data_result,
    train_baseline,
    trained_stats,
    why_no_samples,
)
from selflengthen.length_demand import length_demand_share


@dataclasses.dataclass
class ScoredCheckpoint:
    """A checkpoint to score and the run.json fields that say where it came from."""

    name: str
    path: str
    arm: str
    iteration: int | None = None
    train_stats: dict | None = None


def run_experiment(config: ExperimentConfig, console: Console | None = None) -> dict:
    """Redo what is stale, train what is missing, score, judge, render the board.

    `config` comes from `harness.run.experiment_config.load_experiment` (validated, data folder explicit).
    """
    console = console or Console(stderr=True)
    check_model_available(config.model, "model")
    if config.judge_enabled and not config.judge.endpoint:
        check_model_available(config.judge.model, "judge.model")
    check_tasks(config.tasks, config.data_dir)
    recorder = redo_stale(plan_stages(config)[0], console)
    out = Path(config.out_dir)
    base = resolve_model(config.model)
    checkpoints, skipped = train_arms(config, base, out, console, recorder)
    run_dirs = [score_checkpoint(c, config, out / "runs" / slug(c.name), console, recorder) for c in checkpoints]
    if config.judge_enabled:
        judge_runs(config, checkpoints, run_dirs, out, console, recorder)
    with recorder.stage("leaderboard"):
        paths = render_leaderboard(run_dirs, out / "leaderboard", console)
    summary = {
        "checkpoints": [dataclasses.asdict(c) for c in checkpoints],
        "skipped": skipped,
        "leaderboard": {kind: str(path) for kind, path in paths.items()},
    }
    write_json(out / "experiment.json", summary)
    return summary


def train_arms(config: ExperimentConfig, base: str, out: Path, console: Console, recorder: StageRecorder
               ) -> tuple[list[ScoredCheckpoint], dict[str, str]]:
    """Every enabled arm's checkpoints, training what is missing; arms without data are skipped, with why."""
    checkpoints: list[ScoredCheckpoint] = []
    skipped: dict[str, str] = {}
    if config.arms.base:
        checkpoints.append(ScoredCheckpoint("base", base, "base"))
    if config.arms.self_lengthen:
        outcome = run_training(training_config(config), console, recorder)
        if outcome.stop_reason:
            skipped["self_lengthen"] = f"stopped after {len(outcome.checkpoints)} iteration(s): {outcome.stop_reason}"
            console.print(f"[yellow]self_lengthen stopped early:[/] {escape(outcome.stop_reason)}")
        if outcome.final_skipped:
            skipped[FINAL_ARM] = outcome.final_skipped
            console.print(f"[yellow]{FINAL_ARM} skipped:[/] {escape(outcome.final_skipped)}")
        checkpoints += [ScoredCheckpoint(f"self_lengthen/{c.name}", c.path, checkpoint_arm(c.iteration), c.iteration,
                                         c.train_stats) for c in outcome.checkpoints]
    for arm in ("backtranslation", "imitation"):
        if not getattr(config.arms, arm):
            continue
        checkpoint, skip_reason = train_baseline_arm(arm, config, base, out / "train" / arm, console, recorder)
        if checkpoint is not None:
            checkpoints.append(checkpoint)
        else:
            skipped[arm] = skip_reason
            console.print(f"[yellow]{arm} skipped:[/] {escape(skip_reason)}")
    return checkpoints, skipped


def train_baseline_arm(arm: str, config: ExperimentConfig, base: str, work: Path, console: Console,
                       recorder: StageRecorder) -> tuple[ScoredCheckpoint | None, str | None]:
    """Build the baseline's data with the base model, fine-tune and merge: the checkpoint, or why there is none."""
    settings = arm_settings(config, arm)
    if arm == "imitation" and settings.instructions_file is None and config.arms.self_lengthen:
        instructions = imitation_instructions(config)
        if _has_instructions(instructions):
            settings = dataclasses.replace(settings, instructions_file=str(instructions))
    with recorder.stage(f"{arm}/data"):
        data = finished_data_result(work)
        if data is None:
            build = build_backtranslation_data if arm == "backtranslation" else build_imitation_data
            with console.status(f"{arm}: building training data"), _base_backend(base, config, work,
                                                                                 settings.max_in_flight) as model:
                data = asyncio.run(build(model, settings, work))
    if why_no_samples(data):
        return None, why_no_samples(data)
    trained = recorder.stages[f"{arm}/train"].status == DONE  # its stats are in stats.json; nothing is rewritten
    data_file, matched = matched_data(data.data_file, config.matched_budget, settings.seed, arm)
    with recorder.stage(f"{arm}/train"):
        with console.status(f"{arm}: fine-tuning"):
            train_stats = trained_stats(work) if trained else train_baseline(work, base, settings.train,
                                                                             data_file=data_file)
        merged = merge_once(base, work / "adapter", work / "merged")
    training = train_stats["training"]  # what was trained on: the data run's samples, or their matched subsample
    train_stats = {**train_stats, "samples": training["samples"], "answer_words_mean": training["answer_words_mean"],
                   "length_demands": length_demand_share(data_file), "matched_budget": matched}
    return ScoredCheckpoint(arm, str(merged), arm, None, train_stats), None


@contextlib.contextmanager
def _base_backend(base: str, config: ExperimentConfig, work: Path, max_in_flight: int) -> Iterator:
    with role_backends(base, {"generator": None, "extender": None}, config.backend, work, max_in_flight) as (model, _):
        yield model


def score_checkpoint(checkpoint: ScoredCheckpoint, config: ExperimentConfig, run_dir: Path, console: Console,
                     recorder: StageRecorder) -> Path:
    """Evaluate one checkpoint on the tasks whose scoring stage is not done, with one server, into its run
    directory (lm-eval's cache resumes a half-done one); scores.json keeps the done tasks' scores beside them.

    A task whose scores are missing from scores.json is not done (`Stage.entries`), so it is among those
    scored here: no task's scores are dropped by the rewrite.
    """
    todo = _not_done(recorder, "score", config.tasks, checkpoint.name)
    if not todo:
        return run_dir
    console.rule(escape(f"scoring {checkpoint.name}" + ("" if list(todo) == list(config.tasks) else
                                                        f" on {', '.join(todo)}")))
    earlier = json_object(run_dir / "scores.json", "tasks")
    kept = {task: earlier[task] for task in config.tasks if task not in todo}
    run_info = {"model": checkpoint.name, "arm": checkpoint.arm, "iteration": checkpoint.iteration,
                "train_stats": checkpoint.train_stats}
    with _recorded(recorder, todo.values()):
        scores = run_eval(dataclasses.replace(eval_config(config, checkpoint.path), tasks=list(todo)), run_dir,
                          console, run_info=run_info)
        write_json(run_dir / "scores.json", {**scores, "tasks": dict(sorted({**kept, **scores["tasks"]}.items()))})
        write_json(run_dir / "run.json", {**json_object(run_dir / "run.json"), "tasks": list(config.tasks)})
    return run_dir


def _not_done(recorder: StageRecorder, kind: str, tasks: list[str], checkpoint: str) -> dict[str, str]:
    """The `kind` stages of `checkpoint` the plan declares and that are not done, by task (a task the judge
    cannot grade has no judge stage)."""
    names = {task: task_stage(kind, task, checkpoint) for task in tasks}
    return {task: name for task, name in names.items() if name in recorder.stages
            and recorder.stages[name].status != DONE}


@contextlib.contextmanager
def _recorded(recorder: StageRecorder, names) -> Iterator[None]:
    """The block recorded as each of these stages: one call runs them together (one server, one report file)."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(recorder.stage(name))
        yield


def judge_runs(config: ExperimentConfig, checkpoints: list[ScoredCheckpoint], run_dirs: list[Path], out: Path,
               console: Console, recorder: StageRecorder) -> None:
    """Judge each run's tasks not judged yet (with the sanity check), then the reliability repeats and pairwise
    passes; each report keeps the entries of the tasks judged before.

    Passes that can share a judge server share one (`judge_servers`: all of them but a transformers
    server's repeats): a 72B judge loads for minutes. Each server is closed before the next starts.
    """
    base_dir = next((d for c, d in zip(checkpoints, run_dirs) if c.arm == "base"), None)

    def against_base(run_dir, endpoint, judge, console, tasks):
        return judge_against_reference(run_dir, base_dir, endpoint, judge, console, tasks)

    steps = {"judge_repeat": judge_reliability, "judge_pairwise": against_base}
    kinds = ["judge", *(["judge_repeat"] if config.judge.repeat else []),
             *(["judge_pairwise"] if config.judge.pairwise and base_dir is not None else [])]
    for judge, passes in judge_servers(config.judge, kinds):
        todo = {kind: [(stages, d, c.arm == "base") for c, d in zip(checkpoints, run_dirs)
                       if (stages := _not_done(recorder, kind, config.tasks, c.name))]
                for kind in passes}
        if not any(todo.values()):
            continue
        with judge_endpoint(judge, out / f"{passes[0]}_server.log") as endpoint:
            for kind, items in [(kind, items) for kind, items in todo.items() if items]:
                console.rule(f"{kind.replace('_', ' ')}: {len(items)} run(s) with {escape(judge.model)}")
                if kind != "judge":
                    for stages, run_dir, _ in items:
                        with _recorded(recorder, stages.values()):
                            steps[kind](run_dir, endpoint, judge, console, tasks=list(stages))
                    continue
                first = [item for item in items if item[2] and judge.sanity_scope == "base"]  # others copy its sanity
                for group in (first, [item for item in items if item not in first]):
                    judge_together(group, endpoint, judge, console, recorder,
                                   base_dir if judge.sanity_scope == "base" else None)


def judge_together(todo: list[tuple[dict[str, str], Path, bool]], endpoint, judge: JudgeRunConfig, console: Console,
                   recorder: StageRecorder, sanity_from: Path | None) -> None:
    """Judge these runs at the same time, one thread each, so the judge server batches all their requests.

    Each item is a run's judge stages not done (by task), its folder, and whether it is the base arm's.
    A decode step of a few rows costs about as much as one of many on a CPU, so judging the runs one
    after another left the server mostly idle. Each run's stages record their own (overlapping) seconds.
    """
    if not todo:
        return

    def one(stages: dict[str, str], run_dir: Path, is_base: bool, progress: Progress) -> None:
        with _recorded(recorder, stages.values()):
            judge_run(run_dir, endpoint, judge, console, None if is_base else sanity_from, progress, tasks=list(stages))

    with (Progress(console=console) as progress, ThreadPoolExecutor(max_workers=len(todo)) as pool,
          stop_judging_threads_on_error()):  # exits first: the pool's exit then waits moments, not for all judging
        for future in [pool.submit(one, *item, progress) for item in todo]:
            future.result()


def render_leaderboard(run_dirs: list[Path], out: Path, console: Console) -> dict[str, Path]:
    from leaderboard.board import load_leaderboard
    from leaderboard.errors import LeaderboardError
    from leaderboard.publish import publish
    from leaderboard.render_terminal import print_leaderboard
    from tasks.metadata import declared_demand_ranges

    try:
        paths = publish(run_dirs, None, out, declared_demand_ranges())
    except LeaderboardError as exc:
        raise UserError(str(exc)) from None
    print_leaderboard(load_leaderboard(paths["json"]), console)
    console.print(escape(f"leaderboard: {paths['markdown']} and {paths['html']}"))
    return paths


def _has_instructions(path: Path) -> bool:
    return path.is_file() and any(record.get("instruction") for _, record in iter_jsonl(path, UserError))

"""lm-eval as the harness drives it: known tasks, generation with progress, its files in the run directory.

lm-eval's request cache lives in `lm_dir`, so generating again into the same folder resumes an
interrupted eval without sending finished requests again; its long log goes to `lm_eval.log`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import UserError, root_cause_line
from infra.journal import write_json_atomically as write_json
from infra.journal import write_jsonl_atomically


@dataclass(frozen=True)
class GenerationRequest:
    """What lm-eval generates with: its model name and arguments, gen_kwargs, the tasks and the limit.

    `seed` is lm-eval's global torch seed: the one its in-process hf backend samples from.
    """

    lm_name: str
    lm_args: dict
    gen_kwargs: dict
    tasks: list[str]
    limit: int | None
    seed: int = 0


def tasks_dir() -> Path:
    import tasks

    return Path(tasks.__file__).resolve().parent


def check_tasks(tasks: list[str], data_dir: str | Path | None):
    """lm-eval's task manager, once every name in `tasks` is known to it (else a one-line error)."""
    task_manager = _task_manager(Path(data_dir) if data_dir else None)
    unknown = [t for t in tasks if t not in task_manager.all_tasks]
    if unknown:
        ours = sorted(n for n in task_manager.all_tasks if n.startswith(("longen", "longbench", "longwrite")))
        raise UserError(f"unknown task {unknown[0]!r}; available: {', '.join(ours)}")
    return task_manager


def generate_answers(request: GenerationRequest, task_manager, lm_dir: Path, console: Console,
                     data_dir: Path | None) -> dict[str, list]:
    """lm-eval's logged samples per task; results.json, samples_*.jsonl and lm_eval.log go into `lm_dir`.

    Each sample gets the endpoint's `finish_reason` ('length': cut by the token cap; None where unknown,
    as with lm-eval's in-process backends). The reasons are journaled as replies arrive, in a file named
    like lm-eval's request cache so that a resumed or re-scored eval keeps them with the cached answers.
    """
    import lm_eval
    import lm_eval.evaluator

    import harness.scoring.lm_eval_model as progress_model
    from infra.journal import Journal

    lm_dir.mkdir(parents=True, exist_ok=True)
    _log_lm_eval_to(lm_dir / "lm_eval.log")
    finish_reasons = Journal(lm_dir / "requests_cache_finish_reasons.jsonl")
    progress_model.set_finish_reason_recorder(
        lambda contexts, answers, reasons: _record_finish_reasons(finish_reasons, contexts, answers, reasons))
    columns = (TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("requests", total=_request_count(request.tasks, request.limit, data_dir))
        progress_model.set_progress_callback(lambda: progress.advance(bar))
        try:
            with mock.patch.object(lm_eval.evaluator, "get_git_commit_hash", _quiet_git_hash):
                results = lm_eval.simple_evaluate(
                    model=request.lm_name,
                    model_args=request.lm_args,
                    tasks=list(request.tasks),
                    limit=request.limit,
                    use_cache=str(lm_dir / "requests_cache"),
                    log_samples=True,
                    apply_chat_template=request.lm_name == "selflengthen-chat",
                    gen_kwargs=request.gen_kwargs or None,
                    task_manager=task_manager,
                    bootstrap_iters=0,
                    torch_random_seed=request.seed,
                )
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"lm-eval failed: {root_cause_line(exc)}") from None
        finally:
            progress_model.set_progress_callback(None)
            progress_model.set_finish_reason_recorder(None)
            finish_reasons.close()
    if results is None:
        raise UserError("lm-eval returned no results")
    samples = results.pop("samples", {})
    for task_samples in samples.values():
        for sample in task_samples:
            record = finish_reasons.get(_answer_key(sample["arguments"][0][0], sample["resps"][0][0]))
            sample["finish_reason"] = record["finish_reason"] if record else None
    write_json(lm_dir / "results.json", json.loads(json.dumps(results, default=str)))  # lm-eval keeps objects in it
    for task, task_samples in samples.items():  # lm-eval keeps objects in them too
        write_jsonl_atomically(lm_dir / f"samples_{task}.jsonl", json.loads(json.dumps(task_samples, default=str)))
    return samples


def _quiet_git_hash() -> str | None:
    """What lm-eval records as `git_hash`: `git describe` of the working folder, but with git's stderr
    captured (lm-eval leaves it open, so outside a repository the terminal showed `fatal: not a git repository`)."""
    import subprocess

    try:
        found = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip() or None


def _answer_key(context, answer) -> str:
    """One answer to one prompt (a chat prompt is lm-eval's JsonChatStr), as lm-eval's cache pairs them."""
    import hashlib

    text = json.dumps([getattr(context, "prompt", context), answer], ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record_finish_reasons(journal, contexts: list, answers: list, reasons: list) -> None:
    for context, answer, reason in zip(contexts, answers, reasons):
        key = _answer_key(context, answer)
        if key not in journal:  # the same prompt answered alike twice: one record
            journal.append({"key": key, "finish_reason": reason})


def _request_count(tasks: list[str], limit: int | None, data_dir: Path | None) -> int | None:
    """How many answers lm-eval will ask for, for the progress bar (None when unknown)."""
    from tasks.data import load_benchmark

    try:
        sizes = [len(load_benchmark(task, data_dir)) for task in tasks]
    except Exception:  # the bar is a nicety; lm-eval reports real data problems itself
        return None
    return sum(min(size, limit) if limit else size for size in sizes)


def _log_lm_eval_to(path: Path) -> None:
    """lm-eval logs every retry and setting at length: keep it in the run directory, off the terminal."""
    logger = logging.getLogger("lm_eval")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _task_manager(data_dir: Path | None):
    """Our tasks for lm-eval; the data folder reaches the tasks' dataset hook as task metadata.

    lm-eval's own tasks are not indexed: `tasks.scoring` scores only ours, and indexing its
    thousands of task files took 15-18 s on 2 cores for every eval.
    """
    from lm_eval.tasks import TaskManager

    metadata = {"data_dir": str(data_dir.resolve())} if data_dir else None
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)

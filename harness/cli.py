"""The `selflengthen` command line: one subcommand per job, one-line errors, no tracebacks.

Set SELFLENGTHEN_DEBUG=1 (or pass --debug) to see the traceback behind an error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from harness.config import precision_setting
from harness.errors import UserError, describe_input_error, first_line
from tasks.data import pin_data_dir_setting

console = Console(stderr=True)


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line and exit 2 like every other unusable input."""

    def error(self, message: str):
        _print_error(f"{message} (see `{self.prog} --help`)")
        sys.exit(2)


def _path(value: str) -> Path:
    """A path flag's value; an empty one (`--out ''`) is a typo, not the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(value)


def _text(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="Score answers produced elsewhere with a benchmark's published formula.")
    p.add_argument("--task", required=True, help="longen, longbench_write, longbench_write_en (or a *_mini / ruler task)")
    p.add_argument("--input", required=True, type=_path, help="JSONL: rows of the benchmark file plus a `response` field")
    p.add_argument("--output", required=True, type=_path, help="where to write scores.json")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    from harness.tables import print_scores
    from infra.journal import write_json_atomically as write_json
    from tasks.scoring import ScoringInputError, score_file

    if args.output.is_dir():
        raise UserError(f"--output {args.output} is a directory; give the path of the scores file to write")
    try:
        scores = score_file(args.task, args.input)
    except ScoringInputError as exc:
        raise UserError(str(exc)) from None
    write_json(args.output, scores)
    print_scores({"model": args.input.name, "tasks": {args.task: scores}})
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="Generate answers with lm-eval through an endpoint and score them.")
    p.add_argument("--config", type=_path, help="YAML file with EvalConfig fields; flags override it")
    p.add_argument("--model", help="Hub id, local path, or smollm2-135m (the embedded default)")
    p.add_argument("--adapter", type=_text, help="a LoRA adapter folder: merged into --model first, then evaluated")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--endpoint", help="base URL of a running OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    src.add_argument("--serve", choices=["transformers", "inprocess", "vllm"],
                     help="start this server locally (default transformers)")
    src.add_argument("--backend", choices=["hf", "vllm"], help="use lm-eval's in-process backend instead of a server")
    p.add_argument("--api-key-env", help="environment variable holding the endpoint's API key")
    p.add_argument("--tasks", help="comma-separated task names, e.g. longbench_write_en_mini,longen_mini")
    p.add_argument("--limit", type=int, help="documents per task at most")
    p.add_argument("--num-concurrent", type=int, help="requests in flight")
    p.add_argument("--max-gen-toks", type=int, help="cap on answer tokens for every task (default: each task's own)")
    p.add_argument("--seed", type=int, help="seeds each answer's sampler with its prompt (default: the config's, else 0)")
    p.add_argument("--data-dir", type=_text, help="folder with the benchmark .jsonl files (default: SELFLENGTHEN_DATA_DIR, else the Hub)")
    p.add_argument("--out", required=True, type=_path, help="run directory; re-running into it resumes")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    import dataclasses

    from harness.config import from_dict, load_yaml
    from harness.scoring.evaluate import EvalConfig, run_eval, validate_eval
    from harness.tables import print_scores

    data = load_yaml(args.config) if args.config else {}
    config = from_dict(EvalConfig, data, where=args.config.name if args.config else "eval config")
    overrides = {
        "model": args.model,
        "adapter": args.adapter,
        "endpoint": args.endpoint,
        "api_key_env": args.api_key_env,
        "backend": args.backend,
        "tasks": args.tasks.split(",") if args.tasks is not None else None,
        "limit": args.limit,
        "num_concurrent": args.num_concurrent,
        "max_gen_toks": args.max_gen_toks,
        "seed": args.seed,
        "data_dir": args.data_dir,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.serve:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, kind=args.serve))
    validate_eval(config)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    started = time.monotonic()
    scores = run_eval(config, args.out, console)
    print_scores(scores)
    console.print(f"wrote {escape(str(args.out / 'scores.json'))} in {time.monotonic() - started:.0f}s")
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="Run (or resume) K Self-Lengthen iterations and the final model; "
                       "one checkpoint per iteration, then the final one.")
    p.add_argument("config", type=_path, help="YAML file with TrainRunConfig fields (model, backend, method)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from rich.table import Table

    from harness.config import load_config
    from harness.run.train import TrainRunConfig, require_backend_packages, run_training, validate_training
    from harness.serving.models import check_model_available

    config = load_config(TrainRunConfig, args.config)
    validate_training(config)
    require_backend_packages(config.backend)
    _require_seed_files(config.method)
    check_model_available(config.model, "model")  # a Hub id without a cached copy: refused before any work
    outcome = run_training(config, console)
    table = Table(title="registered checkpoints")
    for column in ("checkpoint", "path", "train samples", "train tokens"):
        table.add_column(column)
    for c in outcome.checkpoints:
        table.add_row(Text(c.name), Text(c.path), str(c.train_stats.get("samples")), str(c.train_stats.get("train_tokens")))
    console.print(table)
    if outcome.stop_reason:
        raise UserError(outcome.stop_reason)
    if outcome.final_skipped:
        console.print(f"[yellow]no final model:[/] {escape(outcome.final_skipped)}")
    return 0


def _require_seed_files(method) -> None:
    """Each language's seed instructions load, checked before a model is loaded for minutes."""
    from selflengthen.self_instruct import load_seed_instructions

    for lang in method.languages:
        path = None
        try:
            path = method.seed_file(lang)
            load_seed_instructions(path)
        except UnicodeDecodeError as exc:
            raise UserError(f"seed file {path} is not UTF-8 text (byte offset {exc.start})") from None
        except ValueError as exc:  # missing, malformed or too small: the message names the file and line
            raise UserError(str(exc)) from None


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="The whole experiment: train every arm, score, judge, render the leaderboard.")
    p.add_argument("config", type=_path, help="EXPERIMENT.yaml (ExperimentConfig fields), e.g. examples/tiny.yaml")
    p.add_argument("--plan", action="store_true", help="print every stage and its status (done/todo/stale); run nothing")
    p.add_argument("--json", action="store_true", help="with --plan: the plan as JSON on stdout")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from harness.run.experiment_config import load_experiment

    if args.json and not args.plan:
        raise UserError("--json is only used with --plan")
    config = load_experiment(args.config)  # the same validation for a plan and a run, before anything else
    if config.arms.self_lengthen:
        _require_seed_files(config.self_lengthen)
    if args.plan:
        from harness.run.plan import plan_stages, print_plan

        print_plan(plan_stages(config)[0], Console(), as_json=args.json)
        return 0
    from harness.run.experiment import run_experiment
    from harness.run.train import require_backend_packages

    require_backend_packages(config.backend)
    started = time.monotonic()
    run_experiment(config, console)
    console.print(f"experiment finished in {time.monotonic() - started:.0f}s")
    return 0


def _add_judge(sub) -> None:
    p = sub.add_parser("judge", help="Grade a run's answers with an LLM judge (judgements.json).")
    p.add_argument("run_dirs", type=_path, nargs="+", help="run directories written by `selflengthen eval`")
    p.add_argument("--config", type=_path, help="YAML file with JudgeRunConfig fields; flags override it")
    p.add_argument("--judge-model", dest="model", help="judge model: Hub id, local path or smollm2-135m")
    p.add_argument("--endpoint", help="base URL of a running judge server")
    p.add_argument("--api-key-env", help="environment variable holding the judge endpoint's API key")
    p.add_argument("--rubric", help="auto (by task), longbench_write, longen, or a rubric YAML path")
    p.add_argument("--repeat", type=int, help="re-judge a subset R times and report agreement")
    p.set_defaults(func=cmd_judge)


def cmd_judge(args) -> int:
    import dataclasses

    from harness.config import from_dict, load_yaml
    from harness.scoring.judging import JudgeRunConfig, check_rubric, judge_and_repeat

    data = load_yaml(args.config) if args.config else {}
    config = from_dict(JudgeRunConfig, data, where=args.config.name if args.config else "judge config")
    overrides = {"model": args.model, "endpoint": args.endpoint, "api_key_env": args.api_key_env,
                 "rubric": args.rubric, "repeat": args.repeat}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    check_rubric(config.rubric, "--rubric" if args.rubric is not None else "rubric")
    if config.endpoint and not config.endpoint.startswith(("http://", "https://")):
        raise UserError(f"--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {config.endpoint!r}")
    if config.sanity_scope != "every_run":
        raise UserError("judge.sanity_scope: base needs an experiment's base arm; `judge` degrades each run's own answers")
    for run_dir in args.run_dirs:
        _require_scores(run_dir)  # before a judge server is started (minutes) for nothing
    judge_and_repeat(args.run_dirs, config, console)
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="An experiment's wall time per stage and training-data yield, as Markdown.")
    p.add_argument("out_dir", type=_path, help="the experiment's out_dir, e.g. runs/tiny")
    p.add_argument("--out", type=_path, help="write the Markdown here instead of stdout")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from harness.run.report import experiment_report

    text = experiment_report(args.out_dir)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="Every iteration's synthesized data, the final data and the baselines' data "
                                      "as a Hugging Face dataset (Parquet and a dataset card).")
    p.add_argument("work_dir", type=_path, help="the out_dir of `selflengthen run` (or the work_dir of `train`)")
    p.add_argument("--out", type=_path, required=True, help="the dataset folder to write (a previous export there "
                                                            "is replaced)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from harness.run.export import export_dataset

    summary = export_dataset(args.work_dir, args.out)
    rows = sum(s["rows"] for s in summary["splits"])
    console.print(escape(f"wrote {rows} rows in {len(summary['splits'])} splits to {args.out} "
                         "(its README.md gives each split's count and settings)"))
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="Serve a model over OpenAI's API with the in-process engine until Ctrl-C.")
    p.add_argument("model", help="local checkpoint folder or smollm2-135m (the embedded default)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 1 to 65535 (default 8000; 0: a free one, printed)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--max-batch", type=int, default=16, help="most requests decoded together")
    p.add_argument("--speculative-tokens", type=int, default=None,
                   help="tokens drafted per row and step by n-gram lookup, verified exactly (0: none; default: 4)")
    p.add_argument("--torch-threads", type=int, help="CPU threads for torch (default: the idle cores)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    """Serve until SIGINT/SIGTERM, then exit 130 like every interrupted command (after a clean shutdown)."""
    import errno

    from harness.serving.models import resolve_model
    from infra.inprocess import InProcessConfig
    from infra.openai_server import LOOPBACK, bind_loopback, run_server

    if args.host not in LOOPBACK:
        raise UserError(f"--host must be a loopback address ({', '.join(LOOPBACK)}), got {args.host!r}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 1 to 65535 (0: a free one), got {args.port}")
    try:
        sock = bind_loopback(args.host, args.port)
    except OSError as exc:
        busy = " (another server is listening there; pick another --port, or 0 for a free one)"
        raise UserError(f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"
                        + (busy if exc.errno == errno.EADDRINUSE else "")) from None
    with sock:
        path = Path(resolve_model(args.model))
        if not path.is_dir():
            raise UserError(f"serve needs a local checkpoint folder; {args.model} is not one")
        host = f"[{args.host}]" if ":" in args.host else args.host
        try:
            drafts = {} if args.speculative_tokens is None else {"speculative_tokens": args.speculative_tokens}
            config = InProcessConfig(path, max_batch_size=args.max_batch, torch_threads=args.torch_threads, **drafts)
            console.print(escape(f"serving {args.model} at http://{host}:{sock.getsockname()[1]}/v1 (Ctrl-C stops)"))
            stopped_by = run_server(config, sock, model_name=args.model)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if stopped_by is None:
        return 0
    console.print("[yellow]interrupted[/]; the server has stopped")
    return 130


def _require_scores(run_dir: Path) -> None:
    """A run directory holding a readable scores.json with a `tasks` mapping, or a UserError naming it."""
    from infra.journal import load_json

    path = run_dir / "scores.json"
    if not path.is_file():
        raise UserError(f"{path} not found: run `selflengthen eval --out {run_dir}` first")
    scores = load_json(path, UserError)
    if not isinstance(scores, dict) or not isinstance(scores.get("tasks"), dict):
        raise UserError(f"{path} has no 'tasks' mapping; is it a scores.json written by `selflengthen eval`?")


# These own their argument parsing and exit codes (0 ok, 1 regression, 2 bad input).
_DELEGATED = {
    "leaderboard": ("leaderboard.publish", "Build leaderboard.{json,md,html} from run directories."),
    "check": ("leaderboard.check", "Compare two leaderboards or runs; exit 1 on a significant regression."),
    "power": ("leaderboard.power", "How often check would flag a fall from one leaderboard row to another, per n."),
}


# These build leaderboards from run directories, with each task's demand ranges (tasks/metadata.py).
_GIVEN_DEMAND_RANGES = ("leaderboard", "check")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="selflengthen", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_score, _add_eval, _add_train, _add_run, _add_judge, _add_report, _add_export, _add_serve):
        add(sub)
    for name, (_, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit codes: 0 ok, 2 unusable input (one `error:` line), 130 interrupted,
    1 an unexpected failure (a bug: one line, --debug shows the traceback)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # rich shows progress; must be set before tqdm is imported
    pin_data_dir_setting()
    argv = sys.argv[1:] if argv is None else argv
    command = next((i for i, arg in enumerate(argv) if arg != "--debug"), None)
    if command is not None and argv[command] in _DELEGATED:  # `selflengthen --debug check ...` passes --debug on
        import importlib

        rest = argv[command + 1:] + (["--debug"] if "--debug" in argv[:command] else [])
        module = importlib.import_module(_DELEGATED[argv[command]][0])
        if argv[command] in _GIVEN_DEMAND_RANGES:  # the leaderboard may not read task YAMLs itself
            from tasks.metadata import declared_demand_ranges

            return module.main(rest, demand_ranges=declared_demand_ranges())
        return module.main(rest)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("SELFLENGTHEN_DEBUG") == "1"
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        precision_setting()  # what `precision: auto` means in every process a command starts
        return args.func(args)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        if _raised_while_interrupted(exc):  # a clean-up step failed because the run was interrupted
            return _interrupted()
        if debug:
            traceback.print_exc()
        if isinstance(exc, UserError):
            _print_error(str(exc))
            return 2
        described = describe_input_error(exc)
        if described:
            _print_error(described)
            return 2
        message = first_line(exc) if str(exc).strip() else ""
        _print_error(f"{type(exc).__name__}: {message} (--debug shows the traceback)")
        return 1


def _print_error(message: str) -> None:
    """`error: <message>` on one line; the message is shown as-is, never read as rich markup."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def _interrupted() -> int:
    console.print("[yellow]interrupted[/]; finished work is kept, re-run the same command to resume")
    return 130


def _raised_while_interrupted(exc: BaseException) -> bool:
    """True when a KeyboardInterrupt is among the exceptions this one was raised while handling."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


def _raise_keyboard_interrupt(signum, frame):
    """SIGTERM stops like Ctrl-C, so servers are shut down and partial work is kept.

    Only the first one: a second SIGTERM during that clean-up ends the process at once (the
    servers' watchdogs stop them, the journals are already consistent on disk).
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

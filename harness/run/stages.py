"""Stage fingerprints: a finished stage is reused only while the inputs that produced it are the same.

A stage's fingerprint is the sha256 of a canonical JSON of its kind, its settings, the model it
starts from, its upstream stages' fingerprints, the content hashes of the input files it reads (seed
instructions, corpus, benchmark rows) and the version of the code that computes it: a hash of the modules
the stage runs and every first-party module they import, with the files it reads beside them (prompt
templates; a scoring stage's task YAMLs, a judging stage's rubric) (`code_version`). Each stage carries
its upstream stages and what runs it, so `--plan` and `run` read one description (harness/run/execute.py
runs it). It is recorded in the stage's marker file when the stage starts (`finished: false`) and again when it
ends (`finished: true`). On a re-run:

    no marker, no outputs              todo
    marker with this fingerprint       done (finished) or todo (started: the stage resumes; or finished,
                                       but its entry in a file it shares is gone: it runs again)
    marker with another fingerprint    stale
    outputs but no marker              stale (nothing says what produced them)

A stale stage's outputs are moved aside (`<folder>.stale`) or deleted before it runs again; what
is kept is listed in `invalidate` and in docs/run_directory.md.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from infra.journal import json_object, write_json_atomically

DONE, TODO, STALE = "done", "todo", "stale"

SPEED_ONLY_FIELDS = frozenset({
    "max_in_flight", "max_concurrency", "num_concurrent", "max_batch_size", "torch_threads", "startup_timeout",
    "logging_steps", "repeat", "repeat_subset", "endpoint", "api_key_env", "data_parallel_size",
    "address", "concurrency", "cpus_per_actor", "shard_size", "linger_s", "wave_size",
})
"""Fields that change how fast or where a stage runs, not what it produces: left out of fingerprints."""


@dataclass(frozen=True)
class JsonEntry:
    """The value under `keys` in the JSON object file `file`, as a stage's output (one task's scores)."""

    file: Path
    keys: tuple[str, ...]

    def exists(self) -> bool:
        return self.keys[-1] in json_object(self.file, *self.keys[:-1])


@dataclass
class Stage:
    """One step of an experiment, what it runs with, where its outputs go, and whether they are current."""

    name: str
    kind: str
    model: str
    backend: str | None
    concurrency: int | None
    sampling: dict | None
    output: Path
    marker: Path
    inputs: dict[str, Any]
    outputs: list[Path] = field(default_factory=list)
    """Files or folders whose presence means the stage produced something (for markerless runs)."""
    extra: dict[str, Any] = field(default_factory=dict)
    entries: list[JsonEntry] = field(default_factory=list)
    """What the stage wrote into files other stages rewrite too (a task's scores in scores.json): a finished
    stage is done only while they are all there, so a deleted or rewritten file makes it run again."""
    upstream: list[Stage | None] = field(default_factory=list)
    """The stages whose outputs this one reads, in the order its fingerprint lists theirs (`inputs["upstream"]`);
    None holds the place of the base model where a stage starts from it (iteration 1 has no earlier adapter).
    It runs after them and is skipped when one of them is."""
    run: Callable[[list[Stage], Console], None] | None = None
    """Does the stage's work, given the stages to run: the stages sharing one `run` (a checkpoint's tasks scored
    by one lm-eval call, the judging passes sharing a judge server) are run by one call with those not done."""
    skip: Callable[[], tuple[str, str] | None] | None = None
    """Asked before the stage runs: (what, why) when there is nothing to run it on (an iteration that kept no
    training pair), so it and everything downstream are skipped, and the experiment says why under `what`."""
    after_skipped: bool = False
    """Runs with what its upstream produced when some of it was skipped (the leaderboard ranks the arms that exist)."""
    every_time: bool = False
    """Runs on every execution, done or not: it costs moments and so reflects an upstream output rewritten with
    the same fingerprint (a deleted scores.json scored again); its marker still says when its inputs changed."""

    def __post_init__(self) -> None:
        if self.upstream:
            self.inputs = {**self.inputs, "upstream": [upstream_fingerprint(stage) for stage in self.upstream]}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.inputs)

    @property
    def status(self) -> str:
        record = read_marker(self.marker)
        if record is None:
            return STALE if any(_exists(p) for p in self.outputs) else TODO
        if record.get("fingerprint") != self.fingerprint:
            return STALE
        return DONE if record.get("finished") and all(entry.exists() for entry in self.entries) else TODO

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "model": self.model, "backend": self.backend,
                "concurrency": self.concurrency, "sampling": self.sampling, "output": str(self.output),
                "kind": self.kind, "fingerprint": self.fingerprint, "seconds": self.seconds, **self.extra}

    @property
    def seconds(self) -> float | None:
        """Wall seconds spent on this stage so far, over every attempt (None before it first ran)."""
        record = read_marker(self.marker)
        if record is None or record.get("fingerprint") != self.fingerprint:
            return None
        return record.get("seconds")


@dataclass
class PlannedCheckpoint:
    """A checkpoint the plan will score: its name, the folder it will be in, its arm, and the stage producing it."""

    name: str
    path: str
    arm: str
    iteration: int | None
    producer: Stage | None
    train_stats: Callable[[], dict | None] = lambda: None
    """Its training facts as the leaderboard shows them (read from the finished producer's outputs)."""


def upstream_fingerprint(stage: Stage | None) -> str | None:
    """What a stage's inputs record of the stage it depends on: its fingerprint, or None where there is none."""
    return stage.fingerprint if stage else None


def fingerprint(inputs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `inputs`."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def settings_of(section: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config section without the speed-only fields and the fields in `drop`, at every depth."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in SPEED_ONLY_FIELDS}
        return value

    return clean({k: v for k, v in section.items() if k not in drop})


FIRST_PARTY = frozenset({"selflengthen", "tasks", "judges", "infra", "leaderboard"})
"""The packages whose code a stage's fingerprint follows (`harness` only runs stages; it computes none)."""


@functools.lru_cache(maxsize=None)
def code_version(*modules: str, files: tuple[Path, ...] | None = None) -> str:
    """A short hash of the code a stage runs: the named modules, every first-party module they import
    (transitively, imports inside functions too, with their packages' `__init__`), and the files it reads:
    `files` where they are known exactly (a task's YAMLs), else the prompt files beside the modules. So an
    edit re-runs only the stages whose code reaches the edited file, as a Snakemake rule's or a Bazel
    target's does."""
    sources = _module_closure(modules)
    digest = hashlib.sha256()
    for path in sorted(sources | (_assets_beside(sources) if files is None else {Path(f).resolve() for f in files})):
        digest.update(str(path.relative_to(_PROJECT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


_PROJECT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def _module_closure(modules: tuple[str, ...]) -> frozenset[Path]:
    """The source files of `modules` and of every first-party module they import, transitively."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        for path in _source_files(name):
            if path not in seen:
                seen.add(path)
                todo += _imported_modules(path)
    return frozenset(seen)


def _source_files(name: str) -> list[Path]:
    """The file of module `name` and the `__init__.py` of each package above it (importing it runs them)."""
    parts = name.split(".")
    files = []
    for depth in range(1, len(parts) + 1):
        base = _PROJECT.joinpath(*parts[:depth])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif depth == len(parts) and base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
    return files


def _imported_modules(path: Path) -> list[str]:
    """The first-party modules `path` imports anywhere in it; `from package import name` counts the
    submodule `package.name` when there is one. A relative import is refused: the project writes
    absolute ones, and one this did not follow would leave an edit to its module out of the fingerprint."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise RuntimeError(f"{path} line {node.lineno}: a relative import; stage fingerprints follow "
                                   "absolute imports only, so write it as one (from package.module import ...)")
            package = node.module
            found.append(package)
            found += [f"{package}.{alias.name}" for alias in node.names
                      if _PROJECT.joinpath(*package.split("."), alias.name + ".py").is_file()
                      or _PROJECT.joinpath(*package.split("."), alias.name, "__init__.py").is_file()]
    return [module for module in found if module.split(".")[0] in FIRST_PARTY]


def _assets_beside(sources: frozenset[Path]) -> set[Path]:
    """The .txt/.yaml files in the folders of `sources` and in their folders that are not packages
    (prompt templates, rubrics): what the code reads besides its imports."""
    assets = set()
    for folder in {path.parent for path in sources}:
        for path in folder.rglob("*"):
            if path.suffix in (".txt", ".yaml") and path.is_file() and not any(
                    (parent / "__init__.py").is_file() for parent in path.parents if folder in parent.parents):
                assets.add(path)
    return assets


def file_digest(path: str | Path) -> str | None:
    """sha256 of a file's bytes, so a stage's input file is known by its content, not its name (None: missing)."""
    file = Path(path).resolve()
    try:
        stat = file.stat()
    except OSError:
        return None
    return _digest(file, stat.st_size, stat.st_mtime_ns) if file.is_file() else None


@functools.lru_cache(maxsize=256)
def _digest(file: Path, size: int, mtime_ns: int) -> str:
    """Memoised by size and mtime: a plan hashes the same benchmark file for every scored checkpoint."""
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_marker(path: Path) -> dict | None:
    """The stage record in `path`, or None when there is none or it is unusable (not a JSON object,
    `inputs` not an object, `seconds` not a number): like a missing marker, nothing then says what
    produced the outputs."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("inputs", {}), dict):
        return None
    seconds = record.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not 0 <= seconds < float("inf")):
        return None
    return record


@contextlib.contextmanager
def recorded(stages: list[Stage]) -> Iterator[None]:
    """The block recorded as each of `stages` (one call runs them together): each marker is written when the
    block starts (`finished: false`) and again when it ends, with the wall seconds added to an interrupted
    earlier attempt's; a done stage's marker is left untouched."""
    started = time.monotonic()
    records = [({"name": stage.name, "fingerprint": stage.fingerprint, "inputs": stage.inputs}, stage.marker,
                stage.seconds or 0.0) for stage in stages if stage.status != DONE]
    for record, marker, earlier in records:
        write_json_atomically(marker, {**record, "finished": False, "seconds": earlier})
    try:
        yield
    finally:
        finished = sys.exc_info()[0] is None
        for record, marker, earlier in records:
            write_json_atomically(marker, {**record, "finished": finished,
                                           "seconds": round(earlier + time.monotonic() - started, 1)})


def clear_stale(stages: list[Stage], console: Console) -> None:
    """Clear every stale stage, saying so on `console`.

    All stale stages are found before any is cleared: clearing one changes what its downstream looks like.
    """
    for stage in [stage for stage in stages if stage.status == STALE]:
        console.print(f"[yellow]{escape(stage.name)}: stale[/] (its inputs or settings changed since it ran); "
                      "redoing it")
        invalidate(stage)


def invalidate(stage: Stage) -> None:
    """Clear a stale stage's outputs so its own resume logic redoes it.

    Kept: a scored run's lm-eval request cache while the model and generation settings are the
    same (its keys are prompt and gen_kwargs, not the model), and the other tasks' samples and scores
    (a scoring stage is one task's); a run's judge cache while the judge
    settings are the same (its keys hold the judge model, rubric version, graded text and
    temperature), and a judging stage's entries in its run's reports (shared by the tasks: its re-run
    replaces them). Everything else of the stage is moved to `<folder>.stale` or deleted.
    """
    old = read_marker(stage.marker) or {}
    old_inputs = old.get("inputs", {})
    if stage.kind == "score":  # one task's: the run's scores.json keeps the other tasks' until it is rewritten
        same_generation = all(old_inputs.get(k) == stage.inputs.get(k) for k in ("model", "upstream", "generation"))
        for path in stage.outputs:
            path.unlink(missing_ok=True)
        lm_dir = stage.output / "lm_eval"
        if not same_generation and lm_dir.is_dir():
            for path in lm_dir.glob("requests_cache*"):
                path.unlink(missing_ok=True) if path.is_file() else shutil.rmtree(path, ignore_errors=True)
    elif stage.kind in ("judge", "judge_repeat", "judge_pairwise"):  # one task's entries in reports shared by all
        if stage.kind == "judge" and old_inputs.get("settings") != stage.inputs.get("settings"):
            (stage.output / "judge_cache.sqlite").unlink(missing_ok=True)
    else:
        for path in stage.outputs:
            move_aside(path)
    stage.marker.unlink(missing_ok=True)


def move_aside(path: Path) -> None:
    """Rename `path` to `<path>.stale`, replacing an older one."""
    if not _exists(path):
        return
    aside = path.with_name(path.name + ".stale")
    if aside.is_dir():
        shutil.rmtree(aside)
    else:
        aside.unlink(missing_ok=True)
    path.rename(aside)


def _exists(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))

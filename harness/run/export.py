"""`selflengthen export`: an experiment's training data as a Hugging Face dataset (Parquet and a card).

What the runs synthesised is the method's real product, and it sits in JSONL files spread over the work
directory (docs/run_directory.md). This gathers every finished one into one split each: per iteration the
Generator's and the Extender's SFT data, the final length-following data, and each baseline's data, as
`data/<split>.parquet` with one `messages` column (the chat rows the trainer reads), an `export.json` with
the counts and each split's stage settings (the truth), and a `README.md` dataset card (its view) whose
`configs:` header makes `datasets.load_dataset(OUT)` find every split. It reads only files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from infra.journal import iter_jsonl, write_json_atomically, write_text_atomically
from leaderboard.render_markdown import md_text

EXPORT_FILE = "export.json"
_ITERATION = re.compile(r"iter_([0-9]+)")
_ROLES = ("generator", "extender")
_BASELINES = ("backtranslation", "imitation")
# Marker fields that say how the data was made; `upstream` and `version` are hashes a reader cannot use.
_SETTING_FIELDS = ("kind", "model", "seed", "settings", "backend", "seed_files", "corpus")


@dataclass(frozen=True)
class Source:
    """One split: the JSONL it comes from and the stage marker that wrote it (absent for hand-made folders)."""

    split: str
    arm: str
    iteration: int | None
    role: str
    data: Path
    marker: Path


def export_dataset(work_dir: Path, out: Path) -> dict:
    """Write the dataset of `work_dir` (a `run`'s out_dir or a `train` work_dir) to `out`; returns export.json's
    content. `out` appears whole or not at all; a previous export there is replaced."""
    _check_out(out)
    _remove_leftovers(out)
    sources, skipped = _sources(work_dir)
    splits = [_read_split(source, work_dir) for source in sources]
    if not any(split["rows"] for split in splits):
        raise UserError(f"{work_dir} holds no training example to export (every finished data file is empty)")
    summary = {"work_dir": str(work_dir.resolve()),
               "splits": [{k: v for k, v in s.items() if k != "table"} for s in splits], "skipped": skipped}
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        (staging / "data").mkdir(parents=True)
        for split in splits:
            if split["rows"]:  # `datasets` cannot read a Parquet file without rows: an empty split gets none
                _write_parquet(split["table"], staging / split["file"])
        write_json_atomically(staging / EXPORT_FILE, summary)
        write_text_atomically(staging / "README.md", dataset_card(summary))
        with _interrupts_held():
            _replace(staging, out)
    finally:
        with _interrupts_held():
            shutil.rmtree(staging, ignore_errors=True)
    return summary


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (then raise KeyboardInterrupt): a folder is never left half
    moved or half removed, so an interrupted export leaves the previous one or the new one, and no hidden folder."""
    received: list[int] = []
    held = {sig: signal.signal(sig, lambda number, frame: received.append(number))
            for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the dataset")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_FILE).is_file():
        raise UserError(f"--out {out} is a folder that holds other files; give a new or empty folder "
                        f"(a previous export there, with its {EXPORT_FILE}, is replaced)")


def _sources(work_dir: Path) -> tuple[list[Source], list[dict]]:
    """Every data file to export, in run order, and the ones left out (an unfinished stage) with the reason."""
    if not work_dir.is_dir():
        raise UserError(f"{work_dir} is not a folder; give the out_dir of `selflengthen run` or the work_dir of "
                        "`selflengthen train`")
    experiment = (work_dir / "train").is_dir()
    method = work_dir / "train" / "self_lengthen" if experiment else work_dir
    candidates = []
    iterations = sorted((int(m.group(1)), p) for p in method.glob("iter_*")
                        if p.is_dir() and (m := _ITERATION.fullmatch(p.name)))
    for (k, folder), (later, twin) in zip(iterations, iterations[1:]):
        if k == later:  # `iter_1` and `iter_01`: both would be the split self_lengthen_iter_1_*
            raise UserError(f"{folder.name} and {twin.name} are both iteration {k}; move one of them out of {method}")
    for k, folder in iterations:
        candidates += [Source(f"self_lengthen_iter_{k}_{role}", "self_lengthen", k, role,
                              folder / f"{role}_data.jsonl", folder / "stage.json") for role in _ROLES]
    final = method / "final"
    candidates.append(Source("self_lengthen_final", "self_lengthen/final", None, "length_following",
                             final / "final_data.jsonl", final / "stage.json"))
    if experiment:
        candidates += [Source(arm, arm, None, "data", work_dir / "train" / arm / "data.jsonl",
                              work_dir / "train" / arm / "stage.json") for arm in _BASELINES]
    sources, skipped = [], []
    for source in candidates:
        if not source.data.is_file():
            continue
        marker = _marker(source.marker)
        if marker is not None and marker.get("finished") is not True:
            skipped.append({"split": source.split, "file": _relative(source.data, work_dir),
                            "reason": f"its stage {marker.get('name', '?')} has not finished; re-run to finish it"})
            continue
        sources.append(source)
    if not sources:
        raise UserError(f"{work_dir} holds no finished training data to export (no iter_k/generator_data.jsonl, "
                        "final/final_data.jsonl or baseline data.jsonl); give the out_dir of `selflengthen run` or "
                        "the work_dir of `selflengthen train`"
                        + (f"; {len(skipped)} data file(s) belong to unfinished stages" if skipped else ""))
    return sources, skipped


def _marker(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not a readable stage marker (malformed JSON)") from None
    if not isinstance(marker, dict):
        raise UserError(f"{path} is not a stage marker (not a JSON object)")
    return marker


class _ExportInputError(ValueError):
    """A data file line that is not a JSON object (turned into a UserError naming file and line)."""


def _read_split(source: Source, work_dir: Path) -> dict:
    """The split's rows (checked: chat messages of string roles and contents) and its facts for the card."""
    rows = []
    try:
        records = list(iter_jsonl(source.data, _ExportInputError))
    except _ExportInputError as exc:
        raise UserError(str(exc)) from None
    for number, row in records:
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise UserError(f"{source.data} line {number}: not a training row "
                            "({\"messages\": [{\"role\": ..., \"content\": ...}, ...]})")
        rows.append({"messages": [{"role": m["role"], "content": m["content"]} for m in messages]})
    marker = _marker(source.marker) or {}
    inputs = marker.get("inputs") if isinstance(marker.get("inputs"), dict) else {}
    return {"split": source.split, "arm": source.arm, "iteration": source.iteration, "role": source.role,
            "rows": len(rows), "file": f"data/{source.split}.parquet" if rows else None,
            "source": _relative(source.data, work_dir), "stage": marker.get("name"),
            "settings": {k: inputs[k] for k in _SETTING_FIELDS if k in inputs}, "table": rows}


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    table = pa.Table.from_pylist(rows, schema=pa.schema([("messages", pa.list_(message))]))
    pq.write_table(table, path)


def _remove_leftovers(out: Path) -> None:
    """Delete the hidden staging and old folders of an export that was killed outright (SIGKILL, a power cut):
    Ctrl-C and SIGTERM clean up after themselves, those cannot."""
    leftover = re.compile(rf"\.{re.escape(out.name)}\.[0-9a-f]{{8}}\.(tmp|old)")
    for path in out.parent.glob(f".{out.name}.*"):
        if leftover.fullmatch(path.name) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _replace(staging: Path, out: Path) -> None:
    """Put the finished `staging` folder at `out`; an empty folder or a previous export there goes."""
    if out.is_dir():
        old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, out)


def dataset_card(summary: dict) -> str:
    """README.md: the `configs:` header `datasets.load_dataset(folder)` reads, then counts and settings."""
    loadable = [s for s in summary["splits"] if s["file"]]
    header = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in loadable:
        header += [f"  - split: {split['split']}", f"    path: {split['file']}"]
    header += ["tags:", "- self-lengthen", "- long-form-generation", "---", ""]
    lines = ["# Self-Lengthen training data", "",
             f"Exported by `selflengthen export` from {md_text(summary['work_dir'])}. Each split holds chat rows "
             "(`messages`: a list of `role`/`content`) exactly as the LoRA trainer read them: per iteration the "
             "Generator's data (instruction, extended answer) and the Extender's (rewrite prompt with the draft, "
             "extended answer), the final length-following data (instructions with a length demand the answer "
             "meets), and each baseline's data.", "",
             "```python", "import datasets", "",
             "data = datasets.load_dataset(\"path/to/this/folder\")  # or: load_dataset(\"parquet\", "
             "data_files={\"backtranslation\": \"data/backtranslation.parquet\"})", "```", "",
             "| split | rows | arm | iteration | role | source file | stage |", "|---|---|---|---|---|---|---|"]
    for s in summary["splits"]:
        lines.append(f"| {s['split']} | {s['rows']} | {md_text(s['arm'])} | {'-' if s['iteration'] is None else s['iteration']} | {s['role']} | "
                     f"{md_text(s['source'])} | {md_text(s['stage'] or '-')} |")
    empty = [s["split"] for s in summary["splits"] if not s["file"]]
    if empty:
        lines += ["", f"Splits without rows have no file (`datasets` cannot read an empty Parquet file): "
                      f"{', '.join(empty)}."]
    if summary["skipped"]:
        lines += ["", "Left out (unfinished when exported):", ""]
        lines += [f"- {md_text(s['file'])}: {md_text(s['reason'])}" for s in summary["skipped"]]
    lines += ["", "## Settings", "",
              "Each split's stage settings as its stage marker recorded them (model, seed, sampling, filters, "
              "backend); the same facts are in `export.json`."]
    for s in summary["splits"]:
        if s["settings"]:
            text = json.dumps(s["settings"], indent=2, ensure_ascii=False)
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
            lines += ["", f"### {s['split']}", "", f"{fence}json", text, fence]
    return "\n".join(header + lines) + "\n"

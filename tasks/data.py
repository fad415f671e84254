"""Where benchmark rows come from: a local folder of .jsonl files, or the Hugging Face Hub.

`data_dir` argument, else the SELFLENGTHEN_DATA_DIR setting, else the Hub. Mini names are
derived from their real benchmark by tasks.minis, never stored.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.journal import read_jsonl
from tasks.minis import MINIS

DATA_DIR_ENV = "SELFLENGTHEN_DATA_DIR"

# real benchmark -> (Hub dataset id, split), or None where the benchmark is not on the Hub.
HUB_SOURCES: dict[str, tuple[str, str] | None] = {
    "longen": ("quanshr/LonGen", "test"),
    "longbench_write": ("THUDM/LongBench-Write", "train"),
    # The English half and LongWrite-Ruler are files in THUDM/LongWriter's GitHub repo only.
    "longbench_write_en": None,
    "longwrite_ruler": None,
}

BENCHMARKS = (*HUB_SOURCES, *MINIS)


class BenchmarkDataError(ValueError):
    """A benchmark that cannot be loaded: unknown name, missing file, bad line."""


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The local data folder: the argument, else $SELFLENGTHEN_DATA_DIR, else None (use the Hub)."""
    value = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    return Path(value) if value is not None else None


def load_benchmark(name: str, data_dir: str | Path | None = None) -> list[dict]:
    """The rows of benchmark `name` (a real or *_mini name) as a list of dicts, in file order."""
    if name in MINIS:
        source, derive = MINIS[name]
        return derive(load_benchmark(source, data_dir))
    if name not in HUB_SOURCES:
        raise BenchmarkDataError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            raise BenchmarkDataError(f"benchmark file {path} does not exist (check {DATA_DIR_ENV})")
        return read_jsonl(path, BenchmarkDataError)
    source = HUB_SOURCES[name]
    if source is None:
        raise BenchmarkDataError(
            f"{name} is not on the Hugging Face Hub; set {DATA_DIR_ENV} to a folder holding {name}.jsonl"
        )
    import datasets

    return [dict(row) for row in datasets.load_dataset(source[0], split=source[1])]


def benchmark_source(name: str, data_dir: str | Path | None = None) -> Path | str | None:
    """Where benchmark `name`'s rows come from (a mini's: its real benchmark's): the local file, the Hub
    dataset id, or None for a name that is not a benchmark. The harness fingerprints the file's content."""
    name = MINIS[name][0] if name in MINIS else name
    if name not in HUB_SOURCES:
        return None
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        return folder / f"{name}.jsonl"
    return HUB_SOURCES[name][0] if HUB_SOURCES[name] else None


def pin_data_dir_setting(environ=os.environ) -> None:
    """Make a relative SELFLENGTHEN_DATA_DIR absolute against the folder the command started in.

    Child processes (servers, lm-eval, the CLI under test) may run elsewhere; they inherit the
    absolute path, so the setting means what it meant where the user typed it.
    """
    value = environ.get(DATA_DIR_ENV)
    if value and not os.path.isabs(value):
        environ[DATA_DIR_ENV] = os.path.abspath(value)

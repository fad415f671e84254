"""The glue between lm-eval task YAMLs and this package: dataset loading and per-document metrics.

Each task YAML names `custom_dataset: !function utils.load_dataset` with
`dataset_kwargs: {benchmark: <name>}`; lm-eval calls it with the task metadata merged in, so
`--metadata '{"data_dir": "..."}'` overrides the SELFLENGTHEN_DATA_DIR setting for one run.
"""

from __future__ import annotations

from typing import Any

from tasks.data import load_benchmark
from tasks.scoring import lm_eval_metrics


def load_dataset(benchmark: str, data_dir: str | None = None, **_metadata: Any) -> dict:
    """lm-eval's custom_dataset hook: {"test": Dataset} of `benchmark`'s rows (real or mini)."""
    import datasets

    return {"test": datasets.Dataset.from_list(load_benchmark(benchmark, data_dir))}


def process_results(task: str, doc: dict, results: list[str]) -> dict[str, float]:
    """lm-eval's process_results for a generate_until task: metrics of the single generation."""
    return lm_eval_metrics(task, doc, results[0])

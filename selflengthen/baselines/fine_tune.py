"""Fine-tune on a baseline's data with the Self-Lengthen trainer, and complete its `stats.json`.

The leaderboard compares arms by training samples, their mean length and training tokens, so
after `train_role` the trainer's `train_stats.json` is merged into the data run's `stats.json`
(`train_tokens`, `loss_tokens`, `steps`, losses; the trainer's own record under `training`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selflengthen.baselines.runner import DATA_FILE, STATS_FILE
from infra.journal import read_jsonl, write_json_atomically
from selflengthen.lora import FINISHED_MARKER, TrainConfig, train_role

MERGED_TRAIN_FACTS = ("train_tokens", "loss_tokens", "steps", "epochs", "final_loss", "mean_loss", "wall_seconds")


def train_baseline(
    work_dir: Path,
    base_model: str | Path,
    config: TrainConfig,
    output_dir: Path | None = None,
    init_adapter: Path | None = None,
    data_file: Path | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on `data_file` (default `work_dir/data.jsonl`; a subsample of it when budgets are
    matched) into `output_dir` (default `work_dir/adapter`); return the merged stats.

    A finished adapter is not retrained (`train_role` returns at once); the stats are merged again.
    """
    work_dir = Path(work_dir)
    stats_file = work_dir / STATS_FILE
    if not stats_file.is_file():
        raise ValueError(f"{stats_file} not found: build the baseline's data in {work_dir} first")
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    if not stats["samples"]:
        outcomes = ", ".join(f"{name} {count}" for name, count in stats["outcomes"].items()) or "no items"
        raise ValueError(f"the {stats['arm']} data in {work_dir} has no training samples ({outcomes})")
    output_dir = Path(output_dir) if output_dir is not None else work_dir / "adapter"
    data_file = Path(data_file) if data_file is not None else work_dir / DATA_FILE
    train_role(data_file, base_model, output_dir, config, init_adapter)
    train_stats = json.loads((output_dir / FINISHED_MARKER).read_text(encoding="utf-8"))
    rows = len(read_jsonl(data_file))
    if train_stats["samples"] != rows:
        raise ValueError(
            f"{output_dir} was trained on {train_stats['samples']} samples, but {data_file} "
            f"now holds {rows}: use a fresh output_dir"
        )
    stats.update({name: train_stats.get(name) for name in MERGED_TRAIN_FACTS})
    stats.update(adapter_dir=str(output_dir), training=train_stats)
    write_json_atomically(stats_file, stats)
    return stats


def trained_stats(work_dir: Path) -> dict[str, Any]:
    """`stats.json` of a baseline already fine-tuned in `work_dir`: its data facts with the training ones merged in."""
    return json.loads((Path(work_dir) / STATS_FILE).read_text(encoding="utf-8"))

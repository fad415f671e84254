"""lm-eval hooks of the LongBench-Write tasks (longbench_write, longbench_write_en and their minis)."""

from tasks.lm_eval_hooks import load_dataset
from tasks.lm_eval_hooks import process_results as _process_results

__all__ = ["load_dataset", "process_results"]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """`S_l`, LongBench-Write's length score (0-100)."""
    return _process_results("longbench_write", doc, results)

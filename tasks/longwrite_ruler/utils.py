"""lm-eval hooks of the LongWrite-Ruler tasks (longwrite_ruler, longwrite_ruler_mini)."""

from tasks.lm_eval_hooks import load_dataset
from tasks.lm_eval_hooks import process_results as _process_results

__all__ = ["load_dataset", "process_results"]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """`words` written, `length_ratio` = words / demanded, and `S_l`."""
    return _process_results("longwrite_ruler", doc, results)

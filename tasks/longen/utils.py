"""lm-eval hooks of the LonGen tasks (longen, longen_mini)."""

from tasks.lm_eval_hooks import load_dataset
from tasks.lm_eval_hooks import process_results as _process_results

__all__ = ["load_dataset", "process_results"]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """`overall` and the doc's own constraint type (about/range/above/below), both the LonGen score."""
    return _process_results("longen", doc, results)

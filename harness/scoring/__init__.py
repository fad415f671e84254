"""Scoring a checkpoint: lm-eval driven over a served model (`selflengthen eval`), and the LLM judges run over its answers."""

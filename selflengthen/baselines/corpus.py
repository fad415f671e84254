"""The long human-written texts that backtranslation turns into training answers.

Texts come from a JSONL file (`text` per line) or a Hugging Face dataset column. A text too long
for the trainer is cut after its last whole paragraph that fits (or left out); the model that
writes the instruction sees only the beginning of a text (`selflengthen.baselines.excerpt`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from selflengthen.baselines.config import BacktranslationConfig, HubCorpus
from selflengthen.text import count_words, join_paragraphs, split_paragraphs
from infra.journal import iter_jsonl

TokenCounter = Callable[[str], int]


def load_corpus(config: BacktranslationConfig) -> list[str]:
    """Every non-empty text of the configured corpus, in the corpus' order."""
    if config.corpus_hf is not None:
        return _load_hub_texts(config.corpus_hf)
    return load_jsonl_texts(Path(config.corpus))


def load_jsonl_texts(path: Path) -> list[str]:
    """The `text` field of every line of a JSONL file; a line without one is an error naming it."""
    if not path.is_file():
        raise ValueError(f"corpus file not found: {path}")
    texts = []
    for number, record in iter_jsonl(path, ValueError):
        text = record.get("text")
        if not isinstance(text, str):
            raise ValueError(f"{path}:{number}: expected a string field 'text'")
        if text.strip():
            texts.append(text.strip())
    if not texts:
        raise ValueError(f"corpus file {path} holds no texts")
    return texts


def _load_hub_texts(source: HubCorpus) -> list[str]:
    import datasets

    dataset = datasets.load_dataset(source.name, split=source.split)
    if source.column not in dataset.column_names:
        raise ValueError(
            f"dataset {source.name} ({source.split}) has no column {source.column!r}; "
            f"columns: {', '.join(dataset.column_names)}"
        )
    texts = [text.strip() for text in dataset[source.column] if isinstance(text, str) and text.strip()]
    if not texts:
        raise ValueError(f"dataset {source.name} ({source.split}) holds no texts in column {source.column!r}")
    return texts


def token_counter(config: BacktranslationConfig) -> TokenCounter:
    """Exact counts with the configured tokenizer, else words times `tokens_per_word`, rounded up."""
    if config.tokenizer is None:
        return lambda text: math.ceil(count_words(text) * config.tokens_per_word)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.tokenizer)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_to_length(text: str, max_tokens: int, count_tokens: TokenCounter) -> str | None:
    """`text` if it fits in `max_tokens`, else its leading whole paragraphs that fit; None if not even one does."""
    if count_tokens(text) <= max_tokens:
        return text
    paragraphs = split_paragraphs(text)
    low, high = 0, len(paragraphs)  # the longest fitting prefix: token counts grow with the prefix
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(join_paragraphs(paragraphs[:middle])) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return join_paragraphs(paragraphs[:low]) if low else None


"""Final SFT data: every iteration's long answers, with a length demand written into the instruction.

The paper's last step teaches length following: each answer's instruction gets a demand the answer
itself satisfies (selflengthen/length_demand.py says how one is chosen and phrased).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.journal import read_jsonl, write_jsonl_atomically
from infra.rng import item_rng
from selflengthen.config import FinalDataConfig
from selflengthen.length_demand import choose_length_demand, phrase_demand, with_length_demand
from selflengthen.text import count_words


def final_examples(answers: Sequence[dict[str, Any]], seed: int, config: FinalDataConfig) -> list[dict[str, Any]]:
    """Chat examples for the answers in the length window; each answer `{"key", "lang", "instruction", "answer"}`."""
    examples = []
    for answer in answers:
        words = count_words(answer["answer"])
        if not config.min_words <= words < config.max_words:
            continue
        rng = item_rng(seed, f"final/{answer['key']}")
        demand = choose_length_demand(words, rng, config)
        phrase = phrase_demand(demand, answer["lang"], rng, config)
        instruction = with_length_demand(answer["instruction"], phrase, answer["lang"], rng)
        examples.append(
            {"messages": [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer["answer"]}]}
        )
    return examples


def collect_long_answers(iteration_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """Every initial and extended answer of every iteration, once each, keyed by iteration and slot."""
    answers, seen = [], set()
    for directory in iteration_dirs:
        directory = Path(directory)
        for step, field in (("initial_answers", "answer"), ("extended_answers", "extended")):
            path = directory / f"{step}.jsonl"
            if not path.exists():
                raise ValueError(f"{path} not found: is {directory} a finished synthesis directory?")
            for record in read_jsonl(path):
                text = record[field]
                if text is None or (record["instruction"], text) in seen:
                    continue
                seen.add((record["instruction"], text))
                answers.append(
                    {
                        "key": f"{directory.name}/{record['key']}",
                        "lang": record["lang"],
                        "instruction": record["instruction"],
                        "answer": text,
                    }
                )
    return answers


def build_final_data(iteration_dirs: Sequence[Path], output_file: Path, seed: int, config: FinalDataConfig) -> int:
    """Write the final length-following SFT set (chat messages JSONL); returns its number of examples."""
    return write_jsonl_atomically(Path(output_file), final_examples(collect_long_answers(iteration_dirs), seed, config))

"""Typed configuration of the two baselines, one dataclass per baseline.

Load from YAML with `harness.config.load_config(BacktranslationConfig, path)`; an unknown field is
an error that names it. Both carry their own `train: TrainConfig`, sample caps for equal budgets
(`max_samples`), a seed, sampling and the request cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selflengthen.config import LANGUAGES, SelfInstructConfig, reference_sampling
from infra.sampling import SamplingConfig
from selflengthen.lora import TrainConfig


@dataclass
class HubCorpus:
    """A text column of a Hugging Face dataset (Hub id, or a local dataset folder).

    Fields: name, split, column.
    """

    name: str = field(metadata={"help": "Dataset id on the Hub, or a local folder `datasets.load_dataset` reads."})
    split: str = field(default="train", metadata={"help": "Split to read."})
    column: str = field(default="text", metadata={"help": "Column holding the long texts."})


@dataclass
class BacktranslationConfig:
    """Instruction backtranslation: the model writes the instruction each long human text answers.

    Fields:
        Data: corpus, corpus_hf, language, max_documents, max_samples, long_texts, tokenizer,
            tokens_per_word, prompt_tokens_reserved.
        Instructions: shown_words, instruction_max_tokens, instruction_attempts, instruction_min_words,
            instruction_max_words, demand_weights.
        Self-curation: min_rating, rating_scale, rating_max_tokens, rating_attempts, constrained_rating.
        Run: seed, max_in_flight, sampling.
        Training: train.
    """

    corpus: str | None = field(
        default=None, metadata={"help": "JSONL file of long texts, one `text` field per line (or set corpus_hf)."}
    )
    corpus_hf: HubCorpus | None = field(
        default=None, metadata={"help": "A Hugging Face dataset column of long texts, instead of `corpus`."}
    )
    language: str = field(default="en", metadata={"help": "Language of the corpus and of the prompts (en, zh)."})
    max_documents: int | None = field(
        default=None, metadata={"help": "Backtranslate at most this many texts (seeded random choice); null: all."}
    )
    max_samples: int | None = field(
        default=None,
        metadata={"help": "Write at most this many training samples (for budgets equal to another arm's); null: all kept."},
    )
    long_texts: Literal["truncate", "skip"] = field(
        default="truncate",
        metadata={
            "help": "A text too long for train.max_length: keep its leading paragraphs that fit (truncate), "
            "or leave it out (skip). A text whose first paragraph alone is too long is always left out."
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "Count a text's tokens with this tokenizer (normally the base model's); null: estimate."},
    )
    tokens_per_word: float = field(
        default=1.5, metadata={"help": "Tokens per word, to estimate a text's tokens when no tokenizer is set."}
    )
    prompt_tokens_reserved: int = field(
        default=384,
        metadata={
            "help": "Of train.max_length, the tokens kept free for the instruction (instruction_max_tokens) "
            "and the chat template."
        },
    )
    shown_words: int = field(
        default=300,
        metadata={"help": "Words of a text's beginning the model sees (with the total length) to write its instruction."},
    )
    instruction_max_tokens: int = field(default=256, metadata={"help": "Tokens for one written instruction."})
    instruction_attempts: int = field(
        default=3, metadata={"help": "Tries to write a usable instruction for one text before giving it up."}
    )
    instruction_min_words: int = field(default=4, metadata={"help": "A written instruction needs this many words."})
    instruction_max_words: int = field(default=200, metadata={"help": "A written instruction may have this many words."})
    demand_weights: dict[str, float] = field(
        default_factory=lambda: {"about": 1.0},
        metadata={
            "help": "Relative frequency of each kind of length demand (about, range, above, below) added to the "
            "instruction, phrased as in the final Self-Lengthen data; the default always says 'about N words'."
        },
    )
    min_rating: int | None = field(
        default=4,
        metadata={
            "help": "Self-curation: keep a pair the model rates at least this (Humpback keeps only the top score); "
            "null: no curation, every pair is kept."
        },
    )
    rating_scale: int = field(default=5, metadata={"help": "Ratings run from 1 to this."})
    rating_max_tokens: int = field(default=32, metadata={"help": "Tokens for one rating reply."})
    rating_attempts: int = field(default=3, metadata={"help": "Tries to get a readable rating before giving a pair up."})
    constrained_rating: bool = field(
        default=False,
        metadata={"help": "Hold the self-curation reply to JSON {rating: 1..rating_scale, reason} with a JSON schema "
                  "(a deviation: Humpback reads free text, where a reply in prose is unrated). A backend that takes "
                  "no schema gets the free-text request (selflengthen/baselines/constrained.py)."},
    )
    seed: int = field(default=0, metadata={"help": "Seeds the choice of texts and of the demand phrasings."})
    max_in_flight: int = field(default=16, metadata={"help": "Model requests in flight at once."})
    sampling: SamplingConfig = field(
        default_factory=reference_sampling,
        metadata={"help": "Sampling for instructions and ratings (each with its own max_tokens above)."},
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "LoRA fine-tuning on the pairs."})

    def __post_init__(self) -> None:
        if (self.corpus is None) == (self.corpus_hf is None):
            raise ValueError("set exactly one of corpus (a JSONL file) and corpus_hf (a Hugging Face dataset)")
        _check_language(self.language)
        _check_positive("max_documents", self.max_documents)
        _check_positive("max_samples", self.max_samples)
        if self.constrained_rating and self.min_rating is None:
            raise ValueError("constrained_rating needs min_rating: with min_rating null no pair is rated")
        if self.min_rating is not None and not 1 <= self.min_rating <= self.rating_scale:
            raise ValueError(f"min_rating must be between 1 and rating_scale ({self.rating_scale}), got {self.min_rating}")
        if self.prompt_tokens_reserved >= self.train.max_length:
            raise ValueError(
                f"prompt_tokens_reserved ({self.prompt_tokens_reserved}) leaves no room in train.max_length "
                f"({self.train.max_length})"
            )
        _check_at_least_one(self, "shown_words", "instruction_attempts", "rating_attempts", "max_in_flight")


@dataclass
class ImitationConfig:
    """Behaviour imitation (AgentWrite): a teacher plans sections with word budgets, then writes each in turn.

    Fields:
        Instructions: instructions_file, languages, seed_files, self_instruct, max_instructions.
        Teacher: plan_max_tokens, plan_attempts, constrained_plan, default_section_words, min_sections,
            max_sections, section_attempts, tokens_per_word, written_context_words.
        Data: max_samples.
        Run: seed, max_in_flight, sampling.
        Training: train.
    """

    instructions_file: str | None = field(
        default=None,
        metadata={
            "help": "A Self-Lengthen iteration's instructions.jsonl (or its folder); null: self-instruct new ones "
            "from the seed files with the Self-Lengthen step."
        },
    )
    languages: list[str] = field(default_factory=lambda: ["en"], metadata={"help": "Languages to answer (en, zh)."})
    seed_files: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Self-instruct only: per language, a JSONL of seed instructions (default: data dir)."},
    )
    self_instruct: SelfInstructConfig = field(
        default_factory=SelfInstructConfig, metadata={"help": "Self-instruct only: how new instructions are written."}
    )
    max_instructions: int | None = field(
        default=None, metadata={"help": "Answer at most this many instructions per language; null: all."}
    )
    max_samples: int | None = field(
        default=None,
        metadata={"help": "Write at most this many training samples (for budgets equal to another arm's); null: all."},
    )
    plan_max_tokens: int = field(default=1024, metadata={"help": "Tokens for the teacher's plan."})
    plan_attempts: int = field(default=3, metadata={"help": "Tries to get a usable plan before giving an instruction up."})
    constrained_plan: bool = field(
        default=False,
        metadata={"help": "Hold the plan to JSON {sections: [{text, words}, ...]} (min_sections..max_sections) with a "
                  "JSON schema (a deviation: AgentWrite reads free text, where a plan in prose is unusable). A "
                  "backend that takes no schema gets the free-text request (selflengthen/baselines/constrained.py)."},
    )
    default_section_words: int | None = field(
        default=None,
        metadata={"help": "Budget of a numbered section whose plan line states none; null refuses such plans "
                  "(AgentWrite's plans always state budgets; small teachers often omit them)."},
    )
    min_sections: int = field(default=2, metadata={"help": "A usable plan has at least this many sections."})
    max_sections: int = field(default=30, metadata={"help": "A usable plan has at most this many sections."})
    section_attempts: int = field(
        default=3, metadata={"help": "Tries to get a non-empty section before giving the whole answer up."}
    )
    tokens_per_word: float = field(
        default=2.0,
        metadata={"help": "A section may use its word budget times this many tokens (capped by sampling.max_tokens)."},
    )
    written_context_words: int | None = field(
        default=None,
        metadata={
            "help": "Show the teacher only the last this many words of the text so far (for short contexts); "
            "null: all of it, as AgentWrite does."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seeds self-instruct and the choice of instructions."})
    max_in_flight: int = field(default=16, metadata={"help": "Teacher requests in flight at once."})
    sampling: SamplingConfig = field(
        default_factory=reference_sampling,
        metadata={"help": "The teacher's sampling (self-instruct, plans, sections); max_tokens caps one section."},
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "LoRA fine-tuning of the student."})

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages must not be empty")
        for lang in self.languages:
            _check_language(lang)
        _check_positive("max_instructions", self.max_instructions)
        _check_positive("max_samples", self.max_samples)
        if not 1 <= self.min_sections <= self.max_sections:
            raise ValueError(f"need 1 <= min_sections <= max_sections, got {self.min_sections} and {self.max_sections}")
        _check_positive("written_context_words", self.written_context_words)
        _check_at_least_one(self, "plan_attempts", "section_attempts", "max_in_flight")


def _check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {lang!r}")


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1 or null, got {value}")


def _check_at_least_one(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")

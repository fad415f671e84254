"""Typed configuration of the Self-Lengthen synthesis steps, one dataclass per step.

Defaults follow the reference implementation (QwenLM/Self-Lengthen); a help text says so where a
default differs. Load from YAML with `harness.config.load_config(SelfLengthenConfig, path)`; an
unknown field is an error that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from infra.sampling import SamplingConfig
from selflengthen.lora import TrainConfig
from selflengthen.text import normal_reply

LANGUAGES = ("en", "zh")
DATA_DIR_SETTING = "SELFLENGTHEN_DATA_DIR"

REFERENCE_STOP = ["<|eot_id|>", "\n\n---", "\n\n\n", "\n---", "---", "<|im_end|>"]


def reference_sampling() -> SamplingConfig:
    """The reference's sampling for both roles (its max_tokens is 16384)."""
    return SamplingConfig(
        temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1, max_tokens=4096, stop=list(REFERENCE_STOP)
    )


@dataclass
class SelfInstructConfig:
    """Self-instruct: write new long-writing instructions from two random ones of the pool.

    Fields: instructions_per_language, max_attempts, min_words, max_words, judge_max_tokens,
    yes_answers, no_answers, constrained_judge, stop_markers, include_seeds.
    """

    instructions_per_language: int = field(
        default=2000, metadata={"help": "New instructions to write per language (reference: 2000)."}
    )
    max_attempts: int = field(
        default=10, metadata={"help": "Tries per instruction slot before giving it up (reference: 10)."}
    )
    min_words: int = field(default=4, metadata={"help": "An instruction needs at least this many words."})
    max_words: int = field(default=499, metadata={"help": "An instruction may have at most this many words."})
    judge_max_tokens: int = field(default=8, metadata={"help": "Tokens for the yes/no suitability answer."})
    yes_answers: dict[str, list[str]] = field(
        default_factory=lambda: {"en": ["yes"], "zh": ["是", "是的"]},
        metadata={"help": "Per language, the replies (case and punctuation ignored) that accept an instruction."},
    )
    no_answers: dict[str, list[str]] = field(
        default_factory=lambda: {"en": ["no"], "zh": ["否", "不是"]},
        metadata={"help": "Per language, the replies rejecting an instruction (a constrained judge's other choices)."},
    )
    constrained_judge: bool = field(
        default=False,
        metadata={"help": "Constrain the suitability reply to a yes or no answer with a JSON schema (a deviation: the "
                  "reference parses free text, where a reply in prose counts as no). Needs structured output: "
                  "backend inprocess or ray, or a vllm server."},
    )
    stop_markers: dict[str, list[str]] = field(
        default_factory=lambda: {"en": ["\nInstruction 4", "\n\n"], "zh": ["\n指令4", "\n\n"]},
        metadata={"help": "Per language, extra stop strings that end the raw completion after one instruction."},
    )
    include_seeds: bool = field(
        default=False,
        metadata={"help": "Also answer the seed instructions themselves (the reference answers only new ones)."},
    )

    def __post_init__(self) -> None:
        """A constrained judge chooses among the yes and no answers: one that is both would count as yes."""
        for lang in sorted(set(self.yes_answers) & set(self.no_answers)) if self.constrained_judge else ():
            both = {normal_reply(a) for a in self.yes_answers[lang]} & {normal_reply(a) for a in self.no_answers[lang]}
            if both:
                raise ValueError(f"no_answers.{lang} repeats yes_answers.{lang} "
                                 f"({', '.join(sorted(both))}, case and punctuation ignored); a constrained judge's "
                                 "answers must be either yes or no")


@dataclass
class GeneratorConfig:
    """Initial answers: the Generator answers each instruction by chat.

    Fields: samples_per_instruction, max_attempts.
    """

    samples_per_instruction: int = field(default=2, metadata={"help": "Answers per instruction (reference: 2)."})
    max_attempts: int = field(
        default=20, metadata={"help": "Tries per answer while the filters reject it (reference: 20)."}
    )


@dataclass
class ExtenderConfig:
    """Extension: enrich the first half by chat, then continue the rest by raw completion.

    Fields: extensions_per_answer, max_attempts, rounds, keep_fraction, min_growth.
    """

    extensions_per_answer: int = field(
        default=2, metadata={"help": "Extensions tried per initial answer (reference: 2)."}
    )
    max_attempts: int = field(
        default=20, metadata={"help": "Full extension attempts per item before giving up (reference: 20)."}
    )
    rounds: int = field(default=3, metadata={"help": "Extension rounds per attempt, each from the best answer so far."})
    keep_fraction: float = field(
        default=2 / 3, metadata={"help": "Leading share of the enriched half's paragraphs kept."}
    )
    min_growth: float = field(
        default=1.2, metadata={"help": "Accept only answers longer than this times the original (in words)."}
    )


@dataclass
class FilterConfig:
    """The quality filters every answer must pass, and the short-sample dropout.

    Fields: terminal_punctuation, ngram_words, ngram_chars, meta_words, head_lines, tail_lines,
    drop_short, trim_unfinished.
    """

    terminal_punctuation: list[str] = field(
        default_factory=lambda: [
            ".",
            "!",
            "?",
            '"',
            "'",
            ")",
            "]",
            "}",
            ">",
            "`",
            "…",
            "。",
            "！",
            "？",
            "”",
            "’",
            "）",
            "】",
            "」",
            "』",
        ],
        metadata={"help": "An answer must end in one of these (the reference's Chinese list lacks '.')."},
    )
    ngram_words: int = field(default=10, metadata={"help": "English: reject when any run of this many words repeats."})
    ngram_chars: int = field(
        default=13,
        metadata={"help": "Chinese: reject when any run of this many characters (ASCII runs count one) repeats."},
    )
    meta_words: dict[str, list[str]] = field(
        default_factory=lambda: {
            "en": ["revised", "revision", "response", "version", "paragraph"],
            "zh": ["修改", "修订", "回复", "版本", "段落"],
        },
        metadata={"help": "Per language, words that betray talk about the answer instead of the answer."},
    )
    head_lines: int = field(default=2, metadata={"help": "Meta words are looked for in this many first lines..."})
    tail_lines: int = field(default=3, metadata={"help": "...and in this many last lines."})
    drop_short: bool = field(
        default=True,
        metadata={"help": "Drop short extended answers with probability 2*r^3 before training (r: the share of "
                          "answers at least as long, in words)."},
    )
    trim_unfinished: bool = field(
        default=False,
        metadata={"help": "Deviation from the reference, which rejects such answers: an answer that stops "
                          "mid-sentence (a small model at its token budget) is cut back to its last finished "
                          "sentence (never inside a word) before the filters run."},
    )


@dataclass
class FinalDataConfig:
    """Final SFT data: every iteration's long answers with a length demand added to the instruction.

    Fields: min_words, max_words, type_weights, coarse_step_probability, chinese_numerals_probability.
    """

    min_words: int = field(default=2000, metadata={"help": "Answers shorter than this are left out (reference: 2000)."})
    max_words: int = field(
        default=8000, metadata={"help": "Answers this long or longer are left out (reference: 8000)."}
    )
    type_weights: dict[str, float] = field(
        default_factory=lambda: {"about": 0.4, "range": 0.25, "above": 0.1, "below": 0.25},
        metadata={"help": "Relative frequency of each kind of length demand (reference's mix)."},
    )
    coarse_step_probability: float = field(
        default=0.2, metadata={"help": "Chance to round lengths of 1000+ words to 2000 instead of 1000."}
    )
    chinese_numerals_probability: float = field(
        default=0.5, metadata={"help": "Chance a Chinese demand writes its numbers in Chinese numerals."}
    )


MAX_ITERATIONS = 100
"""The paper runs 3; a hundred is far beyond any budget, and a larger number is a typo, not a plan."""


@dataclass
class SelfLengthenConfig:
    """The whole method: K iterations of self-instruct, generate, extend, filter, train.

    Fields:
        Data: languages, seed_files, work_dir.
        Scale: iterations, max_in_flight, seed, stop_at_fraction.
        Sampling: sampling (both roles).
        Steps: self_instruct, generator, extender, filters, final_data.
        Training: train.
    """

    iterations: int = field(default=3, metadata={"help": "Self-Lengthen iterations K."})
    languages: list[str] = field(
        default_factory=lambda: ["en"],
        metadata={
            "help": "Languages to synthesise (en, zh); the paper runs one per model (en for Llama, zh for Qwen)."
        },
    )
    seed_files: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Per language, a JSONL file of seed instructions (`prompt` field); missing ones default "
            f"to ${DATA_DIR_SETTING}/seed_instructions_<lang>.jsonl."
        },
    )
    work_dir: str = field(default="runs/selflengthen", metadata={"help": "Where each iteration's files go."})
    max_in_flight: int = field(default=16, metadata={"help": "Model requests in flight at once, over all steps."})
    seed: int = field(default=0, metadata={"help": "Seeds every per-item random choice (resumed runs repeat them)."})
    stop_at_fraction: float | None = field(
        default=None,
        metadata={
            "help": "End each step once this share of its slots has finished, abandoning the stragglers "
            "(the reference kills a step at 0.95); null waits for every slot."
        },
    )
    sampling: SamplingConfig = field(
        default_factory=reference_sampling, metadata={"help": "Sampling for both roles (reference: max_tokens 16384)."}
    )
    self_instruct: SelfInstructConfig = field(
        default_factory=SelfInstructConfig, metadata={"help": "Self-instruct step."}
    )
    generator: GeneratorConfig = field(default_factory=GeneratorConfig, metadata={"help": "Initial answers step."})
    extender: ExtenderConfig = field(default_factory=ExtenderConfig, metadata={"help": "Extension step."})
    filters: FilterConfig = field(default_factory=FilterConfig, metadata={"help": "Answer filters."})
    final_data: FinalDataConfig = field(
        default_factory=FinalDataConfig, metadata={"help": "Final length-following data."}
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "LoRA fine-tuning of each role."})

    def __post_init__(self) -> None:
        unknown = [lang for lang in self.languages if lang not in LANGUAGES]
        if unknown or not self.languages:
            raise ValueError(
                f"languages must be a non-empty list drawn from {', '.join(LANGUAGES)}, got {self.languages}"
            )
        if self.stop_at_fraction is not None and not 0 < self.stop_at_fraction <= 1:
            raise ValueError(f"stop_at_fraction must be in (0, 1] or null, got {self.stop_at_fraction}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {self.iterations}")
        judge = self.self_instruct
        for lang in self.languages if judge.constrained_judge else ():
            if not judge.yes_answers.get(lang) or not judge.no_answers.get(lang):
                raise ValueError(f"self_instruct.constrained_judge needs yes_answers.{lang} and no_answers.{lang}, "
                                 "each with at least one reply")

    def seed_file(self, lang: str) -> Path:
        """The seed instruction file of `lang`: the configured one, else the data-dir default."""
        if lang in self.seed_files:
            return Path(self.seed_files[lang])
        data_dir = os.environ.get(DATA_DIR_SETTING)
        if not data_dir:
            raise ValueError(f"no seed file for {lang!r}: set seed_files.{lang} or the {DATA_DIR_SETTING} setting")
        return Path(data_dir) / f"seed_instructions_{lang}.jsonl"

"""LLM judges: rubric-driven quality scores for long outputs, with caching, retries and reliability checks."""

from judges.config import JudgeConfig
from judges.errors import JudgeError, JudgeReplyError
from judges.judgements import judge_scores
from judges.parser import ParsedReply, parse_reply
from judges.reliability import ReliabilityConfig, krippendorff_alpha_interval, measure_reliability
from judges.rubric import Rubric, load_rubric

__all__ = [
    "JudgeConfig",
    "JudgeError",
    "JudgeReplyError",
    "ParsedReply",
    "ReliabilityConfig",
    "Rubric",
    "judge_scores",
    "krippendorff_alpha_interval",
    "load_rubric",
    "measure_reliability",
    "parse_reply",
]

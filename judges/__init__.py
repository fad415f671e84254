"""LLM judges: rubric-driven quality scores for long outputs, with caching, retries and reliability checks."""

from judges.config import JudgeConfig
from judges.errors import JudgeError, JudgeReplyError
from judges.judgements import judge_scores
from judges.pairwise import PairwiseConfig, judge_pairwise, load_pairwise_rubric
from judges.parser import ParsedReply, parse_reply
from judges.reliability import ReliabilityConfig, krippendorff_alpha_interval, measure_reliability
from judges.rubric import Rubric, load_rubric
from judges.sanity import SanityConfig, check_sanity
from judges.trust import with_trust

__all__ = [
    "JudgeConfig",
    "JudgeError",
    "JudgeReplyError",
    "PairwiseConfig",
    "ParsedReply",
    "ReliabilityConfig",
    "Rubric",
    "SanityConfig",
    "check_sanity",
    "judge_pairwise",
    "judge_scores",
    "krippendorff_alpha_interval",
    "load_pairwise_rubric",
    "load_rubric",
    "measure_reliability",
    "parse_reply",
    "with_trust",
]

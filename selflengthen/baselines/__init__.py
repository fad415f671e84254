"""The two usual ways to get long-output training data, against which Self-Lengthen is compared.

- Instruction backtranslation (`build_backtranslation_data`): the model writes the instruction
  that each long human-written text answers, rates the pair, keeps the good ones.
- Behaviour imitation (`build_imitation_data`): a teacher plans sections with word budgets and
  writes them in turn (AgentWrite); the joined answers teach the student.

Both write chat-message `data.jsonl` (the Self-Lengthen trainer's format) and `stats.json` in a
work directory; `train_baseline` fine-tunes with `train_role` and adds the training tokens.
"""

from selflengthen.baselines.backtranslation import build_backtranslation_data
from selflengthen.baselines.config import BacktranslationConfig, HubCorpus, ImitationConfig
from selflengthen.baselines.imitation import build_imitation_data
from selflengthen.baselines.runner import BaselineDataResult, finished_data_result, why_no_samples
from selflengthen.baselines.fine_tune import train_baseline, trained_stats

__all__ = [
    "BacktranslationConfig",
    "BaselineDataResult",
    "HubCorpus",
    "ImitationConfig",
    "build_backtranslation_data",
    "build_imitation_data",
    "finished_data_result",
    "train_baseline",
    "trained_stats",
    "why_no_samples",
]

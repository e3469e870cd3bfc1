"""Scoring candidates with an LLM: prompts, yes/no scorers, evidence and older-taste summaries.

- `prompts.py`: the recommendation prompt as a shared prefix + one suffix per candidate.
- `yes_no.py`: `p(yes) / (p(yes) + p(no))` from the first token; `SharedPrefixScorer` runs
  the prefix once (KV cache), `NaiveScorer` one full pass per candidate (the reference),
  `ServerScorer` asks an OpenAI-compatible server (`llm_server_url`).
- `packed.py`: all of a user's candidates in one sequence (4-D mask) with item-token slots:
  the trained yes/no scorer's layout, in training and in scoring.
- `evidence.py`: the typed evidence of a recommendation (the scorer's parts and cited history
  items first, then the keywords and similar users that support it) and its one line.
- `preference.py`: `LLMPreferenceSummarizer`, one cached sentence on the older history.
"""

from mmsrarec.scoring.evidence import build_evidence, evidence_line
from mmsrarec.scoring.preference import LLMPreferenceSummarizer
from mmsrarec.scoring.prompts import build_prefix, candidate_suffix
from mmsrarec.scoring.yes_no import (
    NaiveScorer,
    ServerScorer,
    SharedPrefixScorer,
    yes_no_ratio,
    yes_no_token_ids,
)

__all__ = [
    "LLMPreferenceSummarizer",
    "NaiveScorer",
    "ServerScorer",
    "SharedPrefixScorer",
    "build_prefix",
    "candidate_suffix",
    "build_evidence",
    "evidence_line",
    "yes_no_ratio",
    "yes_no_token_ids",
]

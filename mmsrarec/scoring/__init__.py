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

The names below load their module on first use (PEP 562), so that importing a light module
of the package (`scoring.evidence`, which the chat's rules use) does not load torch: the
`trace` commands read chat threads, whose state holds the chat's types, in under a second.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "build_evidence": "evidence",
    "evidence_line": "evidence",
    "LLMPreferenceSummarizer": "preference",
    "build_prefix": "prompts",
    "candidate_suffix": "prompts",
    "NaiveScorer": "yes_no",
    "ServerScorer": "yes_no",
    "SharedPrefixScorer": "yes_no",
    "yes_no_ratio": "yes_no",
    "yes_no_token_ids": "yes_no",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module `mmsrarec.scoring` has no attribute `{name}`")
    return getattr(importlib.import_module(f"mmsrarec.scoring.{_WHERE[name]}"), name)

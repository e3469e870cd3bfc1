"""Stage 1 of MMSRARec: items -> short keyword lists.

- `prompts.py`: system prompt, examples, image prompt; `PROMPT_VERSION` (a cache-key part).
- `parse.py`: `parse_keywords` turns a model's answer into 0..8 clean keywords.
- `llm_summarizer.py`: `LLMSummarizer`, the `Summarizer` of the graph (text LLM + optional VLM).
- `cache.py`: `KeywordCache`, the SQLite `KeywordStore` (kill-safe).
- `catalog.py`: `summarize_catalog`, the resumable offline pass over a catalog.
"""

from mmsrarec.summarization.cache import KeywordCache
from mmsrarec.summarization.catalog import summarize_catalog
from mmsrarec.summarization.llm_summarizer import LLMSummarizer
from mmsrarec.summarization.parse import MAX_KEYWORDS, MIN_KEYWORDS, merge_keywords, parse_keywords
from mmsrarec.summarization.prompts import PROMPT_VERSION

__all__ = [
    "MAX_KEYWORDS",
    "MIN_KEYWORDS",
    "PROMPT_VERSION",
    "KeywordCache",
    "LLMSummarizer",
    "merge_keywords",
    "parse_keywords",
    "summarize_catalog",
]

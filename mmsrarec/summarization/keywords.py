"""Where a recommender's item texts take their keywords: the summarizers' keyword caches.

Sources: `none` (the items' own text), `base` (the base summarizer's cached keywords, from
`mmsrarec summarize --critic`), `tuned[:tag]` (the GRPO summarizer's: `mmsrarec train
summarizer [--tag]`, then `mmsrarec summarize --critic --tuned [--tag]`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mmsrarec.config import Settings
from mmsrarec.data import Dataset
from mmsrarec.errors import NotPreparedError
from mmsrarec.models.adapters import tuned_summarizer_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeywordSource:
    """Keywords per raw item id, and where they come from.

    Attributes:
        description: the summarizer's keyword-cache name, or why there are none.
        keywords: item id -> keywords; empty: the items' own text is used.
        fallback: True when keywords were asked for but the items' own text is used instead.
    """

    description: str
    keywords: dict[str, list[str]] = field(default_factory=dict)
    fallback: bool = False


def resolve_keywords(settings: Settings, dataset: Dataset, source: str) -> KeywordSource:
    """The keywords of `source` (`none`, `base`, `tuned` or `tuned:<tag>`).

    Every catalog item must have cached keywords. `tuned` alone is the default of
    `llm-recommender`: without a GRPO adapter or its catalog keywords it falls back on the
    items' own text and says so (in the log and in `fallback`), so that the two-command set-up
    needs no GRPO run. On the new-releases split the GRPO keywords are refused the same way:
    GRPO's data and R_collab read the interactions of every item, the cold ones included.
    Other sources raise `NotPreparedError`.
    """
    if source == "none":
        return KeywordSource("item text")
    if dataset.cold and source != "base":
        logger.warning("new-releases split: the GRPO summarizer's keywords would leak the cold "
                       "items' interactions; item texts without keywords")  # fmt: skip
        return KeywordSource("item text (new-releases split: no GRPO keywords)", fallback=True)
    if source == "base":
        name, fix = settings.model, "mmsrarec summarize --critic"
    elif source.partition(":")[0] == "tuned":
        tag = source.partition(":")[2]
        fix = "mmsrarec summarize --critic --tuned" + (f" --tag {tag}" if tag else "")
        try:
            name = tuned_summarizer_name(settings, tag)
        except NotPreparedError:
            if source != "tuned":
                raise
            logger.warning("no GRPO summarizer adapter: item texts without keywords")
            return KeywordSource("item text (no GRPO summarizer)", fallback=True)
    else:
        raise ValueError(f"unknown keyword source `{source}`")
    try:
        keywords = stored_keywords(settings, dataset, name)
    except NotPreparedError:
        keywords = {}
    missing = dataset.n_items - len(keywords)
    if missing:
        if source == "tuned":
            logger.warning("%d items lack `%s` keywords: item texts without keywords", missing,
                           name)  # fmt: skip
            return KeywordSource(f"item text ({missing} items lack {name} keywords: run "
                                 f"`{fix}`)", fallback=True)  # fmt: skip
        raise NotPreparedError(f"{missing} of {dataset.n_items} items have no `{name}` "
                               f"keywords: run `{fix}`")  # fmt: skip
    return KeywordSource(name, keywords)


def stored_keywords(settings: Settings, dataset: Dataset, summarizer: str) -> dict[str, list[str]]:
    """The summarizer's cached keywords of the catalog (`mmsrarec summarize`); items it has
    not summarized are left out."""
    from mmsrarec.summarization.cache import KeywordCache
    from mmsrarec.summarization.prompts import PROMPT_VERSION

    path = settings.cache_dir / "keywords.sqlite"
    if not path.exists():
        raise NotPreparedError(
            f"no keyword cache at `{path}`: run `mmsrarec summarize --critic` first"
        )
    with KeywordCache(path, summarizer, PROMPT_VERSION) as cache:
        return {k: v for k, v in cache.get_many(dataset.items).items() if v}

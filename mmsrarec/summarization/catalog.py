"""Summarize a whole catalog offline, resumably: cached items are skipped, each batch is
stored as soon as it is done, so a killed run loses at most the batches in flight.

The batches are summarized one after another by default, or by a `FanOut` (Ray actors asking
an LLM server side by side: `summarization.fan_out`); either way this process alone writes the
cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tqdm.auto import tqdm

from mmsrarec.data import Item
from mmsrarec.summarization.cache import KeywordCache
from mmsrarec.types import Critic, Summarizer

# Summarizes batches (in any order): yields each batch with its keywords per item id.
FanOut = Callable[[list[list[Item]]], Iterable[tuple[list[Item], dict[str, list[str]]]]]


def summarize_catalog(
    items: Sequence[Item],
    summarizer: Summarizer | None,
    cache: KeywordCache,
    critic: Critic | None = None,
    *,
    batch_size: int = 8,
    progress: bool = True,
    fan_out: FanOut | None = None,
) -> dict[str, Any]:
    """Fill `cache` with keywords for every item of `items` it does not hold yet.

    One summarizer round per item: the critic, when given, only scores the keywords (the
    score is stored as the row's `reward`); the feedback loop that retries weak summaries
    is the graph's (`mmsrarec.nodes.critic`), which runs for items not cached here.

    Args:
        items: The catalog (or part of it). Duplicate ids are summarized once.
        summarizer: Makes the keywords; `cache` should be keyed by its `name`. None when
            `fan_out` makes them.
        cache: Where finished keywords go, one transaction per batch.
        critic: Optional scorer of each batch.
        batch_size: Items per summarizer call (and per cache transaction).
        progress: Show a tqdm bar on stderr.
        fan_out: Summarizes the batches instead of `summarizer` one by one (its keywords
            must be what `summarizer`'s would be: the cache is keyed by `summarizer.name`).

    Returns:
        `{"summarized": n, "cached": n, "seconds": s, "mean_keywords": x}`, plus
        `"mean_reward"` when a critic scored them; counts are items.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if summarizer is None and fan_out is None:
        raise ValueError("summarize_catalog needs a `summarizer` or a `fan_out`")
    started = time.perf_counter()
    unique = list({item.item_id: item for item in items}.values())
    cached = cache.get_many(unique)
    todo = [item for item in unique if item.item_id not in cached]
    n_keywords: list[int] = []
    rewards: list[float] = []
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    if fan_out is not None:
        done = fan_out(batches)
    else:
        assert summarizer is not None
        done = ((batch, summarizer.summarize(batch, {})) for batch in batches)
    with tqdm(total=len(todo), disable=not progress, unit="item", desc="summarize") as bar:
        for batch, drafts in done:
            judged = critic.judge(batch, drafts) if critic is not None else {}
            rows = []
            for item in batch:
                keywords = drafts.get(item.item_id, [])
                reward = judged[item.item_id]["total"] if item.item_id in judged else None
                rows.append((item, keywords, reward))
                n_keywords.append(len(keywords))
                if reward is not None:
                    rewards.append(reward)
            cache.put_many(rows)
            bar.update(len(batch))
    stats: dict[str, Any] = {
        "summarized": len(todo),
        "cached": len(unique) - len(todo),
        "seconds": round(time.perf_counter() - started, 3),
        "mean_keywords": sum(n_keywords) / len(n_keywords) if n_keywords else 0.0,
    }
    if rewards:
        stats["mean_reward"] = sum(rewards) / len(rewards)
    return stats

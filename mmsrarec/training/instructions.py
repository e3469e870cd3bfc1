"""The recommender's multi-task SFT examples, built from training positions only.

For a training user with training sequence `s` (everything before the validation item), a
position `t >= 1` gives the history `s[t-n:t]` and the positive next item `s[t]`. Negatives
are random items the user never touched in training. No validation or test item of any user
enters an example (the validation examples of `validation_examples` are only for eval loss
and early stopping, like SASRec's).

Four instruction types (`TASKS`), modelled on LC-Rec, each a `{"prompt", "completion",
"task"}` row (TRL's prompt-completion format: the loss is on the completion only):

- `yes_no`: the scorer's own prompt (`scoring.prompts.build_prefix + candidate_suffix`, so
  training and inference see the very same text), completion `yes` for the real next item,
  `no` for each random negative.
- `pick_next`: history + a shuffled list of the next item and negatives -> the next title.
- `keywords_title`: an item's keywords -> its title.
- `next_keywords`: history -> the next item's keywords.

Prompts of the last three go through `llm.render_prompt` (the chat template for chat models,
plain text for base models), like the summarizer's.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mmsrarec.data import Dataset, Item
from mmsrarec.models import LLM
from mmsrarec.prompt_text import sanitize
from mmsrarec.scoring.prompts import (
    MAX_TITLE_CHARS,
    build_prefix,
    candidate_suffix,
    history_line,
    keyword_list,
)
from mmsrarec.summarization.parse import parse_keywords
from mmsrarec.types import KeywordsFor, SimilarFor, SimilarUser

TASKS = ("yes_no", "pick_next", "keywords_title", "next_keywords")
Example = dict[str, str]
PICK_SIZE = 5  # items in a pick_next list


def text_keywords(item: Item) -> list[str]:
    """Keywords parsed from the item's own text: the fallback where no summary is cached."""
    return parse_keywords(item.text or item.title)


def _render(llm: LLM, system: str, user: str) -> str:
    return llm.render_prompt(
        [{"role": "system", "content": system}, {"role": "user", "content": user}]
    )


def _history_lines(llm: LLM, items: Sequence[Item], keywords_for: KeywordsFor) -> str:
    lines = [
        history_line(llm, n, item.title, keywords_for(item)) for n, item in enumerate(items, 1)
    ]
    return "\n".join(lines) or "(none)"


def _title(llm: LLM, item: Item) -> str:
    return sanitize(item.title, MAX_TITLE_CHARS, llm.tokenizer)


def yes_no_examples(
    llm: LLM,
    history: Sequence[Item],
    positive: Item,
    negatives: Sequence[Item],
    keywords_for: KeywordsFor,
    collaborative: Sequence[SimilarUser] = (),
) -> list[Example]:
    """`yes` for the real next item, `no` for each negative; the scorer's exact prompt."""
    prefix = build_prefix(
        llm, [(item.title, keywords_for(item)) for item in history], "", collaborative
    )
    rows = [{"prompt": prefix + candidate_suffix(llm, positive), "completion": "yes"}]
    rows += [{"prompt": prefix + candidate_suffix(llm, n), "completion": "no"} for n in negatives]
    return [{**row, "task": "yes_no"} for row in rows]


def pick_next_example(
    llm: LLM,
    history: Sequence[Item],
    positive: Item,
    negatives: Sequence[Item],
    keywords_for: KeywordsFor,
    rng: random.Random,
) -> Example:
    """History + a shuffled list holding the next item -> the next item's title."""
    options = [positive, *negatives[: PICK_SIZE - 1]]
    rng.shuffle(options)
    listed = "\n".join(f"- <item>{_title(llm, option)}</item>" for option in options)
    user = (
        f"Recent items of the user, oldest first, with their keywords:\n"
        f"{_history_lines(llm, history, keywords_for)}\n"
        f"Which of these items will the user choose next?\n{listed}\nAnswer with its title."
    )
    prompt = _render(llm, "You are a recommender system.", user)
    return {"prompt": prompt, "completion": _title(llm, positive), "task": "pick_next"}


def keywords_title_example(llm: LLM, item: Item, keywords_for: KeywordsFor) -> Example:
    """An item's keywords -> its title."""
    user = f"Keywords: {keyword_list(llm, keywords_for(item))}\nWhich item is this? Title:"
    prompt = _render(llm, "You name catalog items from their keywords.", user)
    return {"prompt": prompt, "completion": _title(llm, item), "task": "keywords_title"}


def next_keywords_example(
    llm: LLM, history: Sequence[Item], positive: Item, keywords_for: KeywordsFor
) -> Example:
    """History -> the keywords of the next item."""
    user = (
        f"Recent items of the user, oldest first, with their keywords:\n"
        f"{_history_lines(llm, history, keywords_for)}\n"
        "Give the keywords of the item the user will choose next."
    )
    prompt = _render(llm, "You are a recommender system.", user)
    completion = keyword_list(llm, keywords_for(positive))
    return {"prompt": prompt, "completion": completion, "task": "next_keywords"}


def sample_negatives(dataset: Dataset, seen: set[int], count: int, rng: random.Random) -> list[int]:
    """`count` distinct item indices outside `seen` (the user's training items)."""
    if count > dataset.n_items - len(seen):
        raise ValueError(f"cannot draw {count} negatives: too few unseen items")
    chosen: list[int] = []
    while len(chosen) < count:
        index = rng.randint(1, dataset.n_items)
        if index not in seen and index not in chosen:
            chosen.append(index)
    return chosen


def examples_for_position(
    llm: LLM,
    dataset: Dataset,
    user: str,
    history: Sequence[int],
    target: int,
    seen: set[int],
    *,
    tasks: Sequence[str],
    negatives: int,
    n_history: int,
    keywords_for: KeywordsFor,
    rng: random.Random,
    similar_for: SimilarFor | None = None,
) -> list[Example]:
    """Every requested task's examples for one (history, next item) pair. Prompts show the
    last `n_history` items; similar users are found from the whole `history`, as the
    retrieval node does at inference."""
    items = [dataset.item(i) for i in history[-n_history:]]
    positive = dataset.item(target)
    need = max(negatives, PICK_SIZE - 1 if "pick_next" in tasks else 0)
    negative_items = [dataset.item(i) for i in sample_negatives(dataset, seen, need, rng)]
    rows: list[Example] = []
    if "yes_no" in tasks:
        collaborative = (
            similar_for(user, [dataset.item(i).item_id for i in history])
            if similar_for is not None
            else []
        )
        rows += yes_no_examples(
            llm, items, positive, negative_items[:negatives], keywords_for, collaborative
        )
    if "pick_next" in tasks:
        rows.append(pick_next_example(llm, items, positive, negative_items, keywords_for, rng))
    if "keywords_title" in tasks:
        rows.append(keywords_title_example(llm, positive, keywords_for))
    if "next_keywords" in tasks:
        rows.append(next_keywords_example(llm, items, positive, keywords_for))
    return rows


def training_examples(
    llm: LLM,
    dataset: Dataset,
    *,
    tasks: Sequence[str] = TASKS,
    n_users: int = 0,
    positions_per_user: int = 2,
    negatives: int = 1,
    n_history: int = 5,
    keywords_for: KeywordsFor = text_keywords,
    similar_for: SimilarFor | None = None,
    seed: int = 0,
) -> list[Example]:
    """Examples from training positions of `n_users` training users (0 = all), shuffled."""
    rng = random.Random(seed)
    train = dataset.train_sequences()
    users = [u for u, seq in train.items() if len(seq) >= 2]
    rng.shuffle(users)
    users = users[:n_users] if n_users else users
    rows: list[Example] = []
    for user in users:
        seq = train[user]
        seen = set(seq)
        positions = rng.sample(range(1, len(seq)), min(positions_per_user, len(seq) - 1))
        for t in positions:
            rows += examples_for_position(
                llm, dataset, user, seq[:t], seq[t], seen, tasks=tasks, negatives=negatives,
                n_history=n_history, keywords_for=keywords_for, rng=rng, similar_for=similar_for,
            )  # fmt: skip
    rng.shuffle(rows)
    return rows


def validation_examples(
    llm: LLM,
    dataset: Dataset,
    *,
    tasks: Sequence[str] = TASKS,
    n_users: int = 64,
    negatives: int = 1,
    n_history: int = 5,
    keywords_for: KeywordsFor = text_keywords,
    similar_for: SimilarFor | None = None,
    seed: int = 0,
) -> list[Example]:
    """Examples whose target is a user's validation item (for eval loss only)."""
    rng = random.Random(seed + 1)
    users = list(dataset.eval_users)
    rng.shuffle(users)
    rows: list[Example] = []
    for user in users[:n_users]:
        history = dataset.history(user, "valid")
        seen = set(dataset.train_sequence(user)) | {dataset.target(user, "valid")}
        rows += examples_for_position(
            llm, dataset, user, history, dataset.target(user, "valid"), seen, tasks=tasks,
            negatives=negatives, n_history=n_history, keywords_for=keywords_for, rng=rng,
            similar_for=similar_for,
        )  # fmt: skip
    return rows

"""Synthetic datasets for cost measurements only: never quote their accuracy.

`synthesize` writes the JSONL dataset format (`catalog.jsonl`, `interactions.jsonl`) that
`prepare_dataset` reads, with planted structure so that every step does realistic work:

- topics: item i belongs to topic `i % topics`; each topic has its own words, from which its
  items' titles and descriptions are made by templates;
- popularity: a power law, p(item) ~ 1 / rank^`zipf` (ranks shuffled over the catalog), and
  the topics' shares follow the same law;
- sequences: each user starts in a topic and, at each step, moves to a topic drawn from the
  topic shares with probability `drift`; the item is drawn by popularity inside the current
  topic; lengths are 3 + a geometric number with mean `mean_length - 3`, at most `MAX_LENGTH`;
- timestamps: a user's own start plus increasing integer gaps (some 0: ties, as in ML-100K).

The folder is named `synthetic-u<users>-i<items>-s<seed>` and holds `synthetic.json` (the
settings and the words "synthetic: cost measurements only"), written last: a killed run
leaves no `synthetic.json` and is written again; a finished one is not redone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmsrarec.errors import ConfigError
from mmsrarec.storage import atomic_write_json

MAX_LENGTH = 500
CHUNK_USERS = 20_000  # users generated and written per step: bounded memory at any size
START_TIME = 1_600_000_000
WORDS = " ".join(
    [
        "amber harbor quiet river stone garden silver winter copper forest ember meadow ",
        "crystal desert velvet thunder lantern orchard marble canyon paper signal hollow summit ",
        "cedar violet iron coral willow falcon tide prairie cobalt ivory glacier maple ",
        "saffron harvest beacon frost dune ocean echo pine ruby jade onyx cloud ",
        "comet delta aurora granite lotus meteor nebula opal quartz raven sable topaz ",
        "umber vapor zephyr bramble cinder drift fable grove haven island jungle kestrel ",
        "lagoon mirage nectar oasis pebble ",
    ]
).split()
KINDS = ("album", "novel", "film", "game", "guide", "series", "toolkit", "poster")
DEFAULTS = {"topics": 50, "mean_length": 15.0, "drift": 0.15, "zipf": 1.0}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Attributes:
        users: number of users (each with at least 3 interactions).
        items: catalog size.
        seed: seed of every random draw.
        topics: topic clusters.
        mean_length: mean interactions per user.
        drift: probability of moving to another topic at each step.
        zipf: power-law exponent of item and topic popularity.
    """

    users: int
    items: int
    seed: int = 0
    topics: int = DEFAULTS["topics"]
    mean_length: float = DEFAULTS["mean_length"]
    drift: float = DEFAULTS["drift"]
    zipf: float = DEFAULTS["zipf"]

    def __post_init__(self) -> None:
        if self.users < 1 or self.items < 30:
            raise ConfigError("synthetic data needs `--users` >= 1 and `--items` >= 30")
        if not 1 <= self.topics <= self.items:
            raise ConfigError(f"`topics` must be in [1, items], got {self.topics}: lower it")
        if not 3.0 < self.mean_length <= MAX_LENGTH:
            raise ConfigError(f"`mean_length` must be in (3, {MAX_LENGTH}]")
        if not 0.0 <= self.drift <= 1.0 or self.zipf < 0:
            raise ConfigError("`drift` must be in [0, 1] and `zipf` >= 0")

    @property
    def name(self) -> str:
        return f"synthetic-u{self.users}-i{self.items}-s{self.seed}"


def synthesize(config: SynthConfig, parent: Path, force: bool = False) -> tuple[Path, bool]:
    """Write the dataset into `parent/<config.name>`. Returns (folder, whether it was written)."""
    folder = parent / config.name
    marker = folder / "synthetic.json"
    if marker.exists() and not force:
        return folder, False
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(config.seed)
    topic_words = [rng.choice(len(WORDS), size=6, replace=False) for _ in range(config.topics)]
    item_weights = _power_law(config.items, config.zipf, rng)
    topic_weights = _power_law(config.topics, config.zipf, rng)
    _write_catalog(folder / "catalog.jsonl", config, topic_words, rng)
    cumulative, members = _topic_tables(item_weights, config.topics)
    with (folder / "interactions.jsonl").open("w", encoding="utf-8") as out:
        for first in range(0, config.users, CHUNK_USERS):
            count = min(CHUNK_USERS, config.users - first)
            users, items, times = _chunk(config, first, count, topic_weights, cumulative, rng)
            out.writelines(
                f'{{"user_id": "u{u}", "item_id": "i{members[i]}", "timestamp": {t}}}\n'
                for u, i, t in zip(users.tolist(), items.tolist(), times.tolist(), strict=True)
            )
    atomic_write_json(
        marker,
        {"synthetic": "cost measurements only, never accuracy claims", **asdict(config)},
    )
    return folder, True


def _power_law(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Weights 1 / rank^exponent, ranks shuffled, summing to 1: [n]."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(weights / weights.sum())


def _topic_tables(weights: np.ndarray, topics: int) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative, members): items grouped by topic (`members`, catalog positions) and each
    topic's cumulative popularity shifted by its topic number, so that `searchsorted(
    cumulative, topic + u)` draws an item of `topic` by popularity for u ~ U[0, 1)."""
    topic_of = np.arange(len(weights)) % topics
    members = np.argsort(topic_of, kind="stable")
    grouped = weights[members]
    cumulative = np.empty_like(grouped)
    for topic in range(topics):
        part = slice(*np.searchsorted(topic_of[members], [topic, topic + 1]))
        cumulative[part] = topic + np.cumsum(grouped[part]) / grouped[part].sum()
    return cumulative, members


def _chunk(
    config: SynthConfig,
    first: int,
    count: int,
    topic_weights: np.ndarray,
    cumulative: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users `first .. first + count - 1`: flat (user, grouped item position, timestamp)."""
    extra = rng.geometric(1.0 / (config.mean_length - 2.0), size=count) - 1
    lengths = np.minimum(3 + extra, MAX_LENGTH)
    users = np.repeat(np.arange(first, first + count), lengths)
    starts = np.zeros(len(users), dtype=bool)
    starts[np.cumsum(lengths) - lengths] = True
    moves = starts | (rng.random(len(users)) < config.drift)
    drawn = rng.choice(config.topics, size=int(moves.sum()), p=topic_weights)
    topics = drawn[np.cumsum(moves) - 1]  # each position keeps its last move's topic
    items = np.searchsorted(cumulative, topics + rng.random(len(users)), side="right")
    items = np.minimum(items, len(cumulative) - 1)
    gaps = rng.integers(0, 86_400, size=len(users)) * (rng.random(len(users)) > 0.1)
    gaps[starts] = rng.integers(0, 10**8, size=count)
    offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts] - gaps[starts], lengths)
    return users, items, START_TIME + offsets


def _write_catalog(
    path: Path, config: SynthConfig, topic_words: list[np.ndarray], rng: np.random.Generator
) -> None:
    """Titles and descriptions from templates over each topic's words."""
    picks = np.argsort(rng.random((config.items, 6)), axis=1)[:, :3]  # 3 distinct words
    kinds = rng.integers(0, len(KINDS), size=config.items)
    with path.open("w", encoding="utf-8") as out:
        for item in range(config.items):
            topic = item % config.topics
            a, b, c = (WORDS[topic_words[topic][p]] for p in picks[item])
            theme = " ".join(WORDS[w] for w in topic_words[topic][:2])
            row = {
                "item_id": f"i{item}",
                "title": f"{a.title()} {b.title()} {KINDS[kinds[item]]} {item}",
                "description": f"Synthetic {KINDS[kinds[item]]} of topic {topic} ({theme}): "
                f"{a}, {b} and {c}.",
            }
            out.write(json.dumps(row) + "\n")

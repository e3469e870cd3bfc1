"""The new-releases split: which items are cold, chosen by a rule users can apply to their own
data.

A cold item has no interaction before the test in any form (`Dataset.cold`): not in
training, not in a fit's validation positions, not in an index or a count. Three rules:

- `FIELD>=VALUE`: items whose catalog field `FIELD` is at least `VALUE` (compared as numbers
  when both are numbers, else as text, so ISO dates work), e.g. `release_year>=1997`;
- `first_seen>=TIMESTAMP`: items whose first interaction (any user, any split) is at or after
  `TIMESTAMP`;
- `ids:FILE` (one item id per line) or `ids:ID,ID,...`: a given list.

On ML-100K the default is `release_year>=1997`: the 288 releases of the data's own period
(September 1997 to April 1998), 16% of the interactions (two items without a year are warm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

import numpy as np

from mmsrarec.data.dataset import Dataset
from mmsrarec.errors import DataError

DEFAULT_RULES = {"ml-100k": "release_year>=1997"}
FIRST_SEEN = "first_seen"
# Where models trained on the split live, under the run dir: they never mix with the
# standard split's.
RUN_SUBDIR = "new-releases"


class Split(StrEnum):
    """Which items a fit may learn from."""

    standard = "standard"  # every item; the leave-one-out split
    new_releases = "new-releases"  # the cold items held out until the test


@dataclass(frozen=True)
class ColdRule:
    """A parsed rule: `kind` with its `field` (release rules) and `value`."""

    kind: Literal["field", "first_seen", "ids"]
    value: str
    field: str = ""

    @classmethod
    def parse(cls, spec: str) -> ColdRule:
        """`FIELD>=VALUE`, `first_seen>=TIMESTAMP`, `ids:FILE` or `ids:ID,ID,...`."""
        spec = spec.strip()
        if spec.startswith("ids:"):
            return cls("ids", spec.removeprefix("ids:").strip())
        name, sep, value = spec.partition(">=")
        if not sep or not name.strip() or not value.strip():
            raise DataError(
                f"cold-item rule `{spec[:60]}` is not `FIELD>=VALUE`, "
                f"`{FIRST_SEEN}>=TIMESTAMP` or `ids:FILE`"
            )
        kind = FIRST_SEEN if name.strip() == FIRST_SEEN else "field"
        return cls(kind, value.strip(), name.strip() if kind == "field" else "")

    def __str__(self) -> str:
        if self.kind == "ids":
            return f"ids:{self.value}"
        return f"{self.field or FIRST_SEEN}>={self.value}"


def default_rule(dataset_name: str) -> ColdRule:
    """The built-in rule of a dataset (DataError for a dataset that has none)."""
    if dataset_name not in DEFAULT_RULES:
        raise DataError(
            f"dataset `{dataset_name}` has no default cold-item rule: pass one, e.g. "
            "`--cold 'release_date>=2024-01-01'`, `--cold first_seen>=1700000000` or "
            "`--cold ids:new_items.txt`"
        )
    return ColdRule.parse(DEFAULT_RULES[dataset_name])


def cold_items(dataset: Dataset, rule: ColdRule) -> frozenset[int]:
    """Item indices that `rule` makes cold (DataError when it selects none or every item)."""
    if rule.kind == "ids":
        chosen = _listed(dataset, rule.value)
    elif rule.kind == FIRST_SEEN:
        chosen = _first_seen_since(dataset, _number(rule.value, rule))
    else:
        chosen = _field_since(dataset, rule)
    if not chosen:
        raise DataError(f"cold-item rule `{rule}` selects no item of `{dataset.name}`")
    if len(chosen) == dataset.n_items:
        raise DataError(f"cold-item rule `{rule}` selects every item: nothing left to train on")
    return frozenset(chosen)


def new_releases(dataset: Dataset, rule: ColdRule | None = None) -> Dataset:
    """`dataset` with the items of `rule` (default: the dataset's own rule) held out."""
    rule = rule or default_rule(dataset.name)
    return dataset.with_cold(cold_items(dataset, rule), str(rule))


def pseudo_cold(dataset: Dataset, seed: int = 0) -> frozenset[int]:
    """Warm items that play the cold items' part where a fit must learn about new items: the
    newest warm releases by the split's own order (release field or first interaction), as
    many as there are cold items (ties kept together); for an `ids` rule, which has no order,
    a seeded random draw of as many warm items.

    On ML-100K these are the 298 releases of 1996: like the cold items at test time, they are
    chosen more often by users whose recent history holds many of them (the share of 1996
    items among a user's last 10 predicts a 1996 validation target: 14% at none, 70% at 60% or
    more; the cold items at test: 9% and 78%), which a random draw of warm items does not show.
    """
    if not dataset.cold:
        return frozenset()
    warm = [i for i in range(1, dataset.n_items + 1) if i not in dataset.cold]
    rule = ColdRule.parse(dataset.cold_rule) if dataset.cold_rule else None
    if rule is None or rule.kind == "ids":
        rng = np.random.default_rng(seed)
        size = min(len(dataset.cold), len(warm) // 2)
        return frozenset(int(i) for i in rng.choice(warm, size=size, replace=False))
    order = _release_order(dataset, rule)
    ranked = sorted((i for i in warm if i in order), key=lambda i: order[i], reverse=True)
    if not ranked:
        return frozenset()
    cut = order[ranked[min(len(dataset.cold), len(ranked)) - 1]]
    newest = [i for i in ranked if order[i] >= cut]
    return frozenset(newest[: len(warm) // 2])


def _release_order(dataset: Dataset, rule: ColdRule) -> dict[int, float | str]:
    """Item -> its release value (a number where the rule's threshold is one, else the text)
    or its first interaction time; items without one are left out."""
    if rule.kind == FIRST_SEEN:
        return dict(_first_seen(dataset))
    numeric = _finite(rule.value) is not None
    order: dict[int, float | str] = {}
    for index, item in enumerate(dataset.items, start=1):
        value = item.fields.get(rule.field, "").strip()
        key = _finite(value) if numeric else (value or None)
        if key is not None:
            order[index] = key
    return order


def _field_since(dataset: Dataset, rule: ColdRule) -> set[int]:
    if not any(rule.field in item.fields for item in dataset.items):
        raise DataError(
            f"no item of `{dataset.name}` has a `{rule.field}` field (prepared before fields "
            "were kept? run `mmsrarec data prepare --force`)"
        )
    threshold = rule.value
    chosen = set()
    for index, item in enumerate(dataset.items, start=1):
        value = item.fields.get(rule.field, "").strip()
        if value and _at_least(value, threshold):
            chosen.add(index)
    return chosen


def _at_least(value: str, threshold: str) -> bool:
    """value >= threshold: as numbers when the threshold is a number (a value that is not one,
    such as `unknown`, is then never cold), else as text (ISO dates)."""
    limit = _finite(threshold)
    if limit is None:
        return value >= threshold
    number = _finite(value)
    return number is not None and number >= limit


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _first_seen_since(dataset: Dataset, since: float) -> set[int]:
    return {item for item, stamp in _first_seen(dataset).items() if stamp >= since}


def _first_seen(dataset: Dataset) -> dict[int, float]:
    """Item -> the time of its first interaction (any user, any split)."""
    if not dataset.timestamps:
        raise DataError(
            f"`{dataset.name}` was prepared without timestamps: run `mmsrarec data prepare --force`"
        )
    first: dict[int, float] = {}
    for user, items in dataset.sequences.items():
        for item, stamp in zip(items, dataset.timestamps[user], strict=True):
            first[item] = min(stamp, first.get(item, math.inf))
    return first


def _listed(dataset: Dataset, value: str) -> set[int]:
    path = Path(value)
    if path.is_file():
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        ids = [part.strip() for part in value.split(",")]
    return {dataset.index_of(item_id) for item_id in ids if item_id}


def _number(value: str, rule: ColdRule) -> float:
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"cold-item rule `{rule}`: `{value[:40]}` is not a number") from None
    if not math.isfinite(number):
        raise DataError(f"cold-item rule `{rule}`: `{value[:40]}` is not a finite number")
    return number

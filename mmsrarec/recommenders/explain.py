"""Counterfactual evidence: what moves a recommended item's score, measured by re-scoring.

For a user with history h and a recommended item j, history position p matters by

    drop_p(j) = s(j | h) - s(j | h without h_p)

the fall of j's score when that one history item is removed (leave-one-out). The items with
the largest positive drops are the cited history: without them the item would rank lower.
Every removal is one more query to `Recommender.score_candidates`, and the queries of all
positions go in a few batched calls (one forward scores every item), not one graph run each.

Only the last `WINDOW` positions are tried: the members of the fused system read at most
that many (SASRec and the LLM recommender keep the last 50 items, item-kNN the last 20), so
an older item cannot move their scores and its drop is 0 by construction.

A recommender with a costly member (a fusion with the LLM recommender, whose every query is
an LLM forward) is screened first: its stand-in (`Recommender.screen`: the costly members held
at the unmodified history's scores) re-scores every position cheaply, and only the
`SHORTLIST` positions whose removal lowers some item's stand-in score most are re-scored by
the recommender itself. The drops reported, and so the cited items, are the recommender's own;
the screen only chooses which removals are tried (on ML-100K's fused system, 8 positions hold
the largest exact drop for 99% of recommendations: `benchmarks/faithfulness.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmsrarec.recommenders.base import Query, Recommender

WINDOW = 50  # most recent history positions tried (see the module doc)
N_CITED = 3  # history items cited per recommendation
BATCH = 64  # queries per `score_candidates` call
SHORTLIST = 8  # positions re-scored by a costly recommender after screening (see above)


@dataclass(frozen=True)
class Counterfactual:
    """Leave-one-out over a history for some items.

    Attributes:
        history: the query's history (item indices, chronological).
        positions: history positions tried, oldest first [P].
        drops: score of each item minus its score without each position [n_items, P].
    """

    history: tuple[int, ...]
    positions: np.ndarray
    drops: np.ndarray

    def cited(self, row: int, n: int = N_CITED) -> list[tuple[int, float]]:
        """The `n` history items whose removal lowers item `row`'s score most, as
        `(item index, drop)`, best first; only positive drops, each item once."""
        order = np.argsort(-self.drops[row], kind="stable")
        out: dict[int, float] = {}
        for column in order:
            drop = float(self.drops[row, column])
            if drop <= 0 or len(out) == n:
                break
            out.setdefault(self.history[self.positions[column]], drop)
        return list(out.items())


def without(query: Query, positions: Sequence[int]) -> Query:
    """The query with the history items at `positions` removed."""
    drop = set(positions)
    history = tuple(item for p, item in enumerate(query.history) if p not in drop)
    return Query(query.user_id, history, query.candidates)


def rescore(recommender: Recommender, queries: Sequence[Query]) -> np.ndarray:
    """`score_candidates` over many queries with the same number of candidates, `BATCH` at a
    time: [len(queries), n_candidates]."""
    rows = []
    for start in range(0, len(queries), BATCH):
        rows += recommender.score_candidates(queries[start : start + BATCH])
    return np.asarray(rows, dtype=np.float64)


def drops_without(recommender: Recommender, query: Query, positions: np.ndarray) -> np.ndarray:
    """Score of each of `query.candidates` less its score without each history position, in
    one batched re-scoring of len(positions) + 1 queries: [n_candidates, len(positions)]."""
    queries = [query, *(without(query, [p]) for p in positions)]
    scores = rescore(recommender, queries)  # [1 + P, C]
    return (scores[0][None, :] - scores[1:]).T


def leave_one_out(
    recommender: Recommender, query: Query, window: int = WINDOW, shortlist: int = SHORTLIST
) -> Counterfactual:
    """Drops of `query.candidates`' scores when each of the last `window` history items is
    removed. A recommender with a cheaper stand-in (`Recommender.screen`) re-scores only the
    `shortlist` positions the stand-in finds most damaging (0: every position, exactly)."""
    start = max(0, len(query.history) - window)
    positions = np.arange(start, len(query.history))
    stand_in = recommender.screen(query) if 0 < shortlist < len(positions) else None
    if stand_in is not None:
        positions = np.sort(positions[_most_damaging(drops_without(stand_in, query, positions),
                                                     shortlist)])  # fmt: skip
    return Counterfactual(query.history, positions, drops_without(recommender, query, positions))


def _most_damaging(drops: np.ndarray, n: int) -> np.ndarray:
    """Columns of `drops` [C, P] by their best place in any row's order (every item's most
    damaging removal first, then its second...), ties by the largest drop: the first `n`."""
    order = np.argsort(-drops, axis=1, kind="stable")
    place = np.empty_like(order)
    np.put_along_axis(place, order, np.broadcast_to(np.arange(drops.shape[1]), order.shape), 1)
    return np.lexsort((-drops.max(axis=0), place.min(axis=0)))[:n]

"""Fusion: a gate over per-user z-normalised scores of several recommenders.

For user u and item j, with z_m(u, j) member m's score standardised over the catalog for
that user, the fused score of an item with a trained ID is

    s(u, j) = sum_m (a_m + b_m * len_u + c_m * pop_j) * z_m(u, j)

where len_u is the standardised log length of the user's visible history and pop_j the
standardised log training count of item j: the gate may trust a member more for long
histories or for popular items (after "Selective LLM-guided regularization").

An item without a trained ID (a cold item of the new-releases split, or one added after
training) is scored only by the members that read text (`Recommender.reads_text`, and the
`new_item_members`, which score only such items), with weights of its own, plus an offset
that grows with the share of such items among the user's last `RECENT` and `LAST` items
(people who have just watched new releases choose new releases: 9% of the ML-100K test users
with none among their last 10 pick one next, 78% of those with 60% or more):

    s(u, j) = sum_{m reads text} (d_m + e_m * len_u) * z_m(u, j)
              + f_0 + f_1 * share_u + f_2 * last_u + f_3 * len_u

ID-only members neither see such items in histories nor score them (z = 0).

The gate is fitted on the validation position only, by listwise softmax cross-entropy with a
small L2 penalty: the warm gate over each user's frozen 1 + 20 validation candidates, for at
most `GATE_USERS` validation users (drawn with the fit's seed past that: the gate has a few
weights per member, and its fit must not grow with the number of users). On the
new-releases split no cold interaction is read: validation positions with a cold target are
left out, and cold items are removed from the validation histories and candidates. The warm
gate is fitted first, as on data without new items; then, the warm gate held fixed, the
new-item gate, over the whole catalog, in a world one release cohort earlier: the newest warm
releases (`data.coldstart.pseudo_cold`) play the cold items' part, held out of a second fit
of the members that read text and out of the ID-only members' histories and scores. Scoring
reads only the queries' histories: no validation or test label.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from mmsrarec.data import Dataset, Item
from mmsrarec.data.coldstart import pseudo_cold
from mmsrarec.errors import NotPreparedError
from mmsrarec.metrics import ndcg, ranks_from_scores
from mmsrarec.recommenders.base import Held, Query, Recommender

L2 = 1e-3
RECENT = 10  # history items whose share of new items moves the new-item offset
LAST = 3  # ... and the share among the very last ones
NEW_ITEM_OFFSET = "new-item offset"  # its part in `contributions` and `describe_gate`
GATE_USERS = 10_000  # validation users the gate is fitted on (ML-100K's 943 are all used)
SCORE_CELLS = 2**25  # users x items whose z-scores the warm gate's fit holds at once


def zscore(scores: np.ndarray) -> np.ndarray:
    """Per row, over columns 1.. with finite scores: (s - mean) / std; others become 0."""
    body = scores[:, 1:].astype(np.float64)
    finite = np.isfinite(body)
    safe = np.where(finite, body, np.nan)
    mean = np.nanmean(safe, axis=1, keepdims=True)
    std = np.nanstd(safe, axis=1, keepdims=True) + 1e-9
    out = np.zeros_like(scores, dtype=np.float64)
    out[:, 1:] = np.where(finite, (body - mean) / std, 0.0)
    return out


class FusionRecommender(Recommender):
    """Gated z-score fusion of fitted-in-`fit` members (all fitted with the same seed).

    Args:
        members: the recommenders fused on every item.
        name: the method's name.
        new_item_members: recommenders that join only where an item has no ID (they read
            text); fitted only on data with such items, so the fusion of data without new
            items is the fusion of `members` alone.
        gate_users: the most validation users the gate is fitted on.
    """

    def __init__(
        self,
        members: dict[str, Recommender],
        name: str = "fusion",
        new_item_members: dict[str, Recommender] | None = None,
        gate_users: int = GATE_USERS,
    ) -> None:
        self.members = members
        self.gate_users = gate_users
        self.new_item_members = new_item_members or {}
        self.name = name
        self.gate: np.ndarray | None = None  # [M, 3]: a, b, c per member
        # Items without an ID: [T, 2] (d, e) per member that reads text, then (f_0, f_1, f_2).
        self.new_item_gate: np.ndarray | None = None
        self.length_norm: tuple[float, float] = (0.0, 1.0)
        self.meta: dict[str, object] = {}  # the new-item gate's fit on validation
        self.popularity: np.ndarray | None = None  # [n_items + 1], standardised log counts
        self.unseen = 0.0  # the standardised log count of an item without interactions
        self.no_id = np.zeros(1, dtype=bool)  # [n_items + 1]: items scored without an ID

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return any(member.reads_text for member in self._scorers(True).values())

    @property
    def _text_members(self) -> list[str]:
        """The members that score items without an ID: those of `members` that read text,
        then every new-item member."""
        text = [name for name, member in self.members.items() if member.reads_text]
        return text + list(self.new_item_members)

    @property
    def costly(self) -> bool:  # type: ignore[override]
        return any(member.costly for member in self._scorers(True).values())

    def screen(self, query: Query) -> Recommender | None:
        """This fusion with its costly members held at their scores for `query`: a removal
        moves only the other members' parts (one forward of each costly member, not one per
        removal). None where no member is costly."""
        if not self.costly:
            return None
        no_id = frozenset(np.flatnonzero(self.no_id).tolist())

        def held(members: dict[str, Recommender]) -> dict[str, Recommender]:
            return {name: Held(m, query if m.reads_text else _without(query, no_id))
                    if m.costly else m for name, m in members.items()}  # fmt: skip

        stand_in = copy.copy(self)
        stand_in.members = held(self.members)
        stand_in.new_item_members = held(self.new_item_members)
        return stand_in

    def _scorers(self, with_new: bool) -> dict[str, Recommender]:
        return {**self.members, **self.new_item_members} if with_new else self.members

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Fit every member, then the gate on the validation candidates: the warm gate as on
        data without new items, then (on the new-releases split) the new-item gate on the
        pseudo-cold items, the warm gate held fixed."""
        for member in self.members.values():
            member.fit(dataset, seed)
        counts = np.log1p(np.asarray(dataset.train_popularity(), dtype=np.float64))
        self.popularity = (counts - counts[1:].mean()) / (counts[1:].std() + 1e-9)
        self.unseen = float(-counts[1:].mean() / (counts[1:].std() + 1e-9))  # a count of 0
        queries = [_without(Query.from_dataset(dataset, u, "valid", sampled=True), dataset.cold)
                   for u in _draw(dataset.valid_users, self.gate_users, seed)]  # fmt: skip
        lengths = np.log1p([len(q.history) for q in queries])
        self.length_norm = (float(lengths.mean()), float(lengths.std() + 1e-9))
        self.no_id = _mask(dataset.n_items, frozenset())
        features, allowed = self._features(queries, dataset.cold, learns_new=False)
        self.gate, _ = _fit_gate(features, allowed, len(self.members))
        self.new_item_gate = None
        if dataset.cold and self._text_members:
            for member in self.new_item_members.values():
                member.fit(dataset, seed)
            self.new_item_gate = self._fit_new_item_gate(dataset, seed, queries)
        self.no_id = _mask(dataset.n_items, dataset.cold)

    def _fit_new_item_gate(
        self, dataset: Dataset, seed: int, queries: Sequence[Query]
    ) -> np.ndarray:
        """The new-item gate, fitted one release cohort earlier: the newest warm releases are
        held out too, and the members that read text are fitted again without them, so that
        their scores of those items are what they will be for new items (a model trained on
        an item's interactions knows it too well: the LLM's text path ranks them at NDCG@10
        0.125 among themselves on validation, new releases at 0.047 on the test)."""
        pseudo = pseudo_cold(dataset)
        earlier = dataset.with_cold(dataset.cold | pseudo, dataset.cold_rule)
        fitted = self.members, self.new_item_members
        text = set(self._text_members)
        again = {name: copy.deepcopy(m) for name, m in self._scorers(True).items() if name in text}
        self.members = {name: again.get(name, m) for name, m in fitted[0].items()}
        self.new_item_members = {name: again[name] for name in fitted[1]}
        try:
            for member in again.values():
                member.fit(earlier, seed)
            self.no_id = _mask(dataset.n_items, pseudo)
            targets = np.array([dataset.target(q.user_id, "valid") for q in queries])
            features, allowed = self._catalog_features(queries, targets, dataset.cold)
        finally:
            self.members, self.new_item_members = fitted
        _, gate = _fit_gate(features, allowed, len(self.members), self.gate, targets)
        logits = np.where(allowed, features @ np.concatenate([self.gate.reshape(-1), gate]),
                          -np.inf)  # fmt: skip
        self.meta["validation"] = {"pseudo_cold_items": len(pseudo),
                                   **_fit_report(logits, targets, self.no_id[targets])}  # fmt: skip
        return gate

    def _features(
        self, queries: Sequence[Query], cold: frozenset[int], learns_new: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gate features of each query's candidates [U, C, K], and which candidates count
        [U, C] (cold negatives do not: no cold item is seen in a fit). The members' catalog
        z-scores are taken `SCORE_CELLS` at a time: only the candidates' are kept."""
        candidates = np.array([q.candidates for q in queries])  # [U, C]
        rows = max(1, SCORE_CELLS // len(self.no_id))
        z = np.concatenate([
            np.take_along_axis(self._z(queries[start : start + rows], learns_new),
                               candidates[start : start + rows, :, None], axis=1)
            for start in range(0, len(queries), rows)])  # fmt: skip  # [U, C, M]
        allowed = ~np.isin(candidates, list(cold))
        features = self._combine(z, queries, self.popularity[candidates],
                                 self.no_id[candidates], learns_new)  # fmt: skip
        return features, allowed

    def _catalog_features(
        self, queries: Sequence[Query], targets: np.ndarray, cold: frozenset[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gate features of every item [U, n_items + 1, K], and which items a user's softmax
        runs over [U, n_items + 1]: the full-ranking candidates (no padding, no history item)
        less the cold items. A new item must beat the whole catalog to be shown, not 20
        random negatives."""
        z = self._z(queries, with_new=True)
        pop = np.broadcast_to(self.popularity[None, :], z.shape[:2])
        no_id = np.broadcast_to(self.no_id[None, :], z.shape[:2])
        allowed = np.ones(z.shape[:2], dtype=bool)
        allowed[:, 0] = False
        allowed[:, sorted(cold)] = False
        for row, query in enumerate(queries):
            allowed[row, list(query.history)] = False
        allowed[np.arange(len(queries)), targets] = True  # ranked even if seen before
        return self._combine(z, queries, pop, no_id, learns_new=True), allowed

    def _z(self, queries: Sequence[Query], with_new: bool) -> np.ndarray:
        """Members' z-scores [U, n_items + 1, M (+ N new-item members)]; ID-only members see
        no item without an ID."""
        no_id = frozenset(np.flatnonzero(self.no_id).tolist())
        known = [_without(q, no_id) for q in queries]
        columns = []
        for member in self._scorers(with_new).values():
            scores = member.score_catalog(queries if member.reads_text else known)
            if not member.reads_text:  # padded to the catalog (items added since its fit)
                scores = np.asarray(scores, dtype=np.float64)
                width = len(self.no_id) - scores.shape[1]
                scores = np.pad(scores, ((0, 0), (0, width)), constant_values=-np.inf)
                scores[:, self.no_id] = -np.inf  # z = 0, and no part in the user's mean and std
            columns.append(zscore(scores))
        return np.stack(columns, -1)

    def _combine(
        self, z: np.ndarray, queries: Sequence[Query], pop: np.ndarray, no_id: np.ndarray,
        learns_new: bool,
    ) -> np.ndarray:  # fmt: skip
        """z [U, I, M (+ N)], pop and no_id [U, I] -> features [U, I, K]: the warm gate's 3 per
        member, then (with `learns_new`) the new-item gate's."""
        mean, std = self.length_norm
        length = (np.log1p([len(q.history) for q in queries]) - mean) / std  # [U]
        length = np.broadcast_to(length[:, None], z.shape[:2])
        # Items without an ID count in the warm part only through the members that read text,
        # and there only where no new-item gate takes them.
        reads = np.array([m.reads_text and not learns_new for m in self.members.values()])
        warm = z[..., : len(self.members)] * (~no_id[..., None] | reads)
        parts = [warm, warm * length[..., None], warm * pop[..., None]]
        out = np.stack(parts, axis=-1).reshape(*z.shape[:2], -1)  # [U, I, M * 3]
        if not learns_new:
            return out
        new = no_id.astype(np.float64)
        text = [list(self._scorers(True)).index(name) for name in self._text_members]
        share = np.array([_share(q.history, self.no_id, RECENT) for q in queries])[:, None]
        last = np.array([_share(q.history, self.no_id, LAST) for q in queries])[:, None]
        extra = [z[..., m] * new for m in text] + [z[..., m] * new * length for m in text]
        extra += [new, new * share, new * last, new * length]
        return np.concatenate([out, np.stack(extra, axis=-1)], axis=-1)

    def add_items(self, items: Sequence[Item]) -> None:
        """New items without an ID: the members that read text score them; the others leave
        them out (z = 0), as they do cold items. Without a new-item gate (fitted on data that
        had no new items), they count through the text members' ordinary weights."""
        if not self.reads_text:
            super().add_items(items)  # the one-line refusal
        if self.popularity is None:
            raise NotPreparedError(f"`{self.name}` is not fitted: call `fit(dataset, seed)`")
        for member in self._scorers(self.new_item_gate is not None).values():
            if member.reads_text:
                member.add_items(items)
        self.no_id = np.concatenate([self.no_id, np.ones(len(items), dtype=bool)])
        self.popularity = np.concatenate([self.popularity, np.full(len(items), self.unseen)])

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        weights = self._weights()
        learns_new = self.new_item_gate is not None
        z = self._z(queries, learns_new)
        pop = np.broadcast_to(self.popularity[None, :], z.shape[:2])
        no_id = np.broadcast_to(self.no_id[None, :], z.shape[:2])
        scores = self._combine(z, queries, pop, no_id, learns_new) @ weights
        scores[:, 0] = -np.inf
        return scores

    def contributions(self, queries: Sequence[Query]) -> list[dict[str, np.ndarray]]:
        """Each member's part of each candidate's score: its gate weight for this user and
        item times its z-score (for an item without an ID, a text member's new-item weight
        times its z-score, and the new-item offset as a part of its own). The parts sum to
        `score_candidates` (the same features and weights, summed in another order)."""
        weights = self._weights()
        learns_new = self.new_item_gate is not None
        z = self._z(queries, learns_new)
        columns = self._columns()
        out = []
        for row, query in enumerate(queries):
            items = np.asarray(query.candidates, dtype=np.int64)
            features = self._combine(z[row : row + 1, items], [query],
                                     self.popularity[None, items], self.no_id[None, items],
                                     learns_new)[0]  # fmt: skip  # [C, K]
            parts = features * weights  # [C, K]
            out.append({name: parts[:, cols].sum(axis=1) for name, cols in columns.items()})
        return out

    def _weights(self) -> np.ndarray:
        """Every gate weight in the features' column order [K]."""
        if self.gate is None or self.popularity is None:
            raise NotPreparedError(f"`{self.name}` is not fitted: call `fit(dataset, seed)`")
        weights = self.gate.reshape(-1)
        if self.new_item_gate is not None:
            weights = np.concatenate([weights, self.new_item_gate])
        return weights

    def _columns(self) -> dict[str, list[int]]:
        """Which feature columns (`_combine`'s order) belong to each member, and to the
        new-item offset."""
        names = list(self.members)
        columns = {name: [3 * m, 3 * m + 1, 3 * m + 2] for m, name in enumerate(names)}
        if self.new_item_gate is not None:
            start, text = 3 * len(names), self._text_members
            for t, name in enumerate(text):
                columns.setdefault(name, []).extend([start + t, start + len(text) + t])
            offset = start + 2 * len(text)
            columns[NEW_ITEM_OFFSET] = list(range(offset, len(self._weights())))
        return columns

    def describe_gate(self) -> dict[str, dict[str, float]]:
        """The fitted gate per member: weight, per unit of history length, of popularity;
        with new items, each text member's weight on them and the new-item offset."""
        if self.gate is None:
            return {}
        out = {
            name: {"weight": float(a), "x_history_length": float(b), "x_popularity": float(c)}
            for name, (a, b, c) in zip(self.members, self.gate, strict=True)
        }
        if self.new_item_gate is not None:
            text = self._text_members
            weights, lengths = np.split(self.new_item_gate[: 2 * len(text)], 2)
            for name, weight, length in zip(text, weights, lengths, strict=True):
                out.setdefault(name, {}).update(
                    new_items_weight=float(weight), new_items_x_history_length=float(length)
                )
            f0, f1, f2, f3 = self.new_item_gate[2 * len(text) :]
            out[NEW_ITEM_OFFSET] = {"bias": float(f0), "x_recent_new_share": float(f1),
                                      "x_last_new_share": float(f2),
                                      "x_history_length": float(f3)}  # fmt: skip
        return out


def _mask(n_items: int, items: frozenset[int]) -> np.ndarray:
    mask = np.zeros(n_items + 1, dtype=bool)
    mask[sorted(items)] = True
    return mask


def _draw(users: Sequence[str], most: int, seed: int) -> list[str]:
    """`users`, or `most` of them drawn with `seed` (in their order) where there are more."""
    if len(users) <= most:
        return list(users)
    chosen = np.random.default_rng(seed).choice(len(users), most, replace=False)
    return [users[i] for i in np.sort(chosen)]


def _without(query: Query, items: frozenset[int]) -> Query:
    """The query with `items` left out of its history (not of its candidates)."""
    if not items:
        return query
    history = tuple(i for i in query.history if i not in items)
    return Query(query.user_id, history, query.candidates)


def _share(history: Sequence[int], no_id: np.ndarray, last: int) -> float:
    recent = list(history[-last:])
    return float(no_id[recent].mean()) if recent else 0.0


def _fit_report(logits: np.ndarray, targets: np.ndarray, new: np.ndarray) -> dict[str, float]:
    """What a gate achieved on its own fitting data, to compare designs on validation only:
    the mean negative log-likelihood of the targets and NDCG@10, for new and other targets."""
    ranks = ranks_from_scores(logits, targets)
    shifted = logits - logits.max(1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(targets)), targets]
    return {
        "nll": float(nll.mean()),
        "ndcg10_pseudo_cold_targets": ndcg(ranks[new], 10),
        "ndcg10_warm_targets": ndcg(ranks[~new], 10),
        "ndcg10_all": ndcg(ranks, 10),
    }


def _fit_gate(
    features: np.ndarray,
    allowed: np.ndarray,
    members: int,
    warm_gate: np.ndarray | None = None,
    targets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Listwise softmax cross-entropy + L2, by L-BFGS; the target is column `targets[u]`
    (default 0: the sampled candidates' target).

    Returns the warm gate [M, 3] (`warm_gate`, held fixed, where given) and the new-item gate
    [K - 3M] (None when the features have no new-item part).
    """
    x = torch.from_numpy(np.ascontiguousarray(features))  # [U, C, K]
    warm_x = x[..., : 3 * members].reshape(*x.shape[:2], members, 3)  # [U, C, M, 3]
    new_x = x[..., 3 * members :]
    if warm_gate is None:
        warm = torch.zeros(members, 3, dtype=torch.float64, requires_grad=True)
        with torch.no_grad():
            warm[:, 0] = 1.0 / members  # start from the plain average of z-scores
        params = [warm]
    else:
        warm, params = torch.from_numpy(np.asarray(warm_gate, dtype=np.float64)), []
    new = None
    if new_x.shape[-1]:
        new = torch.zeros(new_x.shape[-1], dtype=torch.float64, requires_grad=True)
        params.append(new)
    optimizer = torch.optim.LBFGS(params, max_iter=200, line_search_fn="strong_wolfe")
    if targets is None:
        targets = np.zeros(x.shape[0], dtype=np.int64)
    targets = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    blocked = None if allowed.all() else torch.from_numpy(~allowed)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.einsum("ucmk,mk->uc", warm_x, warm)
        if new is not None:
            logits = logits + torch.einsum("uck,k->uc", new_x, new)
        if blocked is not None:
            logits = logits.masked_fill(blocked, float("-inf"))
        penalty = sum(p.pow(2).sum() for p in params)
        loss = torch.nn.functional.cross_entropy(logits, targets) + L2 * penalty
        loss.backward()
        return loss

    optimizer.step(closure)
    return warm.detach().numpy(), None if new is None else new.detach().numpy()

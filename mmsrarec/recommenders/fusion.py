"""Fusion: a gate over per-user z-normalised scores of several recommenders.

For user u and item j, with z_m(u, j) member m's score standardised over the catalog for
that user, the fused score is

    s(u, j) = sum_m (a_m + b_m * len_u + c_m * pop_j) * z_m(u, j)

where len_u is the standardised log length of the user's visible history and pop_j the
standardised log training count of item j: the gate may trust a member more for long
histories or for popular items (after "Selective LLM-guided regularization"). The gate
(a, b, c) is fitted on the validation position only, by listwise softmax cross-entropy over
each user's frozen 1 + 20 validation candidates, with a small L2 penalty. Scoring reads only
the queries' histories: no validation or test label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmsrarec.data import Dataset
from mmsrarec.errors import NotPreparedError
from mmsrarec.recommenders.base import Query, Recommender

L2 = 1e-3


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
    """Gated z-score fusion of fitted-in-`fit` members (all fitted with the same seed)."""

    def __init__(self, members: dict[str, Recommender], name: str = "fusion") -> None:
        self.members = members
        self.name = name
        self.gate: np.ndarray | None = None  # [M, 3]: a, b, c per member
        self.length_norm: tuple[float, float] = (0.0, 1.0)
        self.popularity: np.ndarray | None = None  # [n_items + 1], standardised log counts

    def fit(self, dataset: Dataset, seed: int) -> None:
        """Fit every member, then the gate on the validation candidates."""
        for member in self.members.values():
            member.fit(dataset, seed)
        counts = np.log1p(np.asarray(dataset.train_popularity(), dtype=np.float64))
        self.popularity = (counts - counts[1:].mean()) / (counts[1:].std() + 1e-9)
        users = dataset.eval_users
        queries = [Query.from_dataset(dataset, u, "valid", sampled=True) for u in users]
        lengths = np.log1p([len(q.history) for q in queries])
        self.length_norm = (float(lengths.mean()), float(lengths.std() + 1e-9))
        features = self._features(queries)  # [U, C, M, 3]
        self.gate = _fit_gate(features)

    def _features(self, queries: Sequence[Query]) -> np.ndarray:
        """Per query and candidate: z_m times (1, len_u, pop_j), [U, C, M, 3]."""
        z = np.stack([zscore(m.score_catalog(queries)) for m in self.members.values()], -1)
        candidates = np.array([q.candidates for q in queries])  # [U, C]
        z = np.take_along_axis(z, candidates[..., None], axis=1)  # [U, C, M]
        return self._combine(z, queries, self.popularity[candidates])

    def _combine(self, z: np.ndarray, queries: Sequence[Query], pop: np.ndarray) -> np.ndarray:
        mean, std = self.length_norm
        length = (np.log1p([len(q.history) for q in queries]) - mean) / std  # [U]
        length = np.broadcast_to(length[:, None, None], z.shape)
        pop = np.broadcast_to(pop[..., None], z.shape)
        return np.stack([z, z * length, z * pop], axis=-1)

    def score_catalog(self, queries: Sequence[Query]) -> np.ndarray:
        if self.gate is None or self.popularity is None:
            raise NotPreparedError(f"`{self.name}` is not fitted: call `fit(dataset, seed)`")
        z = np.stack([zscore(m.score_catalog(queries)) for m in self.members.values()], -1)
        pop = np.broadcast_to(self.popularity[None, :], z.shape[:2])
        scores = np.einsum("uimk,mk->ui", self._combine(z, queries, pop), self.gate)
        scores[:, 0] = -np.inf
        return scores

    def describe_gate(self) -> dict[str, dict[str, float]]:
        """The fitted gate per member: weight, per unit of history length, of popularity."""
        if self.gate is None:
            return {}
        return {
            name: {"weight": float(a), "x_history_length": float(b), "x_popularity": float(c)}
            for name, (a, b, c) in zip(self.members, self.gate, strict=True)
        }


def _fit_gate(features: np.ndarray) -> np.ndarray:
    """Listwise softmax cross-entropy (target = candidate 0) + L2, by L-BFGS: [M, 3]."""
    x = torch.from_numpy(np.ascontiguousarray(features))  # [U, C, M, 3]
    gate = torch.zeros(x.shape[2], x.shape[3], dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        gate[:, 0] = 1.0 / x.shape[2]  # start from the plain average of z-scores
    optimizer = torch.optim.LBFGS([gate], max_iter=200, line_search_fn="strong_wolfe")
    targets = torch.zeros(x.shape[0], dtype=torch.long)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.einsum("ucmk,mk->uc", x, gate)
        loss = torch.nn.functional.cross_entropy(logits, targets) + L2 * gate.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return gate.detach().numpy()

"""Types shared across layers: what the graph's parts exchange, and the protocols they meet.

Everything here is plain data (TypedDicts) or a `Protocol`; it imports only `data`, so any
layer may use it: the nodes call the protocols, `summarization`, `critic`, `scoring` and
`tools` implement them, `training` builds prompts from the same types, and `graph` composes
the parts. A developer swaps in their own summarizer, critic, retriever or scorer by meeting
the protocol; nothing has to inherit from a base class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from typing_extensions import TypedDict  # pydantic builds JSON schemas from it on 3.11

from mmsrarec.data import Item


class SimilarUser(TypedDict):
    """One neighbour from the collaborative retrieval."""

    user_id: str
    similarity: float
    next_item_id: str
    next_title: str
    keywords: list[str]


class Evidence(TypedDict):
    """Why an item ranks where it does, in two kinds (`scoring.evidence.build_evidence`).

    The cause, measured on the scorer: `contributions` (its score split into parts that sum
    to it) and `cited_history` (removing these history items lowers the score most, by
    re-scoring: `recommenders.explain`). Supporting, not the cause: `supporting_keywords`
    (words the item shares with the cited items) and `supporting_users` (similar users who
    chose it, or whose next item shares its words).
    """

    contributions: dict[str, float]  # part name (a fusion member, ...) -> value; sum = score
    cited_history: list[str]  # raw item ids, best first (empty where not computed)
    cited_drops: list[float]  # score minus the score without each cited item, same order
    supporting_keywords: list[str]  # e.g. "drama (Boogie Nights (1997))"
    supporting_users: list[str]  # e.g. "user 42 chose it next"


class Recommendation(Evidence):
    """One ranked candidate and its evidence."""

    item_id: str
    title: str
    score: float  # the ranker's score, or p(yes) / (p(yes) + p(no)) for the yes/no scorer
    evidence: str  # the evidence in one line (`scoring.evidence.evidence_line`)


class Motivation(TypedDict):
    """One reason a user chooses what they choose, in words they can correct
    (`scoring.motivations`)."""

    keywords: list[str]  # what the group of history items shares, most weight first
    item_ids: list[str]  # raw ids of the history items that support it, most recent first
    titles: list[str]  # their titles, same order
    weight: float  # its share of the user's recency-weighted history, in (0, 1]


class Judgement(TypedDict):
    """The critic's verdict on one draft summary."""

    total: float  # weighted, normalised reward; higher is better
    components: dict[str, float]  # raw r_info, r_recon, r_len
    feedback: str  # what to change, for the summarizer's next round ("" when fine)


# The keywords a prompt shows for an item (from the keyword store, else its own text).
KeywordsFor = Callable[[Item], list[str]]
# The similar users of `(user_id, raw item ids of the history)`, with their keywords filled.
SimilarFor = Callable[[str, list[str]], list[SimilarUser]]


class Summarizer(Protocol):
    """Turns items into keyword lists."""

    name: str  # model or method name, recorded in traces and cache keys

    def summarize(self, items: Sequence[Item], feedback: Mapping[str, str]) -> dict[str, list[str]]:
        """Keywords per item id. `feedback[item_id]` (may be missing) is the critic's
        advice from the previous round."""
        ...


class Critic(Protocol):
    """Scores draft summaries."""

    def judge(self, items: Sequence[Item], drafts: Mapping[str, list[str]]) -> dict[str, Judgement]:
        """A judgement per item id in `drafts`."""
        ...


class KeywordStore(Protocol):
    """Persistent keywords per item (keyed by item, content, model and prompt version)."""

    def get_many(self, items: Sequence[Item]) -> dict[str, list[str]]:
        """Stored keywords for the items that have them (misses are left out)."""
        ...

    def put(self, item: Item, keywords: list[str], reward: float | None) -> None:
        """Store (atomically) the final keywords of one item."""
        ...


class KeywordBackfill(Protocol):
    """Fills the keyword store in the background: a server hands it the items a request
    found without keywords, and the request goes on without waiting for them."""

    def request(self, items: Sequence[Item]) -> None:
        """Queue `items` for summarizing (items already queued or stored cost nothing)."""
        ...


class Retriever(Protocol):
    """Finds training users whose history resembles a user's."""

    def similar_users(self, user_id: str, history: Sequence[str], k: int) -> list[SimilarUser]:
        """The `k` most similar training users (never `user_id`), with the item each chose
        next. `history` holds raw item ids, chronological. `keywords` may be left empty:
        the retrieval node fills them from the keyword store."""
        ...


class CandidateScorer(Protocol):
    """Scores candidates that share one prompt prefix."""

    name: str

    def score(self, prefix: str, suffixes: Sequence[str]) -> list[float]:
        """`p(yes) / (p(yes) + p(no))` for each `prefix + suffix` prompt."""
        ...


class PreferenceSummarizer(Protocol):
    """Summarises the older part of a history (before the last n items) in a sentence."""

    def preference(self, user_id: str, items: Sequence[Item]) -> str: ...


class StateEncoder(Protocol):
    """A fitted sequence model whose final-position state encodes a history (SASRec): what
    the similar-users knowledge base is built from (`tools.index`)."""

    config: Any  # its settings; `config.digest()` is part of the knowledge base's fingerprint
    meta: dict[str, Any]  # `meta["seed"]` names the collection
    model: Any  # the torch module (None before fitting); its weights enter the fingerprint

    def embed_histories(self, histories: Sequence[Sequence[int]]) -> Any:
        """Final-position states: float32 array [len(histories), hidden]."""
        ...


class VectorIndex(Protocol):
    """Approximate maximum-inner-product search over a fixed set of vectors (`tools.ann`)."""

    def search(self, queries: Any, k: int) -> Any:
        """Row positions int [len(queries), k] of the vectors with about the largest inner
        products with each query (float32 [n, d]), best first; -1 pads a short answer."""
        ...


class VectorScorer(Protocol):
    """A model whose score of item j after a history is `embed(history) . item_vectors()[j]`
    (SASRec): what an approximate-nearest-neighbour index can retrieve for."""

    def embed_histories(self, histories: Sequence[Sequence[int]]) -> Any:
        """Query vectors: float32 [len(histories), d]."""
        ...

    def item_vectors(self) -> Any:
        """Item vectors: float32 [n_items + 1, d]; row 0 (padding) is never retrieved."""
        ...

"""Similar-user retrieval over the knowledge base, as a `Retriever` and as an LLM tool.

    index = CollaborativeIndex.for_dataset_dir(settings.dataset_dir)
    index.build(dataset, sasrec)                       # once; a no-op when up to date
    retriever = CollaborativeRetriever(index, dataset, sasrec)
    retriever.similar_users("196", history, k=3)       # -> list[SimilarUser]
    tool = make_similar_users_tool(retriever, dataset, keyword_store)
    tool.invoke({"user_id": "196", "k": 3})            # -> JSON-able list, or an error string

The retriever is what the graph's retrieval node calls (`GraphContext.retriever`); the tool
offers the same search to an agent that decides for itself when to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError

from mmsrarec.data import Dataset, Stage
from mmsrarec.errors import ConfigError, DataError
from mmsrarec.tools.index import CollaborativeIndex, normalize
from mmsrarec.types import KeywordStore, SimilarUser, StateEncoder


class CollaborativeRetriever:
    """The `Retriever` of the graph: nearest training users by cosine of SASRec states.

    Args:
        index: A store in which `index.build(dataset, sasrec)` has completed.
        dataset: The prepared dataset (maps raw item ids to SASRec's indices and titles).
        sasrec: The fitted SASRec the knowledge base was built with.

    Raises:
        NotPreparedError: The knowledge base for this dataset and SASRec was not built.
    """

    def __init__(self, index: CollaborativeIndex, dataset: Dataset, sasrec: StateEncoder) -> None:
        self.collection = index.open(dataset, sasrec)
        self.size = self.collection.count()
        self.dataset = dataset
        self.sasrec = sasrec

    def similar_users(self, user_id: str, history: Sequence[str], k: int) -> list[SimilarUser]:
        """The `k` training users whose state is closest to `history`'s (never `user_id`).

        Args:
            user_id: The user asking; dropped from the neighbours when it is in the knowledge
                base.
            history: Raw item ids, chronological (SASRec reads the last `max_len`).
            k: How many neighbours (fewer only when the knowledge base is smaller).

        Returns:
            Neighbours, most similar first, with `similarity` = cosine of the two states and
            the item the neighbour chose next; `keywords` is left empty.

        Raises:
            DataError: `history` is empty or holds an item id the catalog lacks.
        """
        if k < 0:
            raise ConfigError(f"`k` must be at least 0, got {k}")
        if not history:
            raise DataError(
                f"user `{user_id}` has an empty history: similar-user retrieval needs at "
                "least one item id"
            )
        indices = [self._index_of(user_id, item_id) for item_id in history]
        if k == 0:
            return []
        query = normalize(self.sasrec.embed_histories([indices]))  # [1, hidden]
        result = self.collection.query(
            query_embeddings=query,
            n_results=min(k + 1, self.size),  # one spare: the user may be its own neighbour
            include=["metadatas", "distances"],
        )
        metadatas, distances = result["metadatas"][0], result["distances"][0]
        neighbours: list[SimilarUser] = []
        for meta, distance in zip(metadatas, distances, strict=True):
            if meta["user_id"] == user_id:
                continue
            next_item = self.dataset.by_id(str(meta["next_item_id"]))
            neighbours.append(
                SimilarUser(
                    user_id=str(meta["user_id"]),
                    similarity=round(1.0 - float(distance), 6),  # Chroma's cosine distance
                    next_item_id=next_item.item_id,
                    next_title=next_item.title,
                    keywords=[],
                )
            )
        return neighbours[:k]

    def _index_of(self, user_id: str, item_id: str) -> int:
        try:
            return self.dataset.index_of(item_id)
        except DataError:
            raise DataError(
                f"history of user `{user_id}` holds item id `{item_id}`, which dataset "
                f"`{self.dataset.name}` does not have: pass raw item ids of its catalog"
            ) from None


class SimilarUsersArgs(BaseModel):
    """Arguments of the `similar_users` tool."""

    user_id: str = Field(description="Raw user id of the prepared dataset.")
    k: int = Field(3, ge=1, le=20, description="How many similar users to return (1 to 20).")


def make_similar_users_tool(
    retriever: CollaborativeRetriever,
    dataset: Dataset,
    keywords: KeywordStore,
    stage: Stage = "test",
) -> BaseTool:
    """A LangChain tool that returns a user's most similar training users.

    Args:
        retriever: Finds the neighbours.
        dataset: Gives each user's visible history at `stage`.
        keywords: Where the neighbours' next items' keywords come from (`get_many`); items
            it lacks get `[]`.
        stage: Which split's visible history represents the user (`valid` or `test`).

    Returns:
        A tool whose result is a list of `{"user_id", "similarity", "next_item": {"item_id",
        "title"}, "keywords"}`. Invalid arguments (an unknown user, `k` out of range) come back
        to the model as an error message; any other failure raises.
    """

    def similar_users(user_id: str, k: int = 3) -> list[dict[str, Any]]:
        try:
            history = dataset.history(user_id, stage)
        except DataError as exc:  # unknown user, or one too short to evaluate
            raise ToolException(str(exc)) from exc
        neighbours = retriever.similar_users(
            user_id, [dataset.item(index).item_id for index in history], k
        )
        items = [dataset.by_id(n["next_item_id"]) for n in neighbours]
        found = keywords.get_many(items)
        return [
            {
                "user_id": n["user_id"],
                "similarity": round(n["similarity"], 4),
                "next_item": {"item_id": n["next_item_id"], "title": n["next_title"]},
                "keywords": list(found.get(n["next_item_id"], [])),
            }
            for n in neighbours
        ]

    return StructuredTool.from_function(
        func=similar_users,
        name="similar_users",
        description=(
            "Find the training users whose viewing history is most similar to a user's, with "
            "the item each of them chose next and that item's keywords."
        ),
        args_schema=SimilarUsersArgs,
        handle_tool_error=True,
        handle_validation_error=_validation_message,
    )


def _validation_message(error: ValidationError) -> str:
    problems = "; ".join(
        f"`{'.'.join(str(p) for p in e['loc'])}`: {e['msg']}" for e in error.errors()
    )
    return f"invalid arguments for `similar_users`: {problems}"

"""Tools of the recommendation graph: the collaborative (similar-users) retrieval."""

from mmsrarec.tools.collaborative import (
    CollaborativeRetriever,
    SimilarUsersArgs,
    make_similar_users_tool,
)
from mmsrarec.tools.index import BuildReport, CollaborativeIndex, kb_entries, kb_fingerprint

__all__ = [
    "BuildReport",
    "CollaborativeIndex",
    "CollaborativeRetriever",
    "SimilarUsersArgs",
    "kb_entries",
    "kb_fingerprint",
    "make_similar_users_tool",
]

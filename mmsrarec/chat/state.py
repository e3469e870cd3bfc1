"""The typed state of the chat graph.

One checkpointer thread is one conversation: `messages`, `liked` and `shown` carry over from
turn to turn; every other key describes the latest turn and is reset by `understand`.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from mmsrarec.trace import TraceRecord, chain_trace
from mmsrarec.types import Recommendation, SimilarUser


class ChatMessage(TypedDict):
    """One line of the conversation."""

    role: str  # "user" or "assistant"
    text: str


class Match(TypedDict):
    """A catalog item found for a piece of the user's text."""

    item_id: str
    title: str
    similarity: float  # cosine similarity to the text; 1.0 for a title named in the text


class ChatInput(TypedDict):
    """What a caller passes to `graph.invoke`."""

    message: str  # the user's latest message


class ChatState(ChatInput):
    """Everything the chat nodes read and write. Reducers: `messages` appends, `trace` appends
    hash-chained records; every other key is replaced by the last writer."""

    turn: int  # user messages so far in this thread, this one included
    messages: Annotated[list[ChatMessage], operator.add]  # the conversation, oldest first
    liked: list[str]  # item ids the user said they liked, over the whole conversation
    shown: list[str]  # item ids recommended so far in this thread (not offered again)
    matches: list[Match]  # this turn's catalog matches for the description
    avoid: list[str]  # this turn's words to steer clear of ("not gory" -> "gory")
    question: str  # this turn's clarifying question, "" when none
    options: list[str]  # item ids the pending question offers (answered by number or year)
    pending: str  # the request waiting for the answer to `question`
    recommendations: list[Recommendation]  # this turn's ranked items, best first
    similar_users: list[SimilarUser]  # the recommendation graph's neighbours this turn
    reply: str  # this turn's answer
    trace: Annotated[list[TraceRecord], chain_trace]  # chat and recommendation node runs


class ChatOutput(TypedDict):
    """What `graph.invoke` returns."""

    reply: str
    question: str
    recommendations: list[Recommendation]
    matches: list[Match]
    liked: list[str]
    similar_users: list[SimilarUser]

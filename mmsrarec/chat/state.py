"""The typed state of the chat graph.

One checkpointer thread is one conversation: `messages` and `intent` carry over from turn to
turn (`intent` holds liked, disliked, seen and shown titles, genres, years and wishes, see
`mmsrarec.chat.intent`); every other key describes the latest turn and is reset by
`understand`.
"""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict  # pydantic builds JSON schemas from it on 3.11

from mmsrarec.chat.intent import Intent
from mmsrarec.chat.sqlcatalog import Conditions
from mmsrarec.trace import TraceRecord, chain_trace
from mmsrarec.types import Recommendation, SimilarUser

# Pydantic types stored in the state: the checkpointer is told to load them back.
STATE_TYPES = [(cls.__module__, cls.__name__) for cls in (Intent, Conditions)]


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
    intent: Intent  # what the user asked for so far (carried over, updated by `understand`)
    liked: list[str]  # = intent.liked, for callers that only want the liked item ids
    intent_line: str  # "Looking for: romance + comedy, 1990–1999; ..."
    conditions: Conditions  # this turn's hard conditions after any relaxation
    relaxed: list[str]  # the hard conditions dropped this turn, in order ("years 1990–1999")
    pool: list[str]  # items meeting `conditions`, not banned, most popular first
    matches: list[Match]  # soft-wish matches inside `pool` (Chroma), best first
    question: str  # this turn's clarifying question, "" when none
    note: str  # said before the picks when the turn asked for nothing usable, "" when none
    options: list[str]  # item ids the pending question offers (answered by number or year)
    pending: str  # the request waiting for the answer to `question`
    ranked: list[Recommendation]  # `rank`'s order, before the final filter (`evidence` = reason)
    recommendations: list[Recommendation]  # this turn's picks, best first
    similar_users: list[SimilarUser]  # the recommendation graph's neighbours this turn
    reply: str  # this turn's answer
    trace: Annotated[list[TraceRecord], chain_trace]  # chat and recommendation node runs


class ChatOutput(TypedDict):
    """What `graph.invoke` returns."""

    reply: str
    intent_line: str
    question: str
    recommendations: list[Recommendation]
    relaxed: list[str]
    matches: list[Match]
    liked: list[str]
    intent: Intent
    similar_users: list[SimilarUser]
